"""Every error echo is bounded: a body with thousands of wrong things gets a small 422 that names the first
few and counts the rest (api/errors.py ``bounded``; the domain's ``listed``)."""
import json

import pytest

from api.errors import MAX_DETAIL, bounded, describe
from registry.errors import ECHOED, InvalidInput, listed
from tests.helpers import assert_problem

SMALL = 4_000  # bytes: a problem+json that says what to change, whatever was sent


def test_5000_bad_mover_names_get_a_small_422_naming_the_first_few_and_the_count(client, admin):
    body = {"movers": {"tokens": [f"bad name {i}!" for i in range(5000)]}}
    response = client.put("/models/m/aliases/production/policy", json=body, headers=admin)
    problem = assert_problem(response, 422, "movers.tokens.0:", "movers.tokens.4:", "movers.tokens: and 4,995 more")
    assert len(response.get_data()) < SMALL, len(response.get_data())
    tokens = problem["errors"]["movers"]["tokens"]
    assert list(tokens) == ["0", "1", "2", "3", "4", "…"] and tokens["…"] == "and 4,995 more"
    assert "movers.tokens.5:" not in problem["detail"]


def test_5000_unknown_event_types_get_a_small_422(client, admin):
    events = [f"no.such.event.{i}" for i in range(5000)]
    response = client.post("/webhooks", json={"url": "https://93.184.215.14/hook", "events": events}, headers=admin)
    assert_problem(response, 422, "'no.such.event.4' and 4,995 more")
    assert len(response.get_data()) < SMALL, len(response.get_data())


def test_5000_unknown_top_level_fields_are_bounded_too(client, admin):
    body = {f"field_{i}": 1 for i in range(5000)}
    response = client.put("/models/m/aliases/production/policy", json=body, headers=admin)
    problem = assert_problem(response, 422, "and 4,995 more")
    assert len(response.get_data()) < SMALL and len(problem["errors"]) == ECHOED + 1


def test_a_domain_error_with_many_messages_and_a_long_detail_is_bounded_where_it_is_answered():
    exc = InvalidInput("x" * 100_000, errors={"rows": [f"row {i} is wrong" for i in range(5000)]})
    described = describe(exc)
    assert described.errors == {"rows": [f"row {i} is wrong" for i in range(ECHOED)] + ["and 4,995 more"]}
    assert described.detail.startswith("x" * MAX_DETAIL) and described.detail.endswith("and 98,000 more characters")
    assert len(json.dumps(described.body())) < SMALL


@pytest.mark.parametrize("items, text", [([], ""), (["a"], "a"), (list("abcde"), "a, b, c, d, e"),
                                         (list(range(5000)), "0, 1, 2, 3, 4 and 4,995 more")])
def test_listed_names_the_first_few_then_counts(items, text):
    assert listed(items) == text


def test_bounded_keeps_small_messages_as_they_are():
    messages = {"a": ["one"], "b": {"0": ["two"]}}
    assert bounded(messages) == messages
