"""A short run of every fuzzer (``tests/fuzz``, docs/testing.md "Fuzzing"): each model-file reader guided by
coverage (atheris) over real files made by XGBoost, LightGBM, scikit-learn and skops, every input it kept then
walked and explained again by the walker and TreeSHAP built with AddressSanitizer and UndefinedBehaviorSanitizer,
and the walker's and the predict body reader's (``json_rows.c``) own targets under the sanitizers. A crash, an input running over 1 s, a sanitizer's report or an
exception other than the reader's documented refusal fails the test (``make fuzz`` runs the long ones)."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.fuzz import run, sanitized

# Inputs per target here: about 40 s of CPU for all of them, most of it the processes' start (docs/testing.md).
RUNS = {"xgboost_json": 300, "xgboost_ubj": 300, "lightgbm": 300, "pickle": 200, "skops": 60, "served_form": 200,
        "walk": 400, "json_rows": 2000}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """The fuzzers' directory: the sanitized library and the seeds, made once for every target."""
    directory = tmp_path_factory.mktemp("fuzz")
    library = sanitized.build(directory / "lib")
    subprocess.run([sys.executable, "-m", "tests.fuzz.seeds", str(directory / "seeds")], check=True,
                   cwd=sanitized.ROOT)
    return directory, library


@pytest.mark.parametrize("target", run.TARGETS)
def test_a_short_run_finds_no_crash(work, target):
    directory, library = work
    result = run.fuzz(target, directory, library, runs=RUNS[target], seconds=20)
    assert result.passed, result.line() + "\n" + "\n".join(
        path.read_text(errors="replace")[-4000:] for path in sorted((directory / "logs").glob(f"{target}-*.log")))
    assert result.sanitized > 0
    assert target in run.SANITIZED_ONLY or result.guided >= RUNS[target]


def test_the_sanitizers_report_a_read_outside_the_records(work):
    """The sanitized library is the one the fuzzers load, and it aborts on a read past an array: a walk told that
    its leaf values are wider than they are."""
    _, library = work
    script = textwrap.dedent(f"""
        import ctypes, sys
        import numpy as np
        from pathlib import Path
        from tests.fuzz import sanitized
        sanitized.use(Path({str(library)!r}))
        from registry.inference import tree_walk
        assert sanitized.loaded() == [{str(library)!r}], sanitized.loaded()
        nodes = np.zeros(1, dtype=tree_walk.NODE)
        roots, value, rows = np.zeros(1, np.int32), np.zeros((1, 1)), np.zeros((1, 1), np.float32)
        out = (ctypes.c_double * 64)()
        print("walked", tree_walk.KEEPING_GIL.output(nodes.ctypes.data, 1, roots.ctypes.data, 1, value.ctypes.data,
                                                     1, 0, rows.tobytes(), 1, 1, out), flush=True)
        tree_walk.KEEPING_GIL.output(nodes.ctypes.data, 1, roots.ctypes.data, 1, value.ctypes.data, 64, 0,
                                     rows.tobytes(), 1, 1, out)
    """)
    done = subprocess.run([sys.executable, "-c", script], env=sanitized.environment(), cwd=sanitized.ROOT,
                          capture_output=True, text=True, timeout=120)
    assert "walked 0" in done.stdout, done.stderr[-3000:]
    assert done.returncode != 0 and "AddressSanitizer: heap-buffer-overflow" in done.stderr, done.stderr[-3000:]


def test_a_tree_of_one_leaf_is_explained_from_its_path_copy_without_undefined_behaviour(work):
    """Found by the walker's fuzzer: copying the path of a tree that is a single leaf passed a null pointer to
    memcpy (``tree_shap.c``, UBSan: "null pointer passed as argument 1")."""
    _, library = work
    script = textwrap.dedent(f"""
        import numpy as np
        from pathlib import Path
        from tests.fuzz import sanitized
        sanitized.use(Path({str(library)!r}))
        from registry.inference import tree_shap, tree_walk
        assert tree_shap.PATHS_SUPPORTED
        nodes = np.zeros(1, dtype=tree_walk.NODE)  # one leaf: its children are itself
        explainer = tree_shap.TreeExplainer(nodes=nodes, roots=np.zeros(1, np.int32), value=np.ones((1, 1)),
                                            cover=np.ones(1), n_features=2, n_outputs=1)
        assert explainer._paths is not None
        base, values = explainer.explain(np.zeros((1, 2), np.float32))
        print("explained", base.tolist(), values.tolist())
    """)
    done = subprocess.run([sys.executable, "-c", script], env=sanitized.environment(), cwd=sanitized.ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "explained [1.0] [[[0.0], [0.0]]]" in done.stdout, done.stderr[-3000:]
