"""The Flask application factory: wires config, database, domain services and blueprints."""
import warnings
from pathlib import Path

import swagger_ui_bundle
from flask import Blueprint, Flask, request
from flask_migrate import Migrate
from flask_smorest import Api

from api import cli
from api.errors import register_error_handlers
from api.services import EXTENSION, Services
from api.ui import init_ui
from api.views import aliases, models, ops, predict, tokens, versions
from config import BASE_DIR, Config
from registry.artifacts import ArtifactStore
from registry.db import configure_sqlite, db
from registry.serving import ModelServer

OPENAPI = {
    "API_TITLE": "Model Registry",
    "API_VERSION": "1.0",
    "OPENAPI_VERSION": "3.1.0",
    "OPENAPI_URL_PREFIX": "/",
    "OPENAPI_JSON_PATH": "openapi.json",
    "OPENAPI_SWAGGER_UI_PATH": "/docs",
    "OPENAPI_SWAGGER_UI_URL": "/docs/assets/",
}


def create_app(overrides: dict | None = None) -> Flask:
    """Build an app from :class:`config.Config`, with ``overrides`` on top (tests pass a dict)."""
    app = Flask(__name__, static_folder=None)
    app.config.from_object(Config)
    app.config.update(OPENAPI)
    app.config.update(overrides or {})
    # Every body is held to the predict limit; the upload route raises it for itself.
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_PREDICT_MB"] * 1024 * 1024
    _init_database(app)
    _init_services(app)
    _init_http(app)
    init_ui(app)
    cli.register(app)
    # Rows arrive as arrays in signature order, already checked; sklearn's name warning is noise.
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    return app


def _init_database(app: Flask) -> None:
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    db.init_app(app)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            configure_sqlite(db.engine)
    Migrate(app, db, directory=str(BASE_DIR / "migrations"), render_as_batch=True)


def _init_services(app: Flask) -> None:
    store = ArtifactStore(app.config["ARTIFACT_ROOT"])
    server = ModelServer(
        store, app.config["MODEL_CACHE_SIZE"], app.config["ALIAS_REFRESH_SECONDS"], app.app_context
    )
    app.extensions[EXTENSION] = Services(store, server)

    if app.config["WATCH_ALIASES"]:
        app.before_request(server.ensure_started)


def _init_http(app: Flask) -> None:
    api = Api(app)
    for module in (models, versions, aliases, predict, tokens, ops):
        api.register_blueprint(module.blp)
    app.register_blueprint(
        Blueprint("docs_assets", __name__, static_folder=swagger_ui_bundle.swagger_ui_path, static_url_path="/docs/assets")
    )
    register_error_handlers(app)
