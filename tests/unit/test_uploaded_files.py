"""Uploaded files are hashed as the form parser writes them, in memory or spooled to disk."""
import hashlib
import io

import pytest
from werkzeug.test import EnvironBuilder

from api.uploaded_files import HashedFile, HashingRequest


@pytest.mark.parametrize("size", [10, 3 * 1024 * 1024], ids=["in memory", "spooled to a file"])
def test_a_multipart_file_arrives_with_its_sha256_and_size(size):
    data = bytes(range(256)) * (size // 256) + b"tail"
    environ = EnvironBuilder(method="POST", data={"artifact": (io.BytesIO(data), "m.joblib")}).get_environ()

    stream = HashingRequest(environ).files["artifact"].stream

    assert isinstance(stream, HashedFile)
    assert stream.digest() == (hashlib.sha256(data).hexdigest(), len(data))
    stream.seek(0)
    assert stream.read() == data  # read back as the file it is
