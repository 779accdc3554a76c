"""The data plane: one call answers or fails as a value, and tells the log and the observers once."""
from contextlib import nullcontext
from dataclasses import replace

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from api.answering import model_headers
from registry.changes import AliasServes
from registry.errors import InvalidInput, NotFound
from registry.serving.data_plane import Answer, Call, DataPlane, Failure
from registry.serving.inputs import JsonInput
from registry.serving.runtime import build_runtime
from tests.unit.test_model_server import FakeLoader, info


class FittedLoader(FakeLoader):
    """Versions whose predictor doubles its one column."""

    def __call__(self, version):
        servable = super().__call__(version)
        return replace(servable, predictor=LinearRegression().fit(np.array([[0.0], [1.0]]), [0.0, 2.0]))


class Heard:
    def __init__(self, keeps: bool = True):
        self.keeps = keeps
        self.calls = []

    def answered(self, call, answer):
        self.calls.append(("answered", call.request_id, answer.prediction.version))
        return self.keeps

    def failed(self, call, failure):
        self.calls.append(("failed", call.request_id, failure.status, failure.served_by))


@pytest.fixture
def runtime():
    runtime = build_runtime(FittedLoader(), memory_budget_bytes=10**9, refresh_seconds=60.0, session_scope=nullcontext)
    runtime.models.apply([AliasServes("m", "production", info(1))])
    yield runtime
    runtime.models.stop()


def status(exc: Exception) -> int:
    return 422 if isinstance(exc, InvalidInput) else 404 if isinstance(exc, NotFound) else 500


def test_an_answer_is_a_value_heard_once_by_the_log_and_each_observer(runtime):
    log, observer = Heard(), Heard()
    plane = DataPlane(runtime, log=log, observers=(observer,))

    outcome = plane.predict(Call("m", "production", "r-1"), JsonInput({"instances": [[1.5]]}, 100, False),
                            headers={}, status_of=status)

    assert isinstance(outcome, Answer) and outcome.prediction.predictions == [pytest.approx(3.0)]
    assert model_headers(outcome.prediction) == {"X-Model-Version": "1", "X-Model-Route": "primary"}
    assert log.calls == observer.calls == [("answered", "r-1", 1)]


def test_a_failure_is_a_value_that_names_the_version_asked_and_its_status(runtime):
    log = Heard()
    plane = DataPlane(runtime, log=log)

    outcome = plane.predict(Call("m", "production", "r-2"), JsonInput({"instances": [[1.0, 2.0]]}, 100, False),
                            headers={}, status_of=status)

    assert isinstance(outcome, Failure) and isinstance(outcome.error, InvalidInput)
    assert (outcome.status, outcome.served_by) == (422, (1, "primary", None))
    assert log.calls == [("failed", "r-2", 422, (1, "primary", None))]
