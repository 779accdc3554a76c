"""ARTIFACT_ROOT names a directory or s3://bucket/prefix: any other URL stops the start with one line.
Before round three, `s3://bucket/prefix` became a local directory named `s3:` and uploads "worked"
onto the local disk."""
import subprocess

import pytest

from bench.harness import server


def _start(tmp_path, root):
    env = server.service_env(f"sqlite:///{tmp_path / 'registry.db'}", root, "token")
    return subprocess.run([str(server.BIN / "flask"), "--app", "wsgi", "routes"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("root", ["gs://bucket", "ftp://host/x", "file:///srv/models"])
def test_an_artifact_root_url_of_another_kind_stops_the_start_with_one_line(tmp_path, root):
    started = _start(tmp_path, root)

    assert started.returncode == 1
    assert started.stderr.splitlines() == [
        f"ARTIFACT_ROOT={root}: {root.split(':')[0]}:// is not a store this release can use; "
        "set it to a directory or to s3://bucket/prefix (any S3-compatible store: docs/scaling.md)"
    ]
    assert not (tmp_path / root.split("/")[0]).exists()


def test_an_s3_url_without_a_bucket_stops_the_start_with_one_line(tmp_path):
    started = _start(tmp_path, "s3://")

    assert started.returncode == 1
    assert started.stderr.splitlines() == [
        "ARTIFACT_ROOT=s3://: 's3://' is not an s3://bucket/prefix URL; name a bucket: s3://bucket/prefix"
    ]
