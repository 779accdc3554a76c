"""The one eviction rule of the node cache and the served forms: least recently used first, never
what is kept, and the database (``kept``) asked only when over the budget."""
from registry.artifacts.disk_budget import Entry, over_budget


def test_the_least_recently_used_go_first_until_the_rest_fit():
    entries = [Entry("new", 40, used=3.0), Entry("old", 40, used=1.0), Entry("mid", 40, used=2.0)]
    assert [e.sha256 for e in over_budget(entries, 80, set)] == ["old"]
    assert [e.sha256 for e in over_budget(entries, 40, set)] == ["old", "mid"]


def test_what_is_kept_stays_even_when_the_budget_is_not_met():
    entries = [Entry("served", 100, used=1.0), Entry("spare", 10, used=2.0)]
    assert [e.sha256 for e in over_budget(entries, 50, lambda: {"served"})] == ["spare"]


def test_kept_is_not_asked_within_the_budget():
    def kept():
        raise AssertionError("asked the database while within the budget")

    assert over_budget([Entry("a", 10, used=1.0)], 10, kept) == []
