"""Every boolean a JSON body of the API carries is a JSON true or false: 0, 1 and the truthy words
marshmallow takes from a query string are refused with 422 (schemathesis found a break-glass move
accepted with "force": 0)."""
import pytest
from marshmallow import Schema, ValidationError, fields

from tests.integration.body_schemas import schemas  # noqa: F401  (the fixture)

NOT_BOOLEANS = [0, 1, "true", "yes", None]


def boolean_places(schema: Schema, depth: int = 0) -> list[tuple[tuple[str, ...], fields.Boolean]]:
    """(path, field) of every boolean field of ``schema``, through nested schemas."""
    places = []
    for name, field in schema.load_fields.items():
        key = field.data_key or name
        if isinstance(field, fields.Boolean):
            places.append(((key,), field))
        elif isinstance(field, fields.Nested) and depth < 6:
            places += [((key, *path), inner) for path, inner in boolean_places(field.schema, depth + 1)]
    return places


def body_at(path: tuple[str, ...], value) -> dict:
    return {path[0]: value} if len(path) == 1 else {path[0]: body_at(path[1:], value)}


def test_the_sweep_finds_the_bodies_with_booleans(schemas):
    names = {name.split(":")[1] for name, schema in schemas.items() if boolean_places(schema)}
    assert {"PromoteRequest", "BreakGlassRequest", "PolicyRequest", "WebhookPatch", "RolloutRequest"} <= names


@pytest.mark.parametrize("value", NOT_BOOLEANS, ids=repr)
def test_no_json_body_takes_a_boolean_that_is_not_true_or_false(schemas, value):
    taken = []
    for name, schema in sorted(schemas.items()):
        for path, field in boolean_places(schema):
            if value is None and field.allow_none:
                continue  # where the document says what null means (higher_is_better: from the metric's name)
            try:
                schema.load(body_at(path, value), partial=True)
            except ValidationError as exc:
                if _names(exc.messages, path):
                    continue
            taken.append(f"{name} at {'.'.join(path)}")
    assert not taken, f"these places take {value!r}: {taken}"


def _names(messages, path: tuple[str, ...]) -> bool:
    for step in path:
        if not isinstance(messages, dict) or step not in messages:
            return False
        messages = messages[step]
    return True
