"""The statistics of a rollout's gates: each judges the canary against the primary on one step's
figures and answers pass, fail or waiting, with how many requests it needs and has.

Every gate may be asked at every tick without inflating its error: a step's looks are spent
Bonferroni-fashion on a doubling schedule (:func:`look_alpha`): the k-th look of a step that has
``n`` samples is made at level ``alpha / LOOKS`` once ``n`` has doubled since the look before,
and a decision reached at one look stands. So a step makes at most ``LOOKS`` looks whatever the
tick rate, and the chance of a wrong decision over all of them stays under ``alpha``.

- error rate: Newcombe's hybrid score interval of the difference of two proportions (canary −
  primary): fail when its lower end is above the allowed increase, pass when its upper end is at
  or below it.
- latency: per batch-size class, Mann-Whitney U on the step's latency buckets (is the canary
  slower?) and the ratio of the p99s: fail when, for batches of one size, the canary is
  significantly slower *and* its p99 exceeds the allowed ratio.
- agreement (classifiers): the Wilson interval of the share of mirrored rows on which the canary
  answered as the primary did; (regressors) the normal interval of the mean absolute difference.
- quality (once labels come): the interval of the difference of the arms' accuracy (or MAE).
- sample ratio: a χ² test of the arms' request counts (with a sticky header, a z test of their
  distinct keys) against the configured share; a mismatch halts the plan (the split is not what
  the figures assume).

scipy does the distributions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from registry.intervals import wilson, z_of
from registry.serving.figures import percentile_ms

ALPHA = 0.05  # the chance of a wrong decision over all of a step's looks, per gate
LOOKS = 12  # looks per step at most: enough to double from 1 request to 4,096
MIN_MARGIN = 0.001  # the narrowest rise of an error rate a sample size is worked out for
SRM_P = 0.001  # the usual threshold of a sample ratio mismatch, spent over a step's looks (false halts are costly)

PASS, FAIL, WAITING = "pass", "fail", "waiting"


@dataclass(frozen=True)
class Verdict:
    """A gate's answer: its state, the samples it needs and has, its figure, and why, in words."""

    state: str  # pass, fail or waiting
    needed: int
    seen: int
    value: float | None
    detail: str
    figures: dict | None = None  # what a gate compared, in numbers (the latency gate's p99s per batch size)

    def to_dict(self) -> dict:
        """As the rollout's ``plan.gates`` shows it."""
        shown = {"state": self.state, "needed": self.needed, "seen": self.seen, "value": self.value, "detail": self.detail}
        return {**shown, **(self.figures or {})}


def look_alpha() -> float:
    """The level of each look (Bonferroni over a step's at most ``LOOKS`` looks)."""
    return ALPHA / LOOKS


def difference_interval(first: tuple[int, int], second: tuple[int, int], confidence: float) -> tuple[float, float]:
    """Newcombe's hybrid score interval of p1 − p2, each given as (successes, n) (sound at rates near 0,
    where errors live)."""
    (x1, n1), (x2, n2) = first, second
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, confidence)
    l2, u2 = wilson(x2, n2, confidence)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return max(-1.0, low), min(1.0, high)


def error_rate(canary: tuple[int, int], primary: tuple[int, int], *, max_increase: float, min_requests: int) -> Verdict:
    """Is the canary's error rate (errors, requests) no worse than the primary's by more than ``max_increase``?"""
    (ce, cn), (pe, pn) = canary, primary
    seen = min(cn, pn)
    pooled = (ce + pe) / (cn + pn) if cn + pn else 0.0
    needed = max(min_requests, _needed_for_difference(pooled, max_increase))
    if seen == 0:
        return Verdict(WAITING, needed, 0, None, "no request on both arms yet")
    low, high = difference_interval((ce, cn), (pe, pn), 1 - look_alpha())
    increase = ce / cn - pe / pn
    words = f"canary {ce}/{cn} errors, primary {pe}/{pn}: increase {increase:+.4f} (interval {low:+.4f} to {high:+.4f})"
    if low > max_increase:
        return Verdict(FAIL, needed, seen, increase, f"{words} is above the allowed {max_increase:+.4f}")
    if seen >= min_requests and high <= max_increase:
        return Verdict(PASS, needed, seen, increase, f"{words} stays within the allowed {max_increase:+.4f}")
    return Verdict(WAITING, needed, seen, increase, f"{words}: not yet conclusive")


def _needed_for_difference(rate: float, margin: float) -> int:
    """Requests per arm for an interval of the difference of two rates near ``rate`` to be ``margin`` wide on each side."""
    z = z_of(look_alpha())
    variance = max(rate * (1 - rate), 0.0025)  # at a rate of 0 the score interval still needs about this much
    margin = max(margin, MIN_MARGIN)  # a plan stored allowing no rise at all: it can fail, never pass
    return math.ceil(2 * z * z * variance / (margin * margin))


def latency(canary: dict[str, list[int]], primary: dict[str, list[int]], *, max_p99_ratio: float,
            min_requests: int) -> Verdict:
    """Is the canary's p99 within ``max_p99_ratio`` of the primary's, like for like? Latencies are counted
    in buckets per batch-size class (``figures.row_class``); only batches of the same class are compared,
    so large batches sent to one arm cannot make it look slow. Each class both arms answered enough of
    is judged (its share of the look's level, Bonferroni); the gate fails when one class fails, and
    passes when at least one was judged and none failed. Its p99s are the figures' (``percentile_ms``)."""
    needed = max(min_requests, 100)  # a p99 needs a hundred values to be more than the slowest one
    shared = sorted(set(canary) & set(primary), key=_class_order)
    counts = {name: (sum(canary[name]), sum(primary[name])) for name in shared}
    seen = max((min(pair) for pair in counts.values()), default=0)
    if seen == 0:
        return Verdict(WAITING, needed, 0, None, "no batch size answered by both arms yet")
    judged = [name for name in shared if min(counts[name]) >= needed]
    level = look_alpha() / max(len(judged), 1)
    by_rows, words, failed, ratios = {}, [], [], {}
    for name in shared:
        c99, p99 = percentile_ms(canary[name], 0.99), percentile_ms(primary[name], 0.99)
        ratio = c99 / p99 if p99 else 1.0
        p_value = slower_p(canary[name], primary[name])
        by_rows[name] = {"canary_requests": counts[name][0], "primary_requests": counts[name][1],
                         "canary_p99_ms": c99, "primary_p99_ms": p99, "ratio": round(ratio, 4)}
        ratios[name] = ratio
        words.append(f"{name} rows: p99 canary {c99:g} ms, primary {p99:g} ms (ratio {ratio:.2f}, "
                     f"{min(counts[name])} requests; canary slower: p = {p_value:.2g})")
        if name in judged and ratio > max_p99_ratio and p_value < level:
            failed.append(name)
    text = "; ".join(words)
    if failed:
        worst = max(failed, key=ratios.get)
        return Verdict(FAIL, needed, seen, ratios[worst], f"{text}: batches of {worst} rows are above the allowed "
                       f"ratio {max_p99_ratio:g}", {"by_rows": by_rows})
    value = max((ratios[name] for name in judged), default=ratios[max(shared, key=lambda n: min(counts[n]))])
    if judged:
        return Verdict(PASS, needed, seen, value, f"{text}: within the allowed ratio {max_p99_ratio:g}, or not "
                       "significantly slower", {"by_rows": by_rows})
    return Verdict(WAITING, needed, seen, value, f"{text}: too few requests of one batch size on both arms yet",
                   {"by_rows": by_rows})


def _class_order(name: str) -> int:
    """Batch-size classes from the smallest ("1", "2-10", ... "1001+")."""
    return int(name.split("-")[0].rstrip("+"))


def slower_p(canary: list[int], primary: list[int]) -> float:
    """One-sided Mann-Whitney p-value that the canary's latencies are larger, from bucket counts
    (each bucket a group of ties): U, its tie-corrected variance and the normal approximation with a
    continuity correction, as ``scipy.stats.mannwhitneyu(..., method="asymptotic")`` computes them,
    without expanding the counts into samples."""
    c, p = np.asarray(canary, dtype=float), np.asarray(primary, dtype=float)
    n1, n2 = c.sum(), p.sum()
    ties = c + p
    n = n1 + n2
    if n1 == 0 or n2 == 0 or (ties > 0).sum() < 2:
        return 1.0
    below = np.concatenate([[0.0], np.cumsum(p)[:-1]])  # primary values in lower buckets
    u = float(np.sum(c * (below + p / 2)))
    variance = n1 * n2 / 12 * ((n + 1) - np.sum(ties ** 3 - ties) / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    z = (u - n1 * n2 / 2 - 0.5) / np.sqrt(variance)
    from scipy import stats  # as in z_of

    return float(stats.norm.sf(z))


def agreement(agreed: int, compared: int, *, minimum: float, min_rows: int) -> Verdict:
    """Does the canary answer as the primary does on at least ``minimum`` of the mirrored rows?"""
    needed = max(min_rows, _needed_for_share(minimum))
    if compared == 0:
        return Verdict(WAITING, needed, 0, None, "no mirrored row compared yet")
    low, high = wilson(agreed, compared, 1 - 2 * look_alpha())  # one-sided ends
    share = agreed / compared
    words = f"{agreed} of {compared} mirrored rows agree ({share:.3f}, interval {low:.3f} to {high:.3f})"
    if high < minimum:
        return Verdict(FAIL, needed, compared, share, f"{words}: below the required {minimum:g}")
    if compared >= min_rows and low >= minimum:
        return Verdict(PASS, needed, compared, share, f"{words}: at least the required {minimum:g}")
    return Verdict(WAITING, needed, compared, share, f"{words}: not yet conclusive")


def _needed_for_share(minimum: float) -> int:
    """Rows for a perfect agreement's interval to clear ``minimum`` (more when they disagree)."""
    z = z_of(2 * look_alpha())
    return math.ceil(z * z * minimum / max(1 - minimum, 1e-6))


def mean_difference(total: float, squares: float, compared: int, *, maximum: float, min_rows: int) -> Verdict:
    """Is the mean absolute difference of the canary's answers from the primary's at most ``maximum``?"""
    needed = max(min_rows, 30)
    if compared == 0:
        return Verdict(WAITING, needed, 0, None, "no mirrored row compared yet")
    mean = total / compared
    variance = max(squares / compared - mean * mean, 0.0) * compared / max(compared - 1, 1)
    half = z_of(2 * look_alpha()) * math.sqrt(variance / compared)
    words = f"mean |difference| {mean:.4g} over {compared} mirrored rows (interval {mean - half:.4g} to {mean + half:.4g})"
    if compared >= needed and mean - half > maximum:
        return Verdict(FAIL, needed, compared, mean, f"{words}: above the allowed {maximum:g}")
    if compared >= needed and mean + half <= maximum:
        return Verdict(PASS, needed, compared, mean, f"{words}: within the allowed {maximum:g}")
    return Verdict(WAITING, needed, compared, mean, f"{words}: not yet conclusive")


def quality(canary: tuple[float, int], primary: tuple[float, int], *, metric: str, max_drop: float,
            spread: tuple[float, float] = (0.0, 0.0), min_labels: int = 100) -> Verdict:
    """Is the canary's live quality (value, labelled rows) no worse than the primary's by more than ``max_drop``?

    ``metric`` accuracy: a drop is primary − canary; mae: canary − primary. ``spread`` are the two arms'
    standard errors for MAE (accuracy's come from its counts)."""
    (cv, cn), (pv, pn) = canary, primary
    seen = min(cn, pn)
    if seen < min_labels:
        return Verdict(WAITING, min_labels, seen, None, f"{cn} labelled canary rows, {pn} primary: waiting for {min_labels} each")
    z = z_of(look_alpha())
    if metric == "accuracy":
        low, high = difference_interval((round(pv * pn), pn), (round(cv * cn), cn), 1 - look_alpha())  # primary − canary
        drop = pv - cv
    else:
        drop = cv - pv
        half = z * math.hypot(*spread)
        low, high = drop - half, drop + half
    words = f"{metric} canary {cv:.4g}, primary {pv:.4g}: drop {drop:+.4g} (interval {low:+.4g} to {high:+.4g})"
    if low > max_drop:
        return Verdict(FAIL, min_labels, seen, drop, f"{words} is more than the allowed {max_drop:g}")
    if high <= max_drop:
        return Verdict(PASS, min_labels, seen, drop, f"{words} stays within the allowed {max_drop:g}")
    return Verdict(WAITING, min_labels, seen, drop, f"{words}: not yet conclusive")


def key_ratio(canary: tuple[int, float], primary: tuple[int, float], percent: float) -> Verdict:
    """Do the arms' distinct sticky keys (each an estimate and its standard deviation) match the canary's
    ``percent``? The sticky hash sends a key to the canary with that chance, so the canary's keys are
    binomial; a split off its share (a process routing by another, keys chosen to land on one arm)
    halts the plan. The sketches' own error is added to the binomial's, so an estimate is no mismatch."""
    (c, c_sd), (p, p_sd) = canary, primary
    total, share = c + p, percent / 100
    if total < 100:
        return Verdict(WAITING, 100, total, None, "fewer than 100 keys: too few to check the split")
    variance = total * share * (1 - share) + ((1 - share) * c_sd) ** 2 + (share * p_sd) ** 2
    z = (c - share * total) / math.sqrt(variance)
    from scipy import stats  # as in z_of

    p_value = float(2 * stats.norm.sf(abs(z)))
    words = f"the canary has {c / total:.1%} of {total} keys for a configured {percent:g}% (p = {p_value:.2g})"
    if p_value < SRM_P / LOOKS:
        return Verdict(FAIL, 100, total, c / total, f"{words}: the split of keys does not match its share")
    return Verdict(PASS, 100, total, c / total, words)


def sample_ratio(canary: int, primary: int, percent: float) -> Verdict:
    """Do the arms' request counts match the canary's configured ``percent``? (χ², halting at ``SRM_P``)"""
    total = canary + primary
    if total < 100:
        return Verdict(WAITING, 100, total, None, "fewer than 100 requests: too few to check the split")
    expected = np.array([percent / 100, 1 - percent / 100]) * total
    from scipy import stats  # as in z_of

    p_value = float(stats.chisquare([canary, primary], expected).pvalue)
    share = canary / total
    words = f"the canary took {share:.1%} of {total} requests for a configured {percent:g}% (p = {p_value:.2g})"
    if p_value < SRM_P / LOOKS:
        return Verdict(FAIL, 100, total, share, f"{words}: the split does not match its share")
    return Verdict(PASS, 100, total, share, words)
