"""The OpenAPI document is built on first use, and is the one flask-smorest would build at start."""
import flask_smorest

import api


def test_the_document_built_on_first_use_is_the_one_built_at_start(client, build_app, monkeypatch):
    lazily = client.get("/openapi.json")
    monkeypatch.setattr(api, "Api", flask_smorest.Api)
    eagerly = build_app().test_client().get("/openapi.json")

    assert lazily.status_code == eagerly.status_code == 200
    assert lazily.get_data() == eagerly.get_data()
    assert "/models/{name}/versions" in lazily.get_json()["paths"]


def test_an_app_that_never_serves_the_document_never_builds_it(app, client):
    client.get("/models")

    assert app.extensions["flask-smorest"]["apis"][""]["ext_obj"]._spec is None
    client.get("/openapi.json")
    assert app.extensions["flask-smorest"]["apis"][""]["ext_obj"]._spec is not None


def _texts(node, where=""):
    """Every summary and description in an OpenAPI document, with where it is."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("summary", "description") and isinstance(value, str):
                yield f"{where}/{key}", value
            else:
                yield from _texts(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _texts(value, f"{where}/{i}")


def test_summaries_and_descriptions_are_plain_text_and_markdown_never_rest(client):
    document = client.get("/openapi.json").get_json()

    rest = {where: text for where, text in _texts(document) if "``" in text}
    assert rest == {}
    summaries = {where: text for where, text in _texts(document["paths"]) if where.endswith("/summary") and "`" in text}
    assert summaries == {}  # Swagger UI shows a summary as it is: no code marks at all


def test_the_api_docs_page_is_laid_out_for_the_devices_width(client):
    page = client.get("/docs").get_data(as_text=True)

    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert 'src="/docs/assets/swagger-ui-bundle.js"' in page and '"/openapi.json"' in page


def test_the_rollout_plan_is_described_field_by_field_not_as_an_opaque_object(client):
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    plan = schemas["PlanRequest"]["properties"]
    step = schemas["PlanStep"]["properties"]
    assert plan["on_success"]["enum"] == ["promote", "halt"] and plan["steps"]["maxItems"] == 10
    assert step["percent"]["type"] == "number" and step["percent"]["exclusiveMaximum"] == 100
    assert step["min_requests"]["type"] == "integer" and schemas["PlanStep"]["required"] == ["percent"]
    assert set(schemas["PlanGates"]["properties"]) == {"error_rate", "latency", "agreement", "quality"}
    assert schemas["RolloutOut"]["properties"]["plan"]
    assert schemas["PlanOut"]["properties"]["steps"]["items"] == {"$ref": "#/components/schemas/PlanStepOut"}
