"""Every number a JSON body of the API can carry is refused when it is not finite (issue 40, item 9).

The body's decoder reads NaN, Infinity and numbers past a double only so that the field holding one
can refuse it precisely (a label per item, a setting by name): this sweep walks every JSON body
schema of every route, puts each non-finite value at every place a number can go (nested objects,
lists, a mapping's values), and checks that the schema refuses it there. A new field that would let
one through to the database, where it would be written back as ``null``, fails here."""
import math

import pytest
from marshmallow import Schema, ValidationError, fields

from registry.access.scopes import checked_scopes
from registry.aliases.plans import checked_plan
from registry.errors import InvalidInput
from tests.integration.body_schemas import schemas  # noqa: F401  (the fixture)

NON_FINITE = [math.nan, math.inf, -math.inf]
NUMBER_FIELDS = (fields.Number, fields.Raw)
# Places whose non-finite values a use case refuses after the schema, each with the test that shows it.
REFUSED_BEYOND_THE_SCHEMA = {
    # per item, so one bad label does not cost the batch its good ones: test_label_targets.py
    "predictions.feedback:FeedbackIn at items.0.label",
}
# Bodies a use case reads further after the schema passed them through (its own messages name
# every wrong field at once): the checker, given what the schema loaded.
CHECKED_BEYOND_THE_SCHEMA = {
    ("RolloutRequest", "plan"): [lambda loaded, task=task: checked_plan(loaded["plan"], task=task)
                                 for task in ("classification", "regression")],
    ("TokenRequest", "scopes"): [lambda loaded: checked_scopes("ci", loaded["scopes"])],
    # an approval request for a rollout: its plan is checked as the rollout's when the request is opened
    ("ApprovalRequestIn", "rollout"): [lambda loaded, task=task: checked_plan(loaded["rollout"]["plan"], task=task)
                                       for task in ("classification", "regression")],
}
# Rows (predict bodies, a reference's rows, V2 tensors) are read by registry.serving.inputs, which
# refuses a non-finite cell naming its row and feature: test_predict_api.py, test_v2_bad_input.py.


def number_places(schema: Schema, depth: int = 0) -> list[tuple[tuple, object]]:
    """(path, how to build a body holding a value there) for every place of ``schema`` a number may go."""
    places = []
    for name, field in schema.load_fields.items():
        key = field.data_key or name
        for path, build in _places_of(field, depth):
            places.append(((key, *path), lambda value, build=build, key=key: {key: build(value)}))
    return places


def _places_of(field: fields.Field, depth: int) -> list[tuple[tuple, object]]:
    if depth > 6:
        return []
    if isinstance(field, fields.Nested):
        inner = field.schema
        return [(path, build) for path, build in number_places(inner, depth + 1)]
    if isinstance(field, fields.List):
        return [((0, *path), lambda value, build=build: [build(value)])
                for path, build in _places_of(field.inner, depth + 1)]
    if isinstance(field, fields.Dict):
        values = field.value_field or fields.Raw()
        return [(("<key>", *path), lambda value, build=build: {"k": build(value)})
                for path, build in _places_of(values, depth + 1)]
    if isinstance(field, NUMBER_FIELDS):
        return [((), lambda value: value)]
    return []


def refused_at(schema: Schema, body: dict, path: tuple) -> bool:
    """Whether loading ``body`` is refused with a message at ``path`` (or at an ancestor of it)."""
    try:
        loaded = schema.load(body, partial=True)
    except ValidationError as exc:
        messages = exc.messages
        for step in path:
            if not isinstance(messages, dict):
                return True  # the refusal names an ancestor of the place
            key = "k" if step == "<key>" else step
            if key not in messages and "_schema" in messages:
                return True
            if key not in messages:
                return False
            messages = messages[key]
            if isinstance(messages, dict) and "value" in messages and step == "<key>":
                messages = messages["value"]
        return True
    checkers = CHECKED_BEYOND_THE_SCHEMA.get((type(schema).__name__, path[0]), [])
    return bool(checkers) and all(_refused(check, loaded) for check in checkers)


def _refused(check, loaded: dict) -> bool:
    """Whether the use case's ``check`` refuses what the schema loaded."""
    try:
        check(loaded)
    except InvalidInput:
        return True
    return False


def test_the_sweep_finds_the_bodies_that_carry_numbers(schemas):
    """The sweep reaches the schemas it is meant to check (a rename must not leave it checking nothing)."""
    carrying = {name.split(":")[1] for name, schema in schemas.items() if number_places(schema)}
    assert {"FeedbackIn", "RolloutRequest", "ModelPatch", "EvaluationRequest", "PolicyRequest", "BatchRunRequest",
            "SecretRotation"} <= carrying


def test_the_sweep_finds_a_place_that_lets_one_through():
    class Careless(Schema):
        settings = fields.Nested(type("Settings", (Schema,), {"ratio": fields.Float(allow_nan=True)}))
        figures = fields.Dict(keys=fields.String(), values=fields.Raw())

    places = {".".join(map(str, path)): refused_at(Careless(), build(math.inf), path)
              for path, build in number_places(Careless())}

    assert places == {"settings.ratio": False, "figures.<key>": False}


@pytest.mark.parametrize("value", NON_FINITE, ids=["NaN", "Infinity", "-Infinity"])
def test_no_json_body_takes_a_number_that_is_not_finite(schemas, value):
    """Each place is tried alone, so one refusal cannot hide another place that lets the value through."""
    let_through = []
    for name, schema in sorted(schemas.items()):
        for path, build in number_places(schema):
            place = f"{name} at {'.'.join(map(str, path))}"
            if place not in REFUSED_BEYOND_THE_SCHEMA and not refused_at(schema, build(value), path):
                let_through.append(place)
    assert not let_through, f"these places take {value}: {let_through}"
