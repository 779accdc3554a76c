"""Large walks and explanations at a lower CPU priority (tree_walk.lower_large_calls, native/low_priority.c).

A call of the bound's walks or more runs on a thread of its own at a nice value or under SCHED_IDLE while its
caller waits: the answers are the same bit for bit, every kind's walk and explanation goes there (and only from
the bound), the thread really is a thread of the process at that priority while the walk runs, and the caller's
own thread keeps its priority. The oracle is the same compiled form called with no bound.
"""
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeRegressor

from registry.inference import tree_shap, tree_walk
from registry.inference.fast_boosting import compile_boosting
from registry.inference.fast_trees import compile_trees
from tests.unit.test_fast_trees import assert_identical

SCHED_IDLE = 5  # Linux's number for the policy (os.SCHED_IDLE)
RNG = np.random.default_rng(7)
X = RNG.normal(size=(300, 6))
Y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
# More walks than a call keeping the GIL makes, even for a single tree.
ROWS = np.tile(np.vstack([X, RNG.normal(size=(40, 6)) * 3]), (4, 1))

KINDS = {
    # kind: (the model, the library's functions its batch walk and its explanation call)
    "forest": (lambda: RandomForestClassifier(20, max_depth=6, random_state=0).fit(X, Y),
               {"forest", "paths" if tree_shap.PATHS_SUPPORTED else "shap"}),
    "tree": (lambda: DecisionTreeRegressor(max_depth=8, random_state=0).fit(X, X[:, 0]),
             {"forest", "paths" if tree_shap.PATHS_SUPPORTED else "shap"}),
    "hist-gradient-boosting": (lambda: HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, Y),
                               {"boosted", "shap"}),
    "gradient-boosting": (lambda: GradientBoostingClassifier(n_estimators=20, random_state=0).fit(X, Y),
                          {"compact", "shap"}),
}


@pytest.fixture(autouse=True)
def no_bound():
    """Each test sets the bound it needs; the process's goes back as it was."""
    before = tree_walk._low_priority_from
    tree_walk.lower_large_calls(0)
    yield
    tree_walk.lower_large_calls(before)


class Recording:
    """tree_walk.AT_LOW_PRIORITY, noting the name of each function called through it."""

    def __init__(self, functions):
        self.called: set[str] = set()
        wrapped = {name: self._noting(name, getattr(functions, name)) for name in functions._fields}
        self.functions = functions._replace(**wrapped)

    def _noting(self, name, function):
        def call(*args):
            self.called.add(name)
            return function(*args)
        return call


def answers(form, rows: np.ndarray) -> list[np.ndarray]:
    """Everything the compiled form answers for ``rows``: its predictions, probabilities and explanation."""
    out = [form.predict(rows)]
    if hasattr(form, "predict_proba") and getattr(form, "classes_", None) is not None:
        out.append(form.predict_proba(rows))
    out.extend(form.explain(rows))
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_every_kinds_walk_and_explanation_answer_the_same_at_low_priority(kind, monkeypatch):
    make, expected = KINDS[kind]
    model = make()
    form = compile_trees(model) or compile_boosting(model)
    plain = answers(form, ROWS)
    recording = Recording(tree_walk.AT_LOW_PRIORITY)
    monkeypatch.setattr(tree_walk, "AT_LOW_PRIORITY", recording.functions)
    tree_walk.lower_large_calls(1)
    lowered = answers(form, ROWS)
    assert recording.called == expected
    assert len(lowered) == len(plain)
    for ours, theirs in zip(lowered, plain):
        assert_identical(ours, theirs)


def test_only_calls_from_the_bound_go_to_low_priority_and_none_without_one():
    tree_walk.lower_large_calls(100_000)
    assert tree_walk.functions_for(99_999) is tree_walk.RELEASING_GIL
    assert tree_walk.functions_for(100_000) is tree_walk.AT_LOW_PRIORITY
    assert tree_walk.functions_for(tree_walk.KEEPS_GIL_UP_TO_WALKS) is tree_walk.KEEPING_GIL
    assert tree_walk.functions_for(5_000, keeps_gil_up_to=0) is tree_walk.RELEASING_GIL
    tree_walk.lower_large_calls(0)
    assert tree_walk.functions_for(10**9) is tree_walk.RELEASING_GIL


def test_a_low_priority_calls_thread_gets_the_nice_value_or_sched_idle_asked():
    tree_walk.lower_large_calls(100_000, nice=None)
    assert tree_walk.low_priority() == "SCHED_IDLE"
    tree_walk.lower_large_calls(100_000, nice=12)
    assert tree_walk.low_priority() == "nice 12"
    tree_walk.lower_large_calls(100_000)
    assert tree_walk.low_priority() == "nice 10"


def priorities() -> dict[int, tuple[int, int]]:
    """This process's threads: native id -> (scheduling policy, nice), fields 41 and 19 of
    /proc/self/task/<id>/stat."""
    found = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after the command's name, which may hold spaces: field 3 on
        found[int(task.name)] = (int(fields[38]), int(fields[16]))
    return found


@pytest.mark.parametrize("nice, seen_as", [(None, (SCHED_IDLE, 0)), (10, (os.SCHED_OTHER, 10))])
def test_a_large_walk_runs_on_a_thread_of_its_own_at_low_priority_while_its_caller_keeps_its_own(nice, seen_as):
    model = RandomForestRegressor(60, random_state=0).fit(X, X[:, 0])  # fully grown: deep trees
    form = compile_trees(model)
    rows = np.ascontiguousarray(RNG.normal(size=(200_000, 6)))
    tree_walk.lower_large_calls(100_000, nice=nice)
    caller: dict[str, int] = {}
    done = threading.Event()

    def walk():
        caller["id"] = threading.get_native_id()
        caller["nice"] = os.getpriority(os.PRIO_PROCESS, caller["id"])
        form.predict(rows)
        caller["policy_after"] = os.sched_getscheduler(0)
        caller["nice_after"] = os.getpriority(os.PRIO_PROCESS, caller["id"])
        done.set()

    before = priorities()
    thread = threading.Thread(target=walk)
    thread.start()
    seen = set()
    while not done.is_set():
        seen |= {tid for tid, got in priorities().items() if got == seen_as and tid not in before}
        time.sleep(0.001)
    thread.join()
    assert seen - {caller["id"]}, f"no thread of policy and nice {seen_as} was seen while the walk ran"
    assert caller["policy_after"] == os.SCHED_OTHER and caller["nice_after"] == caller["nice"]
    assert not seen & set(priorities())  # the walk's thread is gone
