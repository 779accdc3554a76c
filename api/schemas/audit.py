"""The ledger's check: whether its hash chain holds, and the first entry that does not."""
from marshmallow import Schema, fields

from registry.ledger import timestamp


class LedgerTime(fields.DateTime):
    """An entry's time as its export line and its hash have it: UTC with microseconds and a ``Z``."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else timestamp(value)


class BrokenOut(Schema):
    id = fields.Integer(allow_none=True, metadata={"description": "the entry; null when entries are gone from the end"})
    at = LedgerTime(allow_none=True, metadata={"description": "as the entry's export line has it: "
                                                               "2026-11-25T10:54:35.123456Z"})
    kind = fields.String(allow_none=True, metadata={"description": "the entry's action (promote, rollback, …)"})
    problem = fields.String(metadata={"description": "altered, unlinked, unrecorded or truncated"})
    detail = fields.String()


class VerifyOut(Schema):
    ok = fields.Boolean()
    entries = fields.Integer(metadata={"description": "entries that hold, from the first"})
    head = fields.String(metadata={"description": "the hash of the last entry that holds: keep it to compare later"})
    first_broken = fields.Nested(BrokenOut, allow_none=True)
