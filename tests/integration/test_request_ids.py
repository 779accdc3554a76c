"""Every answer carries X-Request-ID: the caller's when it is safe, else a new one; errors too."""
import uuid

import pytest

from tests.helpers import PROBE_ROW, scaled_sum, upload_ok
from tests.integration.v2_support import infer, tensor

HEADER = "X-Request-ID"


@pytest.fixture
def served(client, ci):
    upload_ok(client, ci, "m", scaled_sum(1))
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200
    return "m"


def predict(client, headers=None, name="m", rows=(PROBE_ROW,)):
    return client.post(f"/models/{name}/production/predict", json={"instances": list(rows)}, headers=headers or {})


def is_new_id(value: str) -> bool:
    """A server's id: a random UUID's text as ``uuid`` writes it (version 4, RFC 4122's variant)."""
    made = uuid.UUID(value)
    return str(made) == value and made.version == 4 and made.variant == uuid.RFC_4122


@pytest.mark.parametrize("given", ["abc-123", "a", "trace.7f_ok:1", "x" * 128, "0-A.b_c:d"])
def test_a_safe_id_from_the_caller_comes_back_as_it_was_sent(client, served, given):
    response = predict(client, {HEADER: given})
    assert response.status_code == 200
    assert response.headers[HEADER] == given


@pytest.mark.parametrize("given", ["x" * 129, " padded", "padded ", "tab\there", "caf\u00e9", "", "trace 7f/ok:1",
                                   "~!@#$%^&*()", "-1"])
def test_an_id_that_is_too_long_or_outside_the_safe_set_is_replaced_by_a_new_one(client, served, given):
    response = predict(client, {HEADER: given.encode("utf-8").decode("latin-1")})
    assert response.status_code == 200
    assert response.headers[HEADER] != given and is_new_id(response.headers[HEADER])


def test_without_an_id_each_answer_gets_a_new_one(client, served):
    ids = {predict(client).headers[HEADER] for _ in range(5)}
    assert len(ids) == 5 and all(is_new_id(found) for found in ids)


@pytest.mark.parametrize("case", ["unknown model", "bad rows", "unsupported type"])
def test_errors_carry_the_id_too(client, served, case):
    headers = {HEADER: f"req-{case.replace(' ', '-')}"}
    if case == "unknown model":
        response = predict(client, headers, name="nope")
    elif case == "bad rows":
        response = predict(client, headers, rows=[["a", "b"]])
    else:
        response = client.post("/models/m/production/predict", data="x", headers={**headers, "Content-Type": "text/plain"})
    assert response.status_code in (404, 415, 422)
    assert response.headers[HEADER] == headers[HEADER]


def test_v2_answers_carry_the_header_and_echo_the_bodys_id(client, served):
    rows = [PROBE_ROW]
    answered = infer(client, "m", [tensor("input-0", rows)], id="v2-call-9")
    assert answered.status_code == 200, answered.get_json()
    assert answered.get_json()["id"] == "v2-call-9"
    assert is_new_id(answered.headers[HEADER])
    refused = client.post("/v2/models/m/infer", json={"inputs": []}, headers={HEADER: "v2-bad"})
    assert refused.status_code == 400 and refused.headers[HEADER] == "v2-bad"
