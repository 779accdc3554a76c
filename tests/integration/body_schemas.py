"""The JSON body schemas of every route of the API, for the tests that sweep them (finite numbers,
JSON booleans)."""
import pytest
from marshmallow import Schema

from tests.helpers import close_app, make_app


def body_schemas(app) -> dict[str, Schema]:
    """Every JSON body schema a route of ``app`` parses, by the route's endpoint and the schema's name."""
    found = {}
    for endpoint, view in app.view_functions.items():
        view_class = getattr(view, "view_class", None)  # a MethodView: each method holds its own
        handlers = [getattr(view_class, m.lower()) for m in view_class.methods] if view_class else [view]
        for handler in handlers:
            for parameter in getattr(handler, "_apidoc", {}).get("arguments", {}).get("parameters", []):
                if parameter.get("in", "json") != "json":
                    continue
                schema = parameter["schema"]
                schema = schema if isinstance(schema, Schema) else schema()
                found[f"{endpoint}:{type(schema).__name__}"] = schema
    return found


@pytest.fixture(scope="module")
def schemas(tmp_path_factory):
    """The body schemas of one app, made once per module."""
    root = tmp_path_factory.mktemp("sweep")
    app = make_app(f"sqlite:///{root / 'sweep.db'}", root / "artifacts")
    try:
        yield body_schemas(app)
    finally:
        close_app(app)
