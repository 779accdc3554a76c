"""The ledger's check: whether its hash chain holds, the first entry that does not, and the live rows that
differ from what it says."""
from marshmallow import Schema, fields

from registry.ledger import timestamp


class LedgerTime(fields.DateTime):
    """An entry's time as its export line and its hash have it: UTC with microseconds and a ``Z``."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else timestamp(value)


class BrokenOut(Schema):
    id = fields.Integer(allow_none=True, metadata={"description": "the entry; null when entries are gone from the end. "
                                                                  "For a live row (kind state): the entry that said "
                                                                  "last what it should be, null when none did"})
    at = LedgerTime(allow_none=True, metadata={"description": "as the entry's export line has it: "
                                                               "2026-11-25T10:54:35.123456Z"})
    kind = fields.String(allow_none=True, metadata={"description": "the entry's action (promote, rollback, …); "
                                                                   "state: a live alias, rollout or policy row"})
    problem = fields.String(metadata={"description": "altered, unlinked, unrecorded or truncated; differs (a live "
                                                     "row that is not what the chain says)"})
    detail = fields.String()


class VerifyOut(Schema):
    ok = fields.Boolean()
    entries = fields.Integer(metadata={"description": "entries that hold, from the first"})
    head = fields.String(metadata={"description": "the hash of the last entry that holds: keep it to compare later"})
    first_broken = fields.Nested(BrokenOut, allow_none=True)
    state = fields.List(fields.Nested(BrokenOut), metadata={
        "description": "every live alias, rollout and policy row that differs from what the chain says (kind "
                       "state); checked once every entry holds"})
