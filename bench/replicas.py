"""Two replicas swapping together: ``python -m bench.replicas [--moves 10] [--threads 8]``.

Starts two gunicorn instances (2 workers each) on one fresh PostgreSQL database and one artifact
root, drives prediction load through both, promotes and rolls back through the first, and reports
failed requests and the observed staleness: for each move and replica, how long after the move
returned that replica still started requests it answered with the previous version.
Figures only; it writes JSON + Markdown to bench/results/.
"""
import argparse
import statistics
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from bench import report
from bench.harness import server
from bench.harness.databases import postgres_database
from bench.harness.models import scaled_sum, upload
from bench.harness.traffic import Answer, Load, Move, move, run_moves

RESULTS = Path(__file__).resolve().with_name("results")
WORKERS = 2
REFRESH_SECONDS = 1.0
PLAN = [("promote", 2), ("promote", 3), ("rollback", None), ("promote", 4), ("rollback", None),
        ("rollback", None), ("promote", 3), ("promote", 2), ("rollback", None), ("promote", 4)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.replicas", description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=len(PLAN), help=f"how many moves of the plan (default {len(PLAN)})")
    parser.add_argument("--threads", type=int, default=8, help="client threads, split over both replicas (default 8)")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between moves (default 2)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results directory (default {RESULTS})")
    return parser.parse_args(argv)


def staleness(answers: list[Answer], moves: list[Move], url: str) -> list[float]:
    """Per move: the last start, after the move returned, of a request ``url`` answered with another version."""
    lags = []
    for i, moved in enumerate(moves):
        until = moves[i + 1].started if i + 1 < len(moves) else float("inf")
        late = [a.started - moved.returned for a in answers
                if a.url == url and moved.returned <= a.started < until and a.version != moved.version]
        lags.append(max(late, default=0.0))
    return lags


def main(argv: list[str] | None = None) -> None:
    """Run the scenario, print and write the figures."""
    args = parse_args(argv)
    plan = PLAN[: args.moves]
    with (
        tempfile.TemporaryDirectory(prefix="registry-replicas-") as tmp,
        postgres_database() as database_url,
        server.running(database_url, Path(tmp), "bench-admin-token", count=2, workers=WORKERS,
                       refresh_seconds=REFRESH_SECONDS) as replicas,
    ):
        for factor in (1, 2, 3, 4):
            upload(replicas[0], "replicated", scaled_sum(factor)).raise_for_status()
        move(replicas[0], "promote", "replicated", 1, reason="bench")
        urls = [f"{live.url}/models/replicated/production/predict" for live in replicas]
        with Load(urls, args.threads) as load:
            moves = run_moves(replicas[0], "replicated", plan, pause=args.pause)
    result = _summary(load.answers, moves, urls, args)
    text = _markdown(result)
    print(text)
    report.save("replicas", result, text, args.out)


def _summary(answers: list[Answer], moves: list[Move], urls: list[str], args) -> dict:
    per_replica = {}
    for index, url in enumerate(urls, start=1):
        lags = staleness(answers, moves, url)
        mine = [a for a in answers if a.url == url]
        per_replica[f"replica {index}"] = {
            "requests": len(mine),
            "failed": sum(a.status != 200 for a in mine),
            "staleness_max_s": round(max(lags), 3),
            "staleness_median_s": round(statistics.median(lags), 3),
        }
    return {
        "started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": report.command_line("bench.replicas"),
        "machine": report.machine_facts(),
        "setup": f"2 replicas x {WORKERS} gunicorn workers, PostgreSQL, ALIAS_REFRESH_SECONDS={REFRESH_SECONDS}, "
                 f"{args.threads} client threads, {len(moves)} moves through replica 1, {args.pause} s apart",
        "moves": len(moves),
        "move_seconds_median": round(statistics.median(m.returned - m.started for m in moves), 3),
        "replicas": per_replica,
    }


def _markdown(result: dict) -> str:
    lines = [f"# Two replicas swapping together ({result['started_at']})", "", f"`{result['command']}`", "",
             result["setup"], "", "| replica | requests | failed | staleness max (s) | staleness median (s) |",
             "|---|---|---|---|---|"]
    for name, row in result["replicas"].items():
        lines.append(f"| {name} | {row['requests']} | {row['failed']} | {row['staleness_max_s']} | {row['staleness_median_s']} |")
    lines += ["", f"median promote/rollback call: {result['move_seconds_median']} s; bound: {REFRESH_SECONDS} s"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
