"""The Flask application factory: wires config, database, the domain's store and runtime, and blueprints."""
from importlib.util import find_spec
from pathlib import Path

from flask import Blueprint, Flask
from werkzeug.routing import IntegerConverter

from api import (
    background,
    commands,
    delivery,
    domain,
    fast_predict,
    health,
    lifecycle,
    queue_order,
    rate_limits,
    request_ids,
    security_headers,
    traces,
)
from api.content import check_json_body
from api.json_output import FiniteJSONProvider
from api.errors import register_error_handlers
from api.lazy_spec import Api
from api.settings import EXTENSION as SETTINGS, settings_of
from api.uploaded_files import HashingRequest
from api.migrations import init_migrations
from api.openapi import ProblemDocs, package_version
from api.prediction_routes import url_map
from api.ui import init_ui
from api.grpc import server as grpc_server
from api.v2 import views as v2
from api.views import (
    aliases, audit, batch_runs, evaluations, models, ops, policies, predict, predictions, rollouts, tokens, versions,
    webhooks,
)
import config
from registry.db import configure_sqlite, db
from registry.names import MAX_ID
from registry.process.metric_files import Flusher

OPENAPI = {
    "API_TITLE": "Model Registry",
    "API_VERSION": package_version(),
    "OPENAPI_VERSION": "3.1.0",
    "OPENAPI_URL_PREFIX": "/",
    "OPENAPI_JSON_PATH": "openapi.json",
    "OPENAPI_SWAGGER_UI_PATH": "/docs",
    "OPENAPI_SWAGGER_UI_URL": "/docs/assets/",
}
# Swagger UI 5's files as swagger-ui-py ships them (found, not imported: the package's server code is not used).
SWAGGER_UI_ASSETS = str(Path(find_spec("swagger_ui").submodule_search_locations[0]) / "static")


def create_app(settings: config.Settings | None = None, flask_config: dict | None = None) -> Flask:
    """Build an app with ``settings`` (by default the process's, read from its environment once), and Flask's own
    keys from them and ``flask_config`` (tests pass ``{"TESTING": True}``)."""
    settings = settings or config.settings()
    app = Flask(__name__, static_folder=None)
    app.request_class = HashingRequest  # an upload's sha256 is taken as it arrives
    app.json = FiniteJSONProvider(app)
    app.url_map.converters["int"] = DatabaseInteger
    app.extensions[SETTINGS] = settings
    app.config.update(OPENAPI)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=settings.storage.database_url,
        SECRET_KEY=settings.access.secret_key,  # the dashboard sets a kept one when unset
        MAX_CONTENT_LENGTH=settings.limits.max_predict_bytes,  # every body; the upload route raises it for itself
    )
    app.config.update(flask_config or {})
    _init_database(app)
    lifecycle.init_app(app)
    traces.init_app(app)  # its span opens before any other hook of a request can refuse it
    _init_metric_files(app)
    domain.init_app(app)
    health.init_app(app)
    queue_order.init_app(app)  # which requests the server's worker takes last
    delivery.init_app(app)
    background.init_app(app)
    _init_http(app)
    init_ui(app)
    security_headers.init_app(app)
    request_ids.init_app(app)
    fast_predict.init_app(app)
    rate_limits.init_app(app)  # its proxy fix goes around the prediction routes' door
    commands.register(app)
    grpc_server.init_app(app)  # last: its stop runs first, while what answers its calls still runs
    return app


class DatabaseInteger(IntegerConverter):
    """``<int:…>`` in a route, up to the largest database integer: a larger number matches no route (404)."""

    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("max", MAX_ID)
        super().__init__(url_map, *args, **kwargs)


def _init_metric_files(app: Flask) -> None:
    """Where a server of several processes shares their metrics (``PROMETHEUS_MULTIPROC_DIR``): each
    process writes its series there about once a second, and once more as it goes."""
    directory = settings_of(app).server.metrics_dir
    if directory:
        flusher = Flusher(directory)
        lifecycle.of(app).add("metric files", start=flusher.start, stop=flusher.stop)


def _init_database(app: Flask) -> None:
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    db.init_app(app)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            configure_sqlite(db.engine)
    init_migrations(app)


def _init_http(app: Flask) -> None:
    api = Api(app, spec_kwargs={"extra_plugins": [ProblemDocs(settings_of(app).access.require_auth_for_reads)]})
    # The prediction routes are answered by api/fast_predict.py, not by views: documented beside the blueprints.
    rules = {rule.endpoint: rule for rule in url_map(app.url_map.converters).iter_rules()}
    for module in (models, versions, evaluations, batch_runs, aliases, policies, rollouts):
        api.register_blueprint(module.blp)
    api.document_routes([(rules[route.endpoint], doc) for route, doc in predict.OPERATIONS.items()], predict.TAG)
    for module in (predictions, tokens, webhooks, audit, ops, v2):
        api.register_blueprint(module.blp)
    api.document_routes([(rules[route.endpoint], doc) for route, doc in v2.OPERATIONS.items()])
    app.register_blueprint(
        Blueprint("docs_assets", __name__, static_folder=SWAGGER_UI_ASSETS, static_url_path="/docs/assets")
    )
    app.before_request(check_json_body)
    register_error_handlers(app)
