"""A copy of a checkout with no tracing code on the prediction path: the reference that ``bench.tracing`` measures
tracing off against (every ``tracing``/``traces`` call of the data plane and the fast path taken out, the
server span's start time not read, the span-naming observer not registered).

    .venv/bin/python -m bench.harness.untraced /tmp/untraced   # a copy of this checkout, compiled walker included

Each edit is a literal replacement that must match exactly once: when the code it edits changes, the copy
refuses to be made (naming the file and the text) rather than measure something else.
"""
import argparse
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parents[2]
KEEP = "from registry import tracing\n"
EDITS = {
    "api/errors.py": [(KEEP, ""), ("    found = tracing.trace_id()\n", "    found = None\n")],
    "api/fast_predict.py": [
        (KEEP, ""),
        ("        started_ns = time.time_ns()  # the server span's start, when the request is traced\n", ""),
        ("        served = traces.begin(environ, rule, started_ns)", "        served = None"),
        ("            served.finish(500)  # never left current for the thread's next request\n", ""),
        ("(*sent, *traces.answered_with(served).items())", "sent"),
        ("                served.finish(refused.status)\n", "                pass\n"),
        ("served: tracing.Served", "served"),
        ("(*sent, *traces.answered_with(served).items())", "sent"),
        ("            served.finish(status)\n", "            pass\n"),
        ("        traced = traces.answered_with(served).items()\n", "        traced = ()\n"),
    ],
    "registry/monitoring/prediction_log.py": [
        (KEEP, ""), ('        with tracing.span("log"):\n', "        if True:\n"),
        ('        with tracing.span("log"):\n', "        if True:\n"),
        ("trace_id=tracing.trace_id()", "trace_id=None"), ("trace_id=tracing.trace_id()", "trace_id=None"),
        ("trace_id=tracing.id_of(job.trace)", "trace_id=None"),
    ],
    "registry/serving/data_plane.py": [
        (KEEP, ""), ("        self._observers = (PrometheusCounts(), self._traced, *observers)",
                     "        self._observers = (PrometheusCounts(), *observers)"),
        ("        self._traced.failed(call, failure)", "        pass"),
        ("        parent = tracing.capture()\n", "        parent = None\n"),
    ],
    "registry/serving/running.py": [
        (KEEP, ""),
        ('        with tracing.span("predict") as span, _finiteness_assumed(estimator, return_proba):\n'
         '            span.set_attribute("prediction.rows", len(rows))\n',
         "        with _finiteness_assumed(estimator, return_proba):\n"),
        ('        with tracing.span("explain") as span:\n'
         '            span.set_attribute("prediction.rows", len(rows))\n', "        if True:\n"),
    ],
    "registry/serving/predict.py": [
        (KEEP, ""),
        ('    with tracing.span("resolve") as span:\n', "    if True:\n"),
        ("        if span.is_recording():\n", "        if False:\n"),
        ('    with tracing.span("parse") as span:\n', "    if True:\n"),
        ('        span.set_attribute("prediction.rows", len(rows))\n', ""),
    ],
    "registry/serving/shadow.py": [(KEEP, ""), ("    if job.trace is None:\n        return\n", "    return\n")],
}


def make(target: Path, source: Path = HERE) -> None:
    """Copy ``source``'s tracked files (and its compiled walker) to ``target``, with :data:`EDITS` applied."""
    files = subprocess.run(["git", "-C", str(source), "ls-files", "-z"], check=True, capture_output=True).stdout
    for name in filter(None, files.decode().split("\0")):
        if (source / name).is_file() and not name.startswith("tests/"):
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, target / name)
    walker = Path("registry/inference/native/tree_walk.so")
    shutil.copy2(source / walker, target / walker)
    for name, edits in EDITS.items():
        text = (target / name).read_text()
        for old, new in edits:
            if old not in text:
                raise SystemExit(f"{name}: {old!r} is not there any more; update bench/harness/untraced.py")
            text = text.replace(old, new, 1)
        (target / name).write_text(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", type=Path)
    make(parser.parse_args().target)
