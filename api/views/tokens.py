"""API token management (admin only)."""
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import requires
from api.schemas import TokenCreatedOut, TokenOut, TokenRequest
from registry import tokens

blp = Blueprint("tokens", __name__, description="API tokens")


@blp.route("/tokens")
class Tokens(MethodView):
    @requires("admin")
    @blp.response(200, TokenOut(many=True))
    def get(self):
        """Token names, roles and times; never the tokens themselves."""
        return tokens.list_tokens()

    @requires("admin")
    @blp.arguments(TokenRequest)
    @blp.response(201, TokenCreatedOut)
    def post(self, body):
        """Create a token; the response is the only time it is shown."""
        row, token = tokens.create_token(body["name"], body["role"])
        return {"name": row.name, "role": row.role, "token": token, "created_at": row.created_at}


@blp.route("/tokens/<name>")
class Token(MethodView):
    @requires("admin")
    @blp.response(204)
    def delete(self, name):
        """Revoke a token; it stops working at once on every worker."""
        tokens.revoke_token(name)
