"""OTLP over HTTP: POSTing encoded ``ExportTraceServiceRequest`` bodies to a collector, as the SDK's OTLP/HTTP
exporter would, on one kept-alive ``http.client`` connection (the SDK's ``requests`` session costs four
times the CPU a send: on the predict route that was 18 µs a request, more than its spans).

Read from the ``OTEL_EXPORTER_OTLP_*`` variables as the SDK reads them, each ``_TRACES_`` form first:
``ENDPOINT`` (``TRACES_ENDPOINT`` as given; else ``ENDPOINT`` with ``/v1/traces`` added; else
``http://localhost:4318/v1/traces``), ``HEADERS`` (W3C baggage form, ``k=v,k2=v2``), ``TIMEOUT`` (seconds, 10;
the bound of one send with its retries), ``COMPRESSION`` (``gzip``, ``deflate``, ``none``), ``CERTIFICATE``
(the CAs an ``https`` collector is checked against), ``CLIENT_CERTIFICATE`` and ``CLIENT_KEY`` (mutual TLS).
A send that meets a 429, 502, 503 or 504, or a broken connection, is retried with exponential backoff
(``Retry-After`` honoured) within the timeout. Not read: proxies (``HTTPS_PROXY``), the SDK's Python-only
credential provider variable.
"""
from __future__ import annotations

import gzip
import http.client
import logging
import random
import ssl
import threading
import time
import zlib
from collections.abc import Mapping
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "http://localhost:4318"
PATH = "v1/traces"
RETRYABLE = frozenset({429, 502, 503, 504})
ATTEMPTS = 6
COMPRESSIONS = ("none", "gzip", "deflate")


def setting(environ: Mapping[str, str], name: str) -> str:
    """``OTEL_EXPORTER_OTLP_TRACES_<name>``, else ``OTEL_EXPORTER_OTLP_<name>``, else ""."""
    return (environ.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}") or environ.get(f"OTEL_EXPORTER_OTLP_{name}") or "").strip()


def endpoint(environ: Mapping[str, str]) -> str:
    """The URL spans are POSTed to."""
    given = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if given:
        return given
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or DEFAULT_ENDPOINT
    return f"{base.removesuffix('/')}/{PATH}"


class Sender:
    """Sends bodies to the collector the variables of ``environ`` name; ValueError for a setting it cannot use."""

    def __init__(self, environ: Mapping[str, str], user_agent: str = "model-registry"):
        from opentelemetry.util.re import parse_env_headers

        url = urlsplit(endpoint(environ))
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"OTLP endpoint {endpoint(environ)}: an http:// or https:// URL is needed")
        self._host, self._port, self._tls = url.hostname, url.port, url.scheme == "https"
        self._path = url.path + (f"?{url.query}" if url.query else "") or "/"
        try:
            self.timeout = float(setting(environ, "TIMEOUT") or 10)
        except ValueError:
            raise ValueError(f"OTEL_EXPORTER_OTLP_TIMEOUT={setting(environ, 'TIMEOUT')}: seconds are needed") from None
        self.compression = setting(environ, "COMPRESSION").lower() or "none"
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"OTEL_EXPORTER_OTLP_COMPRESSION={self.compression}: use one of {', '.join(COMPRESSIONS)}")
        self.headers = {"Content-Type": "application/x-protobuf", "User-Agent": user_agent,
                        **parse_env_headers(setting(environ, "HEADERS"), liberal=True)}
        if self.compression != "none":
            self.headers["Content-Encoding"] = self.compression
        self._context = self._tls_context(environ) if self._tls else None
        self._connection: http.client.HTTPConnection | None = None
        self._stopped = threading.Event()

    def send(self, body: bytes) -> None:
        """POST ``body``, retrying what may pass later within the timeout; OSError saying why it was not taken."""
        if self.compression == "gzip":
            body = gzip.compress(body, compresslevel=6)
        elif self.compression == "deflate":
            body = zlib.compress(body)
        deadline = time.monotonic() + self.timeout
        for attempt in range(ATTEMPTS):
            reused = self._connection is not None
            try:
                status, reason, retry_after = self._post(body, max(deadline - time.monotonic(), 0.001))
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if reused and attempt == 0:  # a kept-alive connection the collector closed: once more at once
                    continue
                status, reason, retry_after = None, str(exc) or type(exc).__name__, None
            if status is not None and 200 <= status < 300:
                return
            if status is not None and status not in RETRYABLE:
                raise OSError(f"the collector answered {status} {reason}")
            backoff = retry_after if retry_after is not None else 2**attempt * random.uniform(0.8, 1.2)
            if attempt + 1 == ATTEMPTS or backoff > deadline - time.monotonic() or self._stopped.wait(backoff):
                raise OSError(f"not sent within {self.timeout:g} s: {status or ''} {reason}".replace("  ", " "))
            log.warning("sending spans: %s %s, trying again in %.1f s", status or "", reason, backoff)
        raise OSError("the collector closed the connection")

    def stop(self) -> None:
        """Cut short any backoff under way and close the connection."""
        self._stopped.set()
        self.close()

    def close(self) -> None:
        """Close the connection (the next send opens another)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _post(self, body: bytes, timeout: float) -> tuple[int, str, float | None]:
        connection = self._connection
        if connection is None:
            if self._tls:
                connection = http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=self._context)
            else:
                connection = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
            self._connection = connection
        elif connection.sock is not None:
            connection.sock.settimeout(timeout)
        connection.request("POST", self._path, body=body, headers=self.headers)
        response = connection.getresponse()
        response.read()  # all of it: the connection is kept for the next send
        if response.will_close:
            self.close()
        return response.status, response.reason, _seconds(response.getheader("Retry-After"))

    @staticmethod
    def _tls_context(environ: Mapping[str, str]) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=setting(environ, "CERTIFICATE") or None)
        certificate, key = setting(environ, "CLIENT_CERTIFICATE"), setting(environ, "CLIENT_KEY")
        if certificate:
            context.load_cert_chain(certificate, key or None)
        return context


def _seconds(value: str | None) -> float | None:
    """A ``Retry-After`` in seconds (its date form is not read)."""
    try:
        return None if value is None else max(float(value), 0.0)
    except ValueError:
        return None
