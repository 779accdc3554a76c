"""ARTIFACT_ROOT names a directory: a URL stops the start with one line. Before, `s3://bucket/prefix`
became a local directory named `s3:` and uploads "worked" onto the local disk."""
import subprocess

import pytest

from bench.harness import server


@pytest.mark.parametrize("root", ["s3://models/prod", "gs://bucket", "ftp://host/x"])
def test_an_artifact_root_url_stops_the_start_with_one_line_instead_of_becoming_a_local_directory(tmp_path, root):
    env = server.service_env(f"sqlite:///{tmp_path / 'registry.db'}", root, "token")
    started = subprocess.run([str(server.BIN / "flask"), "--app", "wsgi", "routes"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
    assert started.returncode == 1
    assert started.stderr.splitlines() == [
        f"ARTIFACT_ROOT={root}: {root.split(':')[0]}:// is not a store this release can use; "
        "set ARTIFACT_ROOT to a directory (object storage is not supported yet)"
    ]
    assert not (tmp_path / root.split("/")[0]).exists()
