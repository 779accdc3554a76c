"""Promote, roll back, and read aliases and their history."""
from flask_smorest import Blueprint

from api import domain
from api.auth import principal, reads, requires
from api.content import accepts
from api.openapi import errors
from api.schemas.aliases import AliasesArgs, EventOut, HistoryArgs, MoveOut, PromoteRequest, ReasonArgs, RollbackRequest
from api.schemas.paging import page_of
from registry.aliases import moves as aliases
from registry.aliases import time_travel as alias_history

blp = Blueprint("aliases", __name__, description="Aliases, promotion and rollback")


@blp.route("/models/<name>/versions/<int:number>/promote", methods=["POST"])
@requires("ci")
@errors(410)
@accepts("application/json", body_optional=True)
@blp.arguments(PromoteRequest(), required=False)
@blp.response(200, MoveOut)
def promote(body, name, number):
    """Point an alias (default ``production``) at this version after it loads and scores."""
    return aliases.promote(
        domain.runtime(), name, number=number, alias=body["alias"], reason=body["reason"], force=body["force"],
        actor=principal().name, role=principal().role,
    )


@blp.route("/models/<name>/rollback", methods=["POST"])
@requires("ci")
@errors(409, 410)
@accepts("application/json", body_optional=True)
@blp.arguments(RollbackRequest(), required=False)
@blp.response(200, MoveOut)
def rollback(body, name):
    """Undo the alias's latest promote, or jump back to ``to_version``."""
    return aliases.rollback(
        domain.runtime(), name, alias=body["alias"], to_version=body["to_version"], reason=body["reason"],
        actor=principal().name, role=principal().role,
    )


@blp.route("/models/<name>/aliases")
@reads
@blp.arguments(AliasesArgs, location="query")
@blp.response(200)
def list_aliases(args, name):
    """``{alias: version}`` of a model; ``?at=<ISO 8601>`` as it was at that instant."""
    if args["at"] is None:
        return aliases.list_aliases(name)
    return alias_history.aliases_at(name, args["at"])


@blp.route("/models/<name>/aliases/<alias>", methods=["DELETE"])
@requires("ci")
@errors(409)
@blp.arguments(ReasonArgs, location="query")
@blp.response(200, EventOut)
def delete_alias(args, name, alias):
    """Remove an alias; the history records it (``action: "delete"``), its predict route then answers 404."""
    return aliases.delete_alias(name, alias, reason=args["reason"], actor=principal().name, role=principal().role)


@blp.route("/models/<name>/history")
@reads
@blp.arguments(HistoryArgs, location="query")
@blp.response(200, page_of(EventOut))
def history(args, name):
    """Promotion events, newest first; ``?alias=`` filters."""
    return aliases.history(name, alias=args["alias"], page=args["page"], per_page=args["per_page"])
