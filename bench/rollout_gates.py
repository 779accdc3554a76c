"""How the rollout gates decide, by simulation: how often they abort a canary identical to its
primary (the false-abort rate, goal ≤ 5 % per gate), and how many requests they need to pass a
healthy canary and to stop a bad one.

Each simulated run is one plan step: requests arrive in ticks of ``--per-tick``, split by the
step's share; the controller's look schedule (``registry.autopilot.controller.looked``) decides
at every tick, as it does on a server. Arms differ only where a scenario says so.

    .venv/bin/python -m bench.rollout_gates --runs 2000

Figures only; nothing passes or fails.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bench import report
from registry.autopilot import gates
from registry.autopilot.controller import StepView, answers_of, looked
from registry.serving.figures import LATENCY_BUCKETS_MS, Tally

HERE = Path(__file__).resolve().parent
STEP = {"percent": 25.0, "min_requests": 2000, "max_minutes": 60.0}
GATES = {"error_rate": {"max_increase": 0.01}, "latency": {"max_p99_ratio": 1.5}, "agreement": {"min": 0.9}}
MAX_TICKS = 400


@dataclass(frozen=True)
class Arm:
    """How one arm behaves: its error rate, its latency (log-normal, ms) and how often it agrees."""

    error_rate: float = 0.01
    latency_median_ms: float = 4.0
    agreement: float = 0.97  # mirrored canary rows answered as the primary did


SCENARIOS = {
    "identical": (Arm(), Arm()),
    "errors +3 points": (Arm(error_rate=0.04), Arm()),
    "twice as slow": (Arm(latency_median_ms=8.0), Arm()),
    "disagrees (70 %)": (Arm(agreement=0.7), Arm()),
}


def simulate(canary: Arm, primary: Arm, *, runs: int, per_tick: int, seed: int = 0) -> dict:
    """Run ``runs`` steps of one scenario; how they ended and the requests each needed to decide."""
    rng = np.random.default_rng(seed)
    outcomes = {"pass": 0, "fail": 0, "undecided": 0}
    failed_by: dict[str, int] = {}
    decided_at = []
    for _ in range(runs):
        outcome, gate, requests = _one_step(rng, canary, primary, per_tick)
        outcomes[outcome] += 1
        if gate:
            failed_by[gate] = failed_by.get(gate, 0) + 1
        if outcome != "undecided":
            decided_at.append(requests)
    return {"outcomes": outcomes, "failed_by": failed_by,
            "requests_to_decide_p50": float(np.median(decided_at)) if decided_at else None,
            "requests_to_decide_p90": float(np.percentile(decided_at, 90)) if decided_at else None}


def _one_step(rng, canary: Arm, primary: Arm, per_tick: int) -> tuple[str, str | None, int]:
    view = StepView(model="m", alias="production", step_index=0, steps=[STEP], gates=GATES, on_success="promote",
                    looks={}, verdicts={}, started_at=datetime.now(timezone.utc), settled=True, sticky=False,
                    task="classification", canary_version=2, primary_version=1, canary=Tally(), primary=Tally())
    for _ in range(MAX_TICKS):
        to_canary = rng.binomial(per_tick, STEP["percent"] / 100)
        _serve(rng, view.canary, canary, to_canary, mirrored=True)
        _serve(rng, view.primary, primary, per_tick - to_canary, mirrored=False)
        verdicts, looks = looked(view, answers_of(view))
        view = replace(view, verdicts=verdicts, looks=looks)
        total = view.canary.requests + view.primary.requests
        failed = [gate for gate, v in verdicts.items() if v["state"] == gates.FAIL]
        if failed:
            return "fail", failed[0], total
        enough = min(view.canary.requests, view.primary.requests) >= STEP["min_requests"]
        if enough and all(v["state"] == gates.PASS for v in verdicts.values()):
            return "pass", None, total
    return "undecided", None, view.canary.requests + view.primary.requests


def _serve(rng, tally: Tally, arm: Arm, requests: int, *, mirrored: bool) -> None:
    """Add ``requests`` answered by ``arm`` to ``tally`` (and their mirrored comparisons for the canary)."""
    errors = rng.binomial(requests, arm.error_rate)
    tally.requests += requests
    tally.errors += errors
    tally.weighed += requests  # one request each, one row each: every request weighs
    tally.weighed_errors += errors
    latencies = rng.lognormal(np.log(arm.latency_median_ms), 0.5, requests)
    counted = np.bincount(np.searchsorted(LATENCY_BUCKETS_MS, latencies), minlength=len(LATENCY_BUCKETS_MS) + 1)
    tally.latency_buckets = [a + int(b) for a, b in zip(tally.latency_buckets, counted)]
    single = tally.latency_by_rows.get("1", [0] * len(counted))
    tally.latency_by_rows["1"] = [a + int(b) for a, b in zip(single, counted)]
    if mirrored:
        tally.rows += requests
        tally.compared += requests
        tally.agreed += rng.binomial(requests, arm.agreement)


def main() -> None:
    """Parse the options, simulate every scenario, print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--per-tick", type=int, default=200, help="requests between two controller ticks")
    args = parser.parse_args()
    run = {"started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "options": vars(args),
           "machine": report.machine_facts(),
           "figures": {name: simulate(*arms, runs=args.runs, per_tick=args.per_tick, seed=i)
                       for i, (name, arms) in enumerate(SCENARIOS.items())}}
    text = describe(run)
    print(text)
    report.save("rollout-gates", run, text, HERE / "results", latest="rollout-gates")


def describe(run: dict) -> str:
    """The figures as Markdown."""
    o = run["options"]
    lines = [f"# Rollout gates by simulation, {run['started_at']}", "",
             f"{o['runs']} steps per scenario; step: canary {STEP['percent']:g}%, {STEP['min_requests']} requests per arm; "
             f"gates {GATES}; {o['per_tick']} requests per tick.", "",
             "| scenario | passed | failed (by gate) | undecided | requests to decide p50 / p90 |",
             "| --- | --- | --- | --- | --- |"]
    for name, f in run["figures"].items():
        runs = sum(f["outcomes"].values())
        by = ", ".join(f"{gate} {count}" for gate, count in f["failed_by"].items()) or "–"
        lines.append(f"| {name} | {f['outcomes']['pass'] / runs:.1%} | {f['outcomes']['fail'] / runs:.1%} ({by}) | "
                     f"{f['outcomes']['undecided'] / runs:.1%} | {f['requests_to_decide_p50']:.0f} / "
                     f"{f['requests_to_decide_p90']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
