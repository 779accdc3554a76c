"""Uploaded files hashed as they arrive: the app's requests write each multipart file through a
:class:`HashedFile`, so its sha256 and size are known when the body is parsed, without reading the
file again."""
from __future__ import annotations

import hashlib
from typing import IO

from flask import Request
from werkzeug.formparser import default_stream_factory


class HashedFile:
    """A file being written by the form parser, with the sha256 and size of everything written to it;
    every other file method is the file's own."""

    def __init__(self, file: IO[bytes]):
        self._file = file
        self._digest = hashlib.sha256()
        self._size = 0

    def write(self, data: bytes) -> int:
        """Write ``data``, hashing it."""
        self._digest.update(data)
        self._size += len(data)
        return self._file.write(data)

    def digest(self) -> tuple[str, int]:
        """The hex sha256 and size of what was written."""
        return self._digest.hexdigest(), self._size

    def __getattr__(self, name: str):
        return getattr(self._file, name)


class HashingRequest(Request):
    """A request whose uploaded files are :class:`HashedFile` (``request.files[...].stream``)."""

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None, content_length: int | None = None) -> IO[bytes]:
        return HashedFile(default_stream_factory(total_content_length=total_content_length, content_type=content_type,
                                                 filename=filename, content_length=content_length))
