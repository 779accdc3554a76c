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
