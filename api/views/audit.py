"""The ledger's audit: check the history's hash chain, and export it to be checked elsewhere (admin only).

Admin only: a check reads and hashes the whole ledger (no caller without a token may make the server do
that), the export holds every reason and actor ever recorded, and the one who can act on a broken chain
is whoever runs the registry.
"""
from flask import Response, stream_with_context
from flask_smorest import Blueprint

from api.auth import requires
from api.schemas.audit import VerifyOut
from registry.integrity import ledger

blp = Blueprint("audit", __name__, description="Audit: the ledger's hash chain")


@blp.route("/audit/verify")
@requires("admin")
@blp.response(200, VerifyOut)
def verify():
    """Walk the history's hash chain and name the first entry that does not hold (200 either way)."""
    return ledger.verify()


@blp.route("/audit/export")
@requires("admin")
@blp.response(200, description="JSON lines, oldest first: each entry's canonical fields and its `hash`",
              content_type="application/x-ndjson")
def export():
    """The whole chain as JSON lines, so it can be checked elsewhere (docs/ledger.md has a checker)."""
    lines = stream_with_context(ledger.export())
    return Response(lines, mimetype="application/x-ndjson",
                    headers={"Content-Disposition": 'attachment; filename="ledger.jsonl"'})
