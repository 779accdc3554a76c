"""A plan's step in figures: each arm's totals less the step's baseline, the keys each arm saw in
the rollout's split, and the figures the plan shows and its history records beside a decision."""
from __future__ import annotations

from dataclasses import asdict, fields

from registry.serving.figures import Tally, percentile_ms
from registry.serving.key_units import counted, is_epoch


def keys_in(total: Tally | None, epoch: float | None) -> tuple[int, float]:
    """The distinct keys an arm saw in the rollout's split ``epoch`` (none counted in an earlier one):
    an estimate, never more than the arm's requests (a sketch's estimate may overshoot: 80 keys for 79
    requests), and its standard deviation."""
    if total is None or not is_epoch(total.key_epoch, epoch):
        return 0, 0.0
    estimate, spread = counted(total.key_sketch)
    return min(estimate, total.requests), spread


def baseline_counts(tally: Tally) -> dict:
    """A tally's counts, as a step's baseline keeps them (its keys are counted per split instead)."""
    counts = asdict(tally)
    counts.pop("key_epoch"), counts.pop("key_sketch")
    return counts


def since(total: Tally | None, baseline: dict | None) -> Tally:
    """``total`` less what it was when the step began."""
    now = total.copy() if total is not None else Tally()
    if not baseline:
        return now
    for f in fields(Tally):
        before = baseline.get(f.name)
        if f.name in ("abs_diff_max", "key_epoch", "key_sketch") or before is None:
            continue
        if f.name == "latency_buckets":
            now.latency_buckets = _less(now.latency_buckets, before)
        elif f.name == "latency_by_rows":
            now.latency_by_rows = {name: _less(buckets, before.get(name, []))
                                   for name, buckets in now.latency_by_rows.items()}
        else:
            setattr(now, f.name, getattr(now, f.name) - before)
    return now


def _less(buckets: list[int], before: list[int]) -> list[int]:
    return [a - b for a, b in zip(buckets, before + [0] * len(buckets))]


def step_figures(view) -> dict:
    """The step's figures of both arms of ``view`` (a controller's ``StepView``), as the plan shows them
    and the history records them beside a decision; each p99 is worked out as the latency gate's is."""
    def arm(tally: Tally, version: int, keys: tuple[int, float]) -> dict:
        return {"version": version, "requests": tally.requests, "weighed_requests": tally.weighed,
                "errors": tally.errors, "weighed_errors": tally.weighed_errors, "refused": tally.refused,
                "keys": keys[0] if view.sticky else None,
                "p99_ms": percentile_ms(tally.latency_buckets, 0.99),
                "latency_by_rows": {name: {"requests": sum(buckets), "p99_ms": percentile_ms(buckets, 0.99)}
                                    for name, buckets in sorted(tally.latency_by_rows.items()) if sum(buckets)},
                "compared_rows": tally.rows, "agreed_rows": tally.agreed}

    return {"canary": arm(view.canary, view.canary_version, view.canary_keys),
            "primary": arm(view.primary, view.primary_version, view.primary_keys)}
