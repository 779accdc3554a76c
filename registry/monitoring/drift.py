"""Drift: whether what a version sees now (or answers) is distributed as what it was built or first
served on.

A reference is profiled once: a numeric column as the counts in the bins between its deciles, a
categorical one (or a classifier's answers) as the count of each value. A recent window is counted
in the same bins, and compared two ways: the population stability index (PSI, the usual ``> 0.2``
means "moved") and a test: Kolmogorov-Smirnov on the raw values when both sides have them, χ² on
the bin counts otherwise. scipy does the statistics.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

BINS = 10  # deciles of the reference
PSI_FLOOR = 1e-4  # a bin empty on one side still counts as this share (else the index is infinite)
MAX_CATEGORIES = 50  # the most frequent values of a categorical column; the rest share one bin
OTHER = "__other__"


@dataclass(frozen=True)
class Profile:
    """A column's reference: the bin edges (numeric) or values (categorical), their counts, and the
    raw values when the reference was served traffic (for the KS test)."""

    kind: str  # "numeric" or "categorical"
    edges: list[float] | None
    values: list | None
    counts: list[int]
    sample: list[float] | None = None

    def to_dict(self) -> dict:
        """The profile as JSON values (stored with a version's reference)."""
        return {"kind": self.kind, "edges": self.edges, "values": self.values, "counts": self.counts,
                "sample": self.sample}

    @classmethod
    def from_dict(cls, stored: dict) -> Profile:
        """A profile ``to_dict`` made."""
        return cls(stored["kind"], stored["edges"], stored["values"], stored["counts"], stored.get("sample"))


@dataclass(frozen=True)
class Drift:
    """How one column moved: its PSI, the test's p-value, and whether either crossed its threshold."""

    psi: float
    p_value: float
    test: str  # ks or chi2
    drifted: bool
    bins: list[str] = field(default_factory=list)  # each bin's name: a range of values, or a value
    reference_shares: list[float] = field(default_factory=list)  # the share of the reference in each bin
    recent_shares: list[float] = field(default_factory=list)  # and of the recent values


def profile(column: list, *, keep_sample: bool = False, max_sample: int | None = None) -> Profile:
    """The reference profile of ``column`` (numbers, or any other values as categories); with
    ``keep_sample`` a numeric one keeps its values for the KS test (at most ``max_sample`` of them,
    drawn evenly from the sorted values)."""
    if _numeric(column):
        values = np.asarray(column, dtype=float)
        edges = sorted(set(np.quantile(values, np.linspace(0, 1, BINS + 1)[1:-1]).tolist()))
        counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
        sample = None
        if keep_sample:
            sample = values if max_sample is None or len(values) <= max_sample else _quantiles(values, max_sample)
            sample = sample.tolist()
        return Profile("numeric", edges, None, counts.tolist(), sample)
    frequent = [value for value, _ in Counter(column).most_common(MAX_CATEGORIES)]
    counted = Counter(value if value in frequent else OTHER for value in column)
    kept = frequent + ([OTHER] if OTHER in counted else [])
    return Profile("categorical", None, kept, [counted[value] for value in kept])


def compare(reference: Profile, recent: list, *, psi_threshold: float = 0.2, p_threshold: float = 0.01,
            name_value: Callable[[object], str] = str) -> Drift:
    """How ``recent`` (raw values of the same column) differs from ``reference``; a categorical bin is
    named ``name_value(value)`` (the value itself by default)."""
    observed = np.asarray(_counts(reference, recent), dtype=float)
    # Values the reference never had share one more bin, where it counted none.
    expected = np.zeros(len(observed))
    expected[:len(reference.counts)] = reference.counts
    psi = population_stability(expected, observed)
    if reference.kind == "numeric" and reference.sample is not None and len(recent):
        from scipy import stats  # here: SciPy's import is a second of a worker's start, and no request needs it

        test, p_value = "ks", float(stats.ks_2samp(reference.sample, np.asarray(recent, dtype=float)).pvalue)
    else:
        test, p_value = "chi2", _chi2_p(expected, observed)
    return Drift(psi, p_value, test, psi > psi_threshold or p_value < p_threshold, _bin_names(reference, len(observed), name_value),
                 _shares(expected), _shares(observed))


def _bin_names(reference: Profile, count: int, name_value: Callable[[object], str]) -> list[str]:
    """Names of the bins a comparison counted in: value ranges between the edges, or the values."""
    if reference.kind == "numeric":
        edges = [f"{edge:.4g}" for edge in reference.edges]
        if not edges:
            return ["all"]
        return [f"< {edges[0]}"] + [f"{low} – {high}" for low, high in zip(edges, edges[1:])] + [f"≥ {edges[-1]}"]
    names = [name_value(value) if value != OTHER else "other" for value in reference.values]
    return names + ["new values"] * (count - len(names))


def _shares(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return (counts / total).tolist() if total else [0.0] * len(counts)


def population_stability(expected: np.ndarray, observed: np.ndarray) -> float:
    """PSI of two count vectors over the same bins: Σ (o − e) · ln(o / e) on their shares."""
    if not expected.sum() or not observed.sum():
        return 0.0
    e = np.maximum(expected / expected.sum(), PSI_FLOOR)
    o = np.maximum(observed / observed.sum(), PSI_FLOOR)
    return float(np.sum((o - e) * np.log(o / e)))


def _chi2_p(expected: np.ndarray, observed: np.ndarray) -> float:
    """χ² goodness of fit of the observed counts to the reference's shares (bins the reference never
    saw a value in are merged away: the test needs an expected count in each)."""
    seen = expected > 0
    if observed.sum() == 0 or seen.sum() < 2:
        return 1.0
    if observed[~seen].sum():
        return 0.0  # values where the reference had none: no goodness of fit to speak of
    shares = expected[seen] / expected[seen].sum()
    from scipy import stats  # as in compare

    return float(stats.chisquare(observed[seen], shares * observed[seen].sum()).pvalue)


def _counts(reference: Profile, recent: list) -> list[int]:
    if reference.kind == "numeric":
        values = np.asarray(recent, dtype=float)
        return np.bincount(np.searchsorted(reference.edges, values, side="right"),
                           minlength=len(reference.edges) + 1).tolist()
    known = set(reference.values)
    counted = Counter(value if value in known else OTHER for value in recent)
    return [counted[value] for value in reference.values] + ([counted[OTHER]] if OTHER not in known and counted[OTHER] else [])


def _quantiles(values: np.ndarray, count: int) -> np.ndarray:
    """``count`` values spread evenly over the distribution of ``values`` (what KS sees of them)."""
    return np.quantile(values, (np.arange(count) + 0.5) / count)


def _numeric(column: list) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in column)
