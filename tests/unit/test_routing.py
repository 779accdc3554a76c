"""Routing is a pure function of the alias snapshot and the request's key: many cases, no server."""
import hashlib

import pytest

from registry.artifacts.signature import Signature
from registry.serving.cache import ServableModel
from registry.serving.routing import AliasState, Arm, LiveRollout, key_share, route

SIGNATURE = Signature.from_dict({"features": [{"name": "x0", "dtype": "float64"}], "classes": None})


def loaded(version: int) -> ServableModel:
    return ServableModel("m", version, f"sha-{version}", "regression", SIGNATURE, predictor=None)


PRIMARY, CANARY, SHADOW = loaded(1), loaded(2), loaded(3)


def state(canary: float | None = None, shadow: float | None = None, sticky: str | None = "X-User-Id") -> AliasState:
    rollout = LiveRollout(
        7,
        Arm(CANARY, canary) if canary is not None else None,
        Arm(SHADOW, shadow) if shadow is not None else None,
        sticky,
    )
    return AliasState(PRIMARY, rollout)


def routed(alias_state, key=None, draws=(0.5, 0.5), alias="production"):
    return route(alias_state, model="m", alias=alias, key=key, draws=draws)


def test_an_alias_without_a_rollout_is_answered_by_its_primary_with_no_shadow():
    answer = routed(AliasState(PRIMARY), key="user-1", draws=(0.0, 0.0))
    assert (answer.servable, answer.role, answer.rollout_id, answer.shadow) == (PRIMARY, "primary", None, None)


def test_the_key_share_is_a_sha256_of_model_alias_and_key_and_not_pythons_salted_hash():
    digest = hashlib.sha256(b"m\x00production\x00user-42").digest()
    assert key_share("m", "production", "user-42") == int.from_bytes(digest[:8], "big") / 2**64 * 100


@pytest.mark.parametrize("key", ["user-1", "", "ünïcode", "x" * 500, "42"])
def test_a_key_share_lies_in_zero_to_a_hundred(key):
    assert 0 <= key_share("m", "production", key) < 100


@pytest.mark.parametrize("percent", [1, 10, 25, 50, 90])
def test_a_keyed_request_goes_to_the_canary_exactly_when_its_share_is_below_the_percent(percent):
    for i in range(200):
        key = f"user-{i}"
        expected = "canary" if key_share("m", "production", key) < percent else "primary"
        assert routed(state(canary=percent), key=key).role == expected


@pytest.mark.parametrize("draws", [(0.0, 0.0), (0.999, 0.999), (0.3, 0.7)])
def test_the_same_key_gets_the_same_version_whatever_the_random_draws(draws):
    alias_state = state(canary=50)
    for i in range(100):
        key = f"user-{i}"
        assert routed(alias_state, key=key, draws=draws).servable is routed(alias_state, key=key).servable


@pytest.mark.parametrize("percent", [5, 10, 30, 50])
def test_the_canary_gets_its_percent_of_many_keys(percent):
    keys = [f"customer-{i}" for i in range(20_000)]
    share = sum(routed(state(canary=percent), key=k).role == "canary" for k in keys) / len(keys) * 100
    assert share == pytest.approx(percent, abs=2.0)  # 20,000 draws: sigma is at most 0.35 points


def test_raising_the_percent_keeps_every_canary_key_on_the_canary():
    keys = [f"user-{i}" for i in range(2_000)]
    at_10 = {k for k in keys if routed(state(canary=10), key=k).role == "canary"}
    at_30 = {k for k in keys if routed(state(canary=30), key=k).role == "canary"}
    assert at_10 and at_10 < at_30


def test_a_key_is_routed_independently_on_another_alias_or_model():
    keys = [f"user-{i}" for i in range(1_000)]
    here = [routed(state(canary=50), key=k).role for k in keys]
    other_alias = [routed(state(canary=50), key=k, alias="staging").role for k in keys]
    other_model = ["canary" if key_share("other", "production", k) < 50 else "primary" for k in keys]
    assert here != other_alias and here != other_model


def test_a_hundred_percent_canary_takes_every_request():
    assert {routed(state(canary=100), key=f"u{i}").role for i in range(500)} == {"canary"}
    assert routed(state(canary=100), draws=(0.999999, 0.5)).role == "canary"


@pytest.mark.parametrize(
    ("draw", "percent", "role"),
    [(0.0, 10, "canary"), (0.0999, 10, "canary"), (0.1, 10, "primary"), (0.5, 10, "primary"),
     (0.4999, 50, "canary"), (0.5, 50, "primary"), (0.0, 0.5, "canary"), (0.005, 0.5, "primary")],
)
def test_a_request_without_a_key_goes_to_the_canary_with_the_percents_odds(draw, percent, role):
    assert routed(state(canary=percent), key=None, draws=(draw, 0.99)).role == role


def test_a_rollout_without_a_sticky_header_routes_by_the_draw():
    alias_state = state(canary=10, sticky=None)
    assert routed(alias_state, draws=(0.05, 0.5)).role == "canary"
    assert routed(alias_state, draws=(0.15, 0.5)).role == "primary"


@pytest.mark.parametrize(("draw", "taken"), [(0.0, True), (0.4999, True), (0.5, False), (0.99, False)])
def test_the_shadow_takes_its_percent_of_requests_by_the_second_draw(draw, taken):
    answer = routed(state(canary=10, shadow=50), key="user-1", draws=(0.5, draw))
    assert (answer.shadow is SHADOW) == taken


def test_a_shadow_only_rollout_answers_with_the_primary_and_names_the_rollout():
    answer = routed(state(shadow=100), key="user-1", draws=(0.0, 0.0))
    assert (answer.servable, answer.role, answer.rollout_id, answer.shadow) == (PRIMARY, "primary", 7, SHADOW)


def test_a_shadow_runs_whichever_version_answered():
    answer = routed(state(canary=100, shadow=100), key="user-1")
    assert (answer.role, answer.shadow) == ("canary", SHADOW)
