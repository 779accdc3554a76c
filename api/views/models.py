"""Registered models: list, look at, describe."""
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import principal, reads, requires
from api.content import accepts
from api.schemas.models import ModelDetailOut, ModelOut, ModelPatch
from api.schemas.paging import PageArgs, page_of
from registry.access.scopes import READ, holds
from registry.catalog import models as catalog
from registry.errors import Forbidden

blp = Blueprint("models", __name__, description="Registered models")


@blp.route("/models")
class Models(MethodView):
    @reads
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_of(ModelOut))
    def get(self, args):
        """List registered models, ordered by name (to a scoped token, those it may read)."""
        who = principal()
        return catalog.list_models(args["page"], args["per_page"], readable=holds(READ, who.role, who.scopes))


@blp.route("/models/<name>")
class Model(MethodView):
    @reads
    @blp.response(200, ModelDetailOut)
    def get(self, name):
        """One model with its aliases and version count."""
        return catalog.get_model(name)

    @requires("ci")
    @accepts("application/json")
    @blp.arguments(ModelPatch)
    @blp.response(200, ModelDetailOut)
    def patch(self, changes, name):
        """Change a model's description or tags (admin), or the share of its requests logged (ci or admin)."""
        who = principal()
        reason = changes.pop("reason")
        if set(changes) - {"prediction_log"} and not who.may("admin"):
            raise Forbidden(f"the token {who.name!r} has role {who.role!r}; this needs 'admin' "
                            "(a ci token may change only a model's prediction_log)")
        return catalog.update_model(name, changes, actor=who.name, reason=reason)
