"""API token management (admin only)."""
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import principal, requires
from api.content import accepts
from api.openapi import errors
from api.schemas.aliases import ReasonArgs
from api.schemas.paging import PageArgs, page_of
from api.schemas.tokens import TokenCreatedOut, TokenOut, TokenRequest
from registry.access import tokens

blp = Blueprint("tokens", __name__, description="API tokens")


@blp.route("/tokens")
class Tokens(MethodView):
    @requires("admin")
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_of(TokenOut))
    def get(self, args):
        """Token names, roles, owners and times, by name; never the tokens themselves."""
        return tokens.token_page(args["page"], args["per_page"])

    @requires("admin")
    @errors(409)
    @accepts("application/json")
    @blp.arguments(TokenRequest)
    @blp.response(201, TokenCreatedOut)
    def post(self, body):
        """Create a token; the response is the only time it is shown."""
        row, token = tokens.create_token(body["name"], body["role"], body["scopes"], actor=principal().name,
                                         owner=body["owner"], reason=body["reason"])
        return {"name": row.name, "role": row.role, "owner": row.owner, "scopes": row.scopes, "token": token,
                "created_at": row.created_at}


@blp.route("/tokens/<name>")
class Token(MethodView):
    @requires("admin")
    @blp.arguments(ReasonArgs, location="query")
    @blp.response(204)
    def delete(self, args, name):
        """Revoke a token (``?reason=`` kept in the ledger); it stops working at once on every worker."""
        tokens.revoke_token(name, actor=principal().name, reason=args["reason"])
