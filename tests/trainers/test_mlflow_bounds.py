"""The MLflow import against a hostile tracking server and a hostile mlruns folder: no file is read past
the registry's upload limit, and no artifact path leaves the version's model folder.

The tracking server is real HTTP (a local ThreadingHTTPServer) speaking just enough of MLflow's REST API;
its model.pkl never ends, its model folders climb out of the artifact root.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner

from trainers.cli import cli
from trainers.mlflow_import import open_source
from trainers.mlflow_import.bounds import OverLimit
from trainers.mlflow_import.local_source import LocalSource
from trainers.mlflow_import.records import SourceVersion, Unimportable
from trainers.mlflow_import.rest_source import MAX_ANSWER_BYTES, RestSource

MLMODEL = b"""flavors:
  sklearn:
    pickled_model: model.pkl
    serialization_format: cloudpickle
saved_input_example_info:
  artifact_path: /etc/passwd
"""
FOLDERS = {
    "endless": "mlflow-artifacts:/1/0123456789abcdef0123456789abcdef/artifacts/model",
    "lying": "mlflow-artifacts:/1/0123456789abcdef0123456789abcdef/artifacts/lying",
    "climbing": "mlflow-artifacts:/1/../../../../etc",
    "encoded": "mlflow-artifacts:/1/%2e%2e/%2e%2e/etc",
    "queried": "mlflow-artifacts:/1/abc/artifacts/model?x=/etc",
}
ZEROS = b"\0" * 65536


class HostileMlflow(BaseHTTPRequestHandler):
    """MLflow's REST API for the models of FOLDERS; every model.pkl is endless, or claims to be huge."""

    protocol_version = "HTTP/1.1"
    paths: list[str] = []
    sent = {"bytes": 0}
    endless_search = False

    def do_GET(self):  # noqa: N802 - http.server's name
        """Answer one GET of the REST API or the artifact proxy."""
        url = urlsplit(self.path)
        self.paths.append(url.path)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        api = "/api/2.0/mlflow/"
        if url.path == api + "registered-models/search" and self.endless_search:
            self._endless()
        elif url.path == api + "registered-models/get":
            self._json({"registered_model": {"name": query["name"]}})
        elif url.path == api + "model-versions/search":
            name = query["filter"].split("'")[1]
            self._json({"model_versions": [{"name": name, "version": "1", "status": "READY"}]})
        elif url.path == api + "model-versions/get-download-uri":
            self._json({"artifact_uri": FOLDERS[query["name"]]})
        elif url.path.endswith("/MLmodel"):
            self._send(200, MLMODEL)
        elif url.path.endswith("/lying/model.pkl"):
            self.send_response(200)
            self.send_header("Content-Length", str(10 ** 12))
            self.end_headers()
        elif url.path.endswith("/model.pkl"):
            self._endless()
        else:
            self._json({"message": "not found"}, 404)

    def _endless(self):
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            while True:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(ZEROS), ZEROS))
                self.sent["bytes"] += len(ZEROS)
        except OSError:
            self.close_connection = True

    def _json(self, body: dict, status: int = 200):
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, content: bytes, kind: str = "application/octet-stream"):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def log_message(self, *args):
        """Quiet."""


@pytest.fixture
def hostile_mlflow():
    """The URL of a hostile MLflow tracking server (which answers 404 to the registry's questions, a registry
    with no model yet); its handler class records the paths asked for."""
    HostileMlflow.paths, HostileMlflow.sent, HostileMlflow.endless_search = [], {"bytes": 0}, False
    server = ThreadingHTTPServer(("127.0.0.1", 0), HostileMlflow)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_endless_model_file_stops_the_import_at_the_upload_limit_with_one_line(hostile_mlflow):
    result = CliRunner().invoke(cli, ["import-mlflow", "--tracking-uri", hostile_mlflow, "--registry", hostile_mlflow, "--model", "endless",
                                      "--dry-run", "--max-upload-mb", "2"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: model.pkl of endless v1 is over the limit of 2 MB (MAX_UPLOAD_MB), which the registry would "
        "refuse; set --max-upload-mb (or MAX_UPLOAD_MB) to the registry's own MAX_UPLOAD_MB if it is larger")
    assert "Traceback" not in result.stderr


def test_the_limit_is_the_registrys_max_upload_mb_from_the_environment(hostile_mlflow):
    result = CliRunner().invoke(cli, ["import-mlflow", "--tracking-uri", hostile_mlflow, "--registry", hostile_mlflow, "--model", "endless",
                                      "--dry-run"], env={"MAX_UPLOAD_MB": "3"})
    assert result.exit_code == 1
    assert "over the limit of 3 MB (MAX_UPLOAD_MB)" in result.stderr


def test_a_declared_length_over_the_limit_is_refused_before_any_byte_is_read(hostile_mlflow):
    source = RestSource(hostile_mlflow, max_bytes=1024 * 1024)
    version = SourceVersion(model="lying", version=1, location=FOLDERS["lying"])
    with pytest.raises(OverLimit, match="model.pkl of lying v1 is over the limit of 1 MB"):
        source.read(version, "model.pkl")


def test_an_endless_answer_of_the_rest_api_is_refused_at_its_own_limit(hostile_mlflow):
    HostileMlflow.endless_search = True
    with pytest.raises(OverLimit, match="registered-models/search"):
        RestSource(hostile_mlflow).models(None)
    assert HostileMlflow.sent["bytes"] >= MAX_ANSWER_BYTES


@pytest.mark.parametrize("model", ["climbing", "encoded", "queried"])
def test_a_model_folder_outside_the_artifact_root_is_skipped_and_never_asked_for(hostile_mlflow, model):
    result = CliRunner().invoke(cli, ["import-mlflow", "--tracking-uri", hostile_mlflow, "--registry", hostile_mlflow, "--model", model,
                                      "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    [version] = json.loads(result.stdout)["models"][0]["versions"]
    assert version["action"] == "skipped"
    assert "model folder" in version["reason"]
    assert not [path for path in HostileMlflow.paths if "artifacts/artifacts" in path]


@pytest.mark.parametrize("name", ["/etc/passwd", "../../etc/passwd", "a/../../b", "a\\..\\b", "./MLmodel", "a//b"])
def test_a_file_name_outside_the_model_folder_is_never_asked_for(hostile_mlflow, name):
    version = SourceVersion(model="endless", version=1, location=FOLDERS["endless"])
    with pytest.raises(Unimportable, match="not a path inside its model folder"):
        RestSource(hostile_mlflow).read(version, name)
    assert not [path for path in HostileMlflow.paths if "artifacts" in path]


@pytest.fixture
def hostile_mlruns(tmp_path):
    """An mlruns folder with one version whose model.pkl is 8 GB (sparse: no disk used) and whose example is a
    symlink to /etc/hostname."""
    folder = tmp_path / "1" / ("ab" * 16) / "artifacts" / "model"
    folder.mkdir(parents=True)
    (folder / "MLmodel").write_bytes(MLMODEL.replace(b"/etc/passwd", b"input_example.json"))
    with (folder / "model.pkl").open("wb") as file:
        file.truncate(8 * 1024 ** 3)
    (folder / "input_example.json").symlink_to("/etc/hostname")
    version = tmp_path / "models" / "m" / "version-1"
    version.mkdir(parents=True)
    (version.parent / "meta.yaml").write_text("name: endless\n")
    (version / "meta.yaml").write_text(f"name: endless\nversion: 1\nstorage_location: {folder}\n")
    return tmp_path


def test_an_endless_local_file_stops_the_import_at_the_limit(hostile_mlruns, hostile_mlflow):
    result = CliRunner().invoke(cli, ["import-mlflow", "--tracking-uri", str(hostile_mlruns), "--dry-run",
                                      "--registry", hostile_mlflow,
                                      "--max-upload-mb", "1"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].startswith(
        "Error: model.pkl of endless v1 is over the limit of 1 MB (MAX_UPLOAD_MB)")


def test_a_local_symlink_out_of_the_model_folder_is_not_read(hostile_mlruns):
    source = open_source(str(hostile_mlruns))
    [version] = source.versions("endless")
    with pytest.raises(Unimportable, match="input_example.json leads out of its model folder"):
        source.read(version, "input_example.json")
    assert isinstance(source, LocalSource)


def test_a_local_model_file_linked_to_a_device_is_skipped(hostile_mlruns, hostile_mlflow):
    [model] = hostile_mlruns.glob("1/*/artifacts/model/model.pkl")
    model.unlink()
    model.symlink_to("/dev/zero")
    result = CliRunner().invoke(cli, ["import-mlflow", "--tracking-uri", str(hostile_mlruns), "--dry-run",
                                      "--registry", hostile_mlflow, "--json"])
    assert result.exit_code == 0, result.output
    [version] = json.loads(result.stdout)["models"][0]["versions"]
    assert version == {"version": 1, "action": "skipped", "registry_version": None,
                       "reason": "its model.pkl leads out of its model folder"}
