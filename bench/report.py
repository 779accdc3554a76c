"""Machine facts, the readable table, and the JSON + Markdown files under bench/results/."""
import json
import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from bench import loadgen
from config import BASE_DIR

PACKAGES = ("scikit-learn", "numpy", "flask", "gunicorn", "granian", "werkzeug")


def machine_facts() -> dict:
    """What the figures depend on: cores, CPU, load, versions of the runtime and the code."""
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": _cpu_model(),
        "loadavg_at_start": list(os.getloadavg()),
        "platform": platform.platform(),
        "python": platform.python_version(),
        **{name: _version(name) for name in PACKAGES},
        "wrk": loadgen.wrk_version(),
        "git_commit": _git_commit(),
    }


def busy(facts: dict) -> bool:
    """True when other work was using over half the machine's CPUs as the run started."""
    return facts["loadavg_at_start"][0] > 0.5 * facts["nproc"]


def markdown(run: dict) -> str:
    """The whole run as Markdown: facts, command, predict table, ratios, swap table."""
    facts = run["machine"]
    lines = [
        f"# Benchmark {run['started_at']}",
        "",
        f"Command: `{run['command']}`  ",
        f"Machine: {facts['nproc']} CPUs ({facts['cpu']}), load average at start "
        f"{', '.join(f'{x:.2f}' for x in facts['loadavg_at_start'])}, {facts['platform']}  ",
        f"Software: Python {facts['python']}, scikit-learn {facts['scikit-learn']}, NumPy {facts['numpy']}, "
        f"Flask {facts['flask']}, gunicorn {facts['gunicorn']}, {facts['wrk']}, commit {facts['git_commit']}  ",
        f"Setup: {run['setup']}",
        "",
    ]
    if busy(facts):
        lines += [f"**Note:** the machine was busy (load average {facts['loadavg_at_start'][0]:.1f} on {facts['nproc']} "
                  "CPUs at start, " + ", ".join(f"{x:.1f}" for x in facts.get("loadavg_at_end", [])[:1]) +
                  " at end): rps and latency are noisy; server CPU per request is the steadier comparison.", ""]
    targets = _targets(run)
    if targets:
        lines += ["## Targets", "", *_table(["target", "goal", "measured"], targets), ""]
    if run.get("predict"):
        lines += ["## Predict", "", *_table(*_predict_rows(run["predict"], run["ratios"])), ""]
    if run.get("inference"):
        lines += ["## The model alone, in process (CPU µs per call, best of 5 rounds)", "",
                  *_table(*_inference_rows(run["inference"])), ""]
    if run.get("startup"):
        lines += [f"## Start-up to the first answered prediction ({run['startup']['models']})", "",
                  *_table(*_startup_rows(run["startup"])), ""]
    if run.get("swap"):
        lines += ["## Swap under load", ""]
        for swap in run["swap"]:
            lines += [f"Model `{swap['model']}`, c={swap['concurrency']}: {_swap_summary(swap)}", "",
                      *_table(*_swap_rows(swap)), ""]
    return "\n".join(lines)


def console(run: dict) -> str:
    """The same tables, for the terminal."""
    return markdown(run).replace("`", "")


def write(run: dict, directory: Path) -> Path:
    """``bench-<time>.json`` and ``.md`` (plus ``latest.*`` copies) in ``directory``; the ``.md`` path."""
    return save("bench", run, markdown(run), directory, latest="latest")


def save(prefix: str, run: dict, text: str, directory: Path, *, latest: str | None = None) -> Path:
    """``run`` as ``<prefix>-<started_at>.json`` and ``text`` as its ``.md`` in ``directory`` (made if missing).

    With ``latest`` the two are also written as ``<latest>.json`` and ``<latest>.md``. Prints where
    they went and returns the ``.md`` path.
    """
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{prefix}-{run['started_at'].replace(':', '').replace('-', '')}"
    text_json, text_md = json.dumps(run, indent=2) + "\n", text.rstrip("\n") + "\n"
    for name in filter(None, (stem, latest)):
        (directory / f"{name}.json").write_text(text_json)
        (directory / f"{name}.md").write_text(text_md)
    print(f"\nwritten: {directory / stem}.json and .md")
    return directory / f"{stem}.md"


def _predict_rows(cells: list[dict], ratios: list[dict]) -> tuple[list[str], list[list[str]]]:
    by_cell = {(r["model"], r["rows"], r["concurrency"], r["target"]): r for r in ratios}
    header = ["model", "rows", "c", "target", "rps", "p50 ms", "p99 ms", "failed", "server CPU ms/req",
              "rps ÷ baseline", "p99 ÷ baseline", "CPU ÷ baseline"]
    rows = []
    for c in cells:
        ratio = by_cell.get((c["model"], c["rows"], c["concurrency"], c["target"]), {})
        rows.append([c["model"], str(c["rows"]), str(c["concurrency"]), c["target"], f"{c['rps']:.1f}",
                     f"{c['p50_ms']:.2f}", f"{c['p99_ms']:.2f}", str(c["failed"]), f"{c['server_cpu_ms_per_request']:.2f}",
                     _ratio(ratio.get("rps_ratio")), _ratio(ratio.get("p99_ratio")), _ratio(ratio.get("cpu_ratio"))])
    return header, rows


def _targets(run: dict) -> list[list[str]]:
    """The issue's goals next to what this run measured."""
    rows = []
    for ratio in run.get("ratios", []):
        if ratio["rows"] == 1 and ratio["target"] == "registry alias":
            goal = "≥ 5×" if ratio["model"] == "forest" else "≥ 1.0×"
            rows.append([f"{ratio['model']} 1 row, c={ratio['concurrency']}: alias rps ÷ baseline", goal,
                         f"{_ratio(ratio['rps_ratio'])} (server CPU ÷ baseline {_ratio(ratio['cpu_ratio'])})"])
    for cell in run.get("inference", []):
        if cell["rows"] > 1:
            rows.append([f"{cell['model']} {cell['rows']:,} rows: scikit-learn time ÷ registry predictor", "≥ 1.0×",
                         f"{_ratio(cell['speedup'])} (identical: {cell['identical']})"])
    if run.get("startup"):
        rows.append(["start-up to first answer: registry ÷ baseline (median wall; CPU)", "as low as possible",
                     f"{_ratio(run['startup']['ratio'])}; {_ratio(run['startup']['cpu_ratio'])}"])
    return rows


def _inference_rows(cells: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = ["model", "rows", "registry predictor", "registry µs", "scikit-learn µs", "speed-up", "identical"]
    return header, [[c["model"], str(c["rows"]), c["predictor"], f"{c['registry_us']:.1f}", f"{c['sklearn_us']:.1f}",
                     _ratio(c["speedup"]), str(c["identical"])] for c in cells]


def _startup_rows(found: dict) -> tuple[list[str], list[list[str]]]:
    header = ["server", "median s", "min s", "max s", "median CPU s", "runs (s)"]
    return header, [[name, f"{f['median_s']:.2f}", f"{f['min_s']:.2f}", f"{f['max_s']:.2f}", f"{f['median_cpu_s']:.2f}",
                     ", ".join(f"{x:.2f}" for x in f["runs_s"])] for name, f in ((n, found[n]) for n in ("registry", "baseline"))]


def _swap_rows(swap: dict) -> tuple[list[str], list[list[str]]]:
    header = ["window", "seconds", "requests", "rps", "p50 ms", "p99 ms", "max ms", "failed", "versions answered"]
    rows = []
    for label, key in (("steady", "steady"), ("during 10 moves", "during_swaps")):
        w = swap[key]
        versions = ", ".join(f"v{v}: {n}" for v, n in sorted(w["versions"].items())) or "-"
        rows.append([label, f"{w['seconds']:.1f}", str(w["requests"]), f"{w['rps']:.1f}", f"{w['p50_ms']:.2f}",
                     f"{w['p99_ms']:.2f}", f"{w['max_ms']:.1f}", str(w["failed"]), versions])
    return header, rows


def _swap_summary(swap: dict) -> str:
    durations = sorted(m["seconds"] for m in swap["moves"])
    median = durations[len(durations) // 2] if durations else 0
    return (f"{swap['moves_ok']}/{len(swap['moves'])} moves succeeded (median {median * 1000:.0f} ms, "
            f"max {max(durations, default=0) * 1000:.0f} ms each); failed requests during moves: "
            f"**{swap['failed_requests']}** (target 0); p99 during ÷ steady: **{_ratio(swap['p99_ratio'])}** "
            f"(target ≤ 1.5×)")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *(line(r) for r in rows)]


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}×"


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=BASE_DIR, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def command_line(module: str = "bench.run_all") -> str:
    """How this run was started, to paste back into a shell."""
    return " ".join([Path(sys.executable).as_posix(), "-m", module, *sys.argv[1:]])
