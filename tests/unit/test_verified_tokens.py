"""Tokens verified lately: trusted for a few seconds, and through a database outage for longer."""
from registry.access.tokens import Principal, VerifiedTokens

CI = Principal("ci-bot", "ci")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_verified_token_is_trusted_while_fresh_then_asked_about_again():
    clock = Clock()
    verified = VerifiedTokens(fresh_seconds=5, outage_seconds=900, clock=clock)
    verified.remember("d1", CI)
    clock.now += 4.9
    assert verified.fresh("d1") == CI
    clock.now += 0.2
    assert verified.fresh("d1") is None  # revocation takes effect within five seconds


def test_through_an_outage_a_token_verified_within_the_grace_still_works():
    clock = Clock()
    verified = VerifiedTokens(fresh_seconds=5, outage_seconds=900, clock=clock)
    verified.remember("d1", CI)
    clock.now += 899
    assert verified.during_outage("d1") == CI
    clock.now += 2
    assert verified.during_outage("d1") is None
    assert verified.during_outage("never-seen") is None


def test_a_forgotten_token_is_not_trusted_and_the_memory_is_bounded():
    verified = VerifiedTokens(most=3, clock=Clock())
    verified.remember("d1", CI)
    verified.forget("d1")
    assert verified.fresh("d1") is None and verified.during_outage("d1") is None
    for n in range(10):
        verified.remember(f"d{n}", CI)
    assert sum(verified.fresh(f"d{n}") is not None for n in range(10)) <= 3
