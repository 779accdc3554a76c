"""Which files of a disk cache go when it is over its byte budget: the least recently used first,
never one that is kept (what an alias or a rollout serves). The machine's copies of stored artifacts
(``node_cache.py``) and the served forms (``served_forms.py``) both keep to a budget
this way; each lists its own entries and removes the ones named here."""
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    """One cached thing: its digest, its bytes on disk, and when it was last used (a modification time)."""

    sha256: str
    size: int
    used: float


def over_budget(entries: Iterable[Entry], budget_bytes: int, kept: Callable[[], set[str]]) -> list[Entry]:
    """The entries to remove, least recently used first, until the rest fit ``budget_bytes``; never one
    whose digest ``kept()`` names. ``kept`` is called only when over the budget (it may read the
    database, and its exceptions are the caller's)."""
    ordered = sorted(entries, key=lambda entry: entry.used)
    total = sum(entry.size for entry in ordered)
    if total <= budget_bytes:
        return []
    keep = kept()
    removed = []
    for entry in ordered:
        if total <= budget_bytes:
            break
        if entry.sha256 not in keep:
            removed.append(entry)
            total -= entry.size
    return removed
