"""A registry or MLflow server whose certificate we do not trust: one clean error, never a traceback.

The server is real TLS (Python's ssl over a local socket) with a self-signed certificate made for the
test, so the failure is the one a user meets behind a corporate proxy or a private CA.
"""
from __future__ import annotations

import http.server
import ssl
import subprocess
import threading

import pytest
from click.testing import CliRunner

from trainers.cli import cli
from registry_client import RegistryClient, RegistryUnreachable
from trainers.mlflow_import.rest_source import MlflowError, RestSource


@pytest.fixture(scope="module")
def untrusted_https(tmp_path_factory):
    """The URL of an HTTPS server with a self-signed certificate for 127.0.0.1."""
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_client_names_a_certificate_it_does_not_trust(untrusted_https):
    with pytest.raises(RegistryUnreachable, match="TLS certificate not trusted") as caught:
        RegistryClient(untrusted_https, "t", timeout=5, retries=0).find_version("m", "production")
    assert caught.value.status is None
    assert "\n" not in str(caught.value)


def test_the_cli_exits_1_with_one_line(untrusted_https, tmp_path, monkeypatch):
    monkeypatch.delenv("REGISTRY_TOKEN", raising=False)
    artifact = tmp_path / "m.joblib"
    artifact.write_bytes(b"x")
    result = CliRunner().invoke(cli, ["register", "--registry", untrusted_https, "--model", "m", str(artifact)],
                                env={"REGISTRY_TOKEN": "t"})
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"Error: cannot reach the registry at {untrusted_https}: TLS certificate not trusted")
    assert "Traceback" not in result.stderr


def test_the_mlflow_source_names_a_certificate_it_does_not_trust(untrusted_https):
    with pytest.raises(MlflowError, match=f"cannot reach MLflow at {untrusted_https}: TLS certificate not trusted"):
        RestSource(untrusted_https).models(None)
