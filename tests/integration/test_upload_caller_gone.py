"""No version is committed for a caller who has gone: an upload whose client closed its connection (a client that
gave up while a large file was parsed) or whose X-Request-Timeout passed before the commit is refused, and nothing
of it is in the database."""
import hashlib
import io
import socket

import pytest
from sklearn.linear_model import LinearRegression

from api.domain import store
from registry.catalog import versions
from registry.errors import CallerGone
from tests.helpers import artifact_bytes, assert_problem, regression_data, upload

MODEL = LinearRegression().fit(*regression_data())


@pytest.fixture
def connection():
    """The server's end of a connection and the client's."""
    server, peer = socket.socketpair()
    yield server, peer
    server.close()
    peer.close()


def _nothing_committed(client, ci):
    assert client.get("/models/m/versions", headers=ci).status_code == 404


def test_an_upload_whose_client_closed_its_connection_commits_nothing(client, ci, connection):
    server, peer = connection
    peer.close()  # the client gave up while its file was parsed
    response = upload(client, ci, "m", MODEL, environ_base={"gunicorn.socket": server})
    assert_problem(response, 503, "closed its connection", "nothing was")
    _nothing_committed(client, ci)


def test_an_upload_whose_client_waits_is_committed(client, ci, connection):
    server, peer = connection
    peer.sendall(b"GET /next HTTP/1.1\r\n")  # a pipelined request is unread bytes, not a close
    response = upload(client, ci, "m", MODEL, environ_base={"gunicorn.socket": server})
    assert response.status_code == 201, response.get_json()


def test_an_upload_past_its_deadline_commits_nothing(client, ci):
    response = upload(client, {**ci, "X-Request-Timeout": "0.000000001"}, "m", MODEL)
    assert_problem(response, 503, "X-Request-Timeout passed", "nothing was")
    _nothing_committed(client, ci)
    assert_problem(upload(client, {**ci, "X-Request-Timeout": "soon"}, "m", MODEL), 400,
                   "X-Request-Timeout")


def test_a_caller_gone_just_before_the_commit_rolls_everything_back(app, client, ci):
    """Asked last inside the transaction: the model made for the version goes with it; the stored file is an
    unreferenced one, as a crash leaves (``artifacts gc``)."""
    answers = iter([True, False])
    data = artifact_bytes(MODEL)
    with app.app_context(), pytest.raises(CallerGone):
        versions.upload_version(store(), "m", artifact=io.BytesIO(data), digest=(hashlib.sha256(data).hexdigest(),
                                len(data)), metadata={}, actor="ci", max_rows=100, max_model_bytes=2**30,
                                caller_waiting=lambda: next(answers))
    _nothing_committed(client, ci)
