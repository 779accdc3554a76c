"""Compile each route's URL builder once per test session instead of once per app.

Werkzeug compiles two small Python functions for every route of every app it binds: with the
~1000 apps a run builds, that was most of the cost of ``create_app``. The generated code depends
only on the rule's text and parsed parts and reaches the rule itself through its ``self`` argument,
so one function serves every app's copy of a route unchanged.
"""
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from werkzeug.routing import Rule


@contextmanager
def compiled_once() -> Iterator[None]:
    """Within the block, rules without defaults share their compiled builders."""
    compile_builder = Rule._compile_builder
    compiled = {}

    def shared(rule: Rule, append_unknown: bool = True):
        if rule.defaults:
            return compile_builder(rule, append_unknown)
        key = (rule.rule, tuple(rule._trace), append_unknown)
        if key not in compiled:
            compiled[key] = compile_builder(rule, append_unknown)
        return compiled[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Rule, "_compile_builder", shared)
        yield
