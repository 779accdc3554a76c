"""How deep a decoded JSON body nests (api.content._deeper_than): a large body's depth is read from its bytes, a
small one's from its values, and both say the same on every shape, strings holding brackets included."""
import json

import orjson
import pytest

from api.content import MAX_JSON_DEPTH, _WALK_UP_TO_BRACKETS, _deeper_than

BATCH = [[1.5, -2, 3e10, 0]] * (_WALK_UP_TO_BRACKETS + 100)  # more brackets than the walk takes


def nested(depth: int, inside: object = 7) -> object:
    """Arrays ``depth`` deep, the innermost holding ``inside``."""
    value = inside
    for _ in range(depth):
        value = [value]
    return value


BODIES = {
    "a wide batch": ({"instances": BATCH}, False),
    "records": ({"dataframe_records": [{"a": 1, "b": "x"}] * 700}, False),
    "the limit, beside a batch": ({"rows": BATCH, "deep": nested(MAX_JSON_DEPTH - 1)}, False),
    "one past it, beside a batch": ({"rows": BATCH, "deep": nested(MAX_JSON_DEPTH)}, True),
    "objects one past it": ({"rows": BATCH, "deep": json.loads('{"a":' * MAX_JSON_DEPTH + "1" + "}" * MAX_JSON_DEPTH)},
                            True),
    "brackets inside strings": ({"rows": BATCH, "note": "[{" * 200 + '\\"[[' + "]" * 3}, False),
    "a batch at the limit": (nested(MAX_JSON_DEPTH - 2, BATCH), False),  # a batch is two levels
    "a batch one past it": (nested(MAX_JSON_DEPTH - 1, BATCH), True),
}


@pytest.mark.parametrize("name", BODIES)
def test_a_large_bodys_depth_read_from_its_bytes_is_its_values_depth(name):
    value, deeper = BODIES[name]
    data = orjson.dumps(value)
    assert data.count(b"[") + data.count(b"{") > _WALK_UP_TO_BRACKETS
    decoded = orjson.loads(data)
    assert _deeper_than(decoded, MAX_JSON_DEPTH, data) is deeper  # the bytes
    assert _deeper_than(decoded, MAX_JSON_DEPTH, data.decode()) is deeper  # a str: the values, level by level
