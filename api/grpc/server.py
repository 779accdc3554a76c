"""The gRPC server of one worker: off unless ``GRPC_BIND`` (``host:port``) is set; then every worker of the
service starts one on that address when it starts (its lifecycle), beside the HTTP data plane in the same
process, and they share the port (grpcio binds it with ``SO_REUSEPORT``: the kernel spreads connections
over the workers). With ``GRPC_TLS_CERT_FILE`` and ``GRPC_TLS_KEY_FILE`` it speaks TLS.

A message over ``MAX_PREDICT_MB`` is refused by grpcio itself (``RESOURCE_EXHAUSTED``) before any of it is
parsed. A stopping worker stops taking calls and gives those in flight ``GRACEFUL_TIMEOUT`` seconds to finish,
as gunicorn gives its HTTP requests.
"""
from concurrent import futures
from pathlib import Path

import grpc
from flask import Flask

from api import lifecycle
from api.grpc.service import InferenceService
from api.settings import settings_of


class GrpcServer:
    """One worker's gRPC server, as ``app``'s config describes it; made when the worker starts (after the fork:
    grpcio's threads do not cross one)."""

    def __init__(self, app: Flask):
        self.app = app
        self._server: grpc.Server | None = None

    def start(self) -> None:
        """Bind ``GRPC_BIND`` and start answering (a bind that fails stops the worker's start, loudly)."""
        settings = settings_of(self.app)
        limit = settings.limits.max_predict_bytes
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.server.worker_threads, thread_name_prefix="grpc"),
            options=[("grpc.so_reuseport", 1), ("grpc.max_receive_message_length", limit)],
        )
        server.add_generic_rpc_handlers((InferenceService(self.app).handler(),))
        bind = settings.grpc.bind
        credentials = _credentials(settings.grpc.tls_cert_file, settings.grpc.tls_key_file)
        port = server.add_secure_port(bind, credentials) if credentials else server.add_insecure_port(bind)
        if not port:
            raise RuntimeError(f"GRPC_BIND={bind}: could not listen there")
        server.start()
        self._server = server

    def stop(self) -> None:
        """Take no new calls; wait for those in flight, at most ``GRACEFUL_TIMEOUT`` seconds."""
        if self._server is not None:
            self._server.stop(grace=settings_of(self.app).server.graceful_timeout_seconds).wait()
            self._server = None


def _credentials(cert_file: str | None, key_file: str | None) -> grpc.ServerCredentials | None:
    if not cert_file and not key_file:
        return None
    if not (cert_file and key_file):
        raise RuntimeError("GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE go together: set both for TLS, or neither")
    return grpc.ssl_server_credentials([(Path(key_file).read_bytes(), Path(cert_file).read_bytes())])


def init_app(app: Flask) -> None:
    """With ``GRPC_BIND`` set, serve gRPC from each worker of ``app``; register it last, so that it is stopped first, while what answers its calls still runs."""
    if settings_of(app).grpc.bind:
        server = GrpcServer(app)
        lifecycle.of(app).add("gRPC server", start=server.start, stop=server.stop)
