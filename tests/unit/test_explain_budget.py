"""The prediction log's writer spends at most a share of its time explaining: what it spent comes back
at that share of a second per second, up to a burst."""
from registry.monitoring.logged_explanations import TimeBudget


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_spent_then_the_budget_comes_back_at_its_share_of_the_time():
    clock = Clock()
    budget = TimeBudget(share=0.25, burst=1.0, clock=clock)
    assert budget.allows()
    budget.spend(1.5)  # one long explanation may overdraw it …
    assert not budget.allows()
    clock.now += 1.0  # … and a second gives back a quarter of one
    assert not budget.allows()
    clock.now += 1.1
    assert budget.allows()


def test_what_comes_back_never_exceeds_the_burst():
    clock = Clock()
    budget = TimeBudget(share=0.25, burst=1.0, clock=clock)
    clock.now += 3600
    budget.spend(1.0)
    assert not budget.allows()
