"""flask-smorest's Api, building the OpenAPI document on first use instead of at start.

Documenting every route resolves every marshmallow schema: most of the cost of ``create_app``.
A worker that never serves ``/openapi.json`` or ``/docs`` (and every test app) need not pay it.
The routes themselves are registered at once; only their documentation waits.
"""
import threading
from collections.abc import Callable
from copy import deepcopy
from functools import partial

import flask_smorest
from flask_smorest.spec import openapi_cli
from werkzeug.routing import Rule


class Api(flask_smorest.Api):
    """The same Api; ``spec`` is built, routes documented, when something first reads it."""

    def __init__(self, app=None, **kwargs):
        self._spec = None
        self._spec_args: dict | None = None
        self._documented: list[Callable[[], None]] = []  # what documents each blueprint or route, once built
        self._building = threading.Lock()
        super().__init__(app, **kwargs)

    @property
    def spec(self):
        """The APISpec, with every blueprint registered so far documented in it."""
        if self._spec is None and self._spec_args is not None:
            with self._building:
                if self._spec is None:
                    self._build_spec()
        return self._spec

    @spec.setter
    def spec(self, value):
        self._spec = value

    def _init_spec(self, **spec_args):
        self._spec_args = spec_args
        self._app.cli.add_command(openapi_cli)

    def register_blueprint(self, blp, *, parameters=None, **options):
        """Register the blueprint's routes now; document them when the spec is built."""
        name = options.get("name", blp.name)
        self._app.extensions["flask-smorest"]["blp_name_to_api"][name] = self
        self._app.register_blueprint(blp, **options)
        self._later(partial(self._document, blp, name, parameters))

    def document_routes(self, operations: list[tuple[Rule, dict]], tag: tuple[str, str] | None = None) -> None:
        """Document routes that no view of Flask answers (``api/fast_predict.py`` does): each rule with its
        operations (``{"post": {…}}``, as a view's decorators would have made them), and ``tag`` (its name, its
        description) when no blueprint adds it."""
        self._later(partial(self._document_routes, operations, tag))

    def _later(self, documents: Callable[[], None]) -> None:
        if self._spec is None:
            self._documented.append(documents)
        else:
            documents()

    def _build_spec(self) -> None:
        super()._init_spec(**self._spec_args)
        for documents in self._documented:
            documents()
        self._documented.clear()

    def _document(self, blp, name, parameters) -> None:
        blp.register_views_in_doc(self, self._app, self._spec, name=name, parameters=parameters)
        self._spec.tag({"name": name, "description": blp.description})

    def _document_routes(self, operations: list[tuple[Rule, dict]], tag: tuple[str, str] | None) -> None:
        for rule, operation in operations:
            self._spec.path(rule=rule, operations=deepcopy(operation), parameters=[])
        if tag is not None:
            self._spec.tag({"name": tag[0], "description": tag[1]})
