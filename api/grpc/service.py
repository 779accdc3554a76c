"""The methods of ``inference.GRPCInferenceService``: the V2 REST routes' answers over gRPC.

Each method parses its message, calls what the REST route calls (the serving runtime for readiness and
metadata, the data plane for inference: admission, routing, the prediction log, metrics, the request's
trace), and renders the answer or the problem as gRPC does. Models and versions resolve as on the REST
routes: ``model_version`` a number or an alias, empty for the default alias. Where reads need a token
(``REQUIRE_AUTH_FOR_READS``) the metadata ``authorization: Bearer <token>`` carries it, held to the same
per-model scopes as the REST routes (``read`` for readiness and metadata, ``predict`` for inference).

A problem is answered with the status its HTTP status maps to (:data:`CODES`), its detail as the
message, and its ``Retry-After`` as the trailing metadata ``retry-after`` (seconds).
"""
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import grpc
from flask import Flask
from opentelemetry.propagators.textmap import DefaultGetter
from werkzeug.datastructures import Headers

from api import domain, health, request_ids, traces
from api.answering import model_headers
from api.auth import check_right, reader
from api.errors import Problem, ProblemError, logged, traced
from api.grpc import protocol
from api.grpc.tensors import read_request, response
from api.settings import settings_of
from api.v2 import errors
from api.v2.features import TensorInput
from api.v2.metadata import model_metadata
from api.v2.outputs import outputs_of
from registry import tracing
from registry.access.scopes import PREDICT, READ
from registry.catalog.versions import ready_numbers
from registry.names import DEFAULT_ALIAS
from registry.serving.admission import Deadline
from registry.serving.data_plane import Call, Failure

# The gRPC status of each HTTP status a problem has; any other 4xx is INVALID_ARGUMENT, any other 5xx INTERNAL.
CODES = {
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    410: grpc.StatusCode.NOT_FOUND,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
TRACED = frozenset({"ModelInfer"})  # the methods whose calls are traced, as the REST routes' predictions are
_METADATA = DefaultGetter()


def code_of(status: int) -> grpc.StatusCode:
    """The gRPC status a problem of HTTP ``status`` is answered with."""
    if status in CODES:
        return CODES[status]
    return grpc.StatusCode.INVALID_ARGUMENT if 400 <= status < 500 else grpc.StatusCode.INTERNAL


class InferenceService:
    """The service's methods, answered with ``app`` (its config, its data plane, its database)."""

    def __init__(self, app: Flask):
        self.app = app

    def handler(self) -> grpc.GenericRpcHandler:
        """grpcio's handler of the six methods, each message (de)serialized by the protocol's classes."""
        methods = {
            "ServerLive": (self.server_live, protocol.ServerLiveRequest),
            "ServerReady": (self.server_ready, protocol.ServerReadyRequest),
            "ModelReady": (self.model_ready, protocol.ModelReadyRequest),
            "ServerMetadata": (self.server_metadata, protocol.ServerMetadataRequest),
            "ModelMetadata": (self.model_metadata, protocol.ModelMetadataRequest),
            "ModelInfer": (self.model_infer, protocol.ModelInferRequest),
        }
        return grpc.method_handlers_generic_handler(protocol.SERVICE, {
            name: grpc.unary_unary_rpc_method_handler(
                partial(self._answered, name, method), request_deserializer=message.FromString,
                response_serializer=_serialized)
            for name, (method, message) in methods.items()
        })

    def _answered(self, name: str, method: Callable, message, context: grpc.ServicerContext):
        """``method``'s answer to ``message``, in an app context; a problem ended as the call's status. Inference is
        traced as the REST route's request is: a server span, the child of the caller's ``traceparent``."""
        arrived, started_ns = time.monotonic(), time.time_ns()
        metadata = _metadata(context)
        served = tracing.UNTRACED
        if name in TRACED:
            served = tracing.serve(f"{protocol.SERVICE}/{name}", carrier=metadata, getter=_METADATA, attributes={
                "rpc.system": "grpc", "rpc.service": protocol.SERVICE, "rpc.method": name,
            }, start_ns=started_ns)
        status = 200
        with self.app.app_context():
            try:
                return method(message, Caller(context, metadata, arrived, served))
            except Exception as exc:
                described = traced(logged(errors.describe(exc), exc))  # the trace's id while its span is current
                status = described.status
                span = tracing.current()
                if span.is_recording():
                    span.set_attributes({"rpc.grpc.status_code": code_of(status).value[0]})
            finally:
                served.finish(status)
        _abort(context, described)

    # -- health and metadata ------------------------------------------------------------------------

    def server_live(self, message, caller: "Caller"):
        """The process is alive."""
        return protocol.ServerLiveResponse(live=True)

    def server_ready(self, message, caller: "Caller"):
        """Ready when /readyz is: this process can serve predictions (not while it stops)."""
        return protocol.ServerReadyResponse(ready=health.readiness().can_serve)

    def server_metadata(self, message, caller: "Caller"):
        """The server's name and version; no extensions."""
        return protocol.ServerMetadataResponse(name="model-registry", version=self.app.config["API_VERSION"])

    def model_ready(self, message, caller: "Caller"):
        """Ready when the version (or alias, or the default alias) is loaded and answering; NOT_FOUND when unknown."""
        name, ref = _model(message.name, message.version)
        self._authorize(caller, name, READ)
        domain.runtime().models.servable(name, ref)
        return protocol.ModelReadyResponse(ready=True)

    def model_metadata(self, message, caller: "Caller"):
        """The version's signature as tensors, as the REST route gives it (without its parameters: the message
        has none)."""
        name, ref = _model(message.name, message.version)
        self._authorize(caller, name, READ)
        described = model_metadata(domain.runtime().models.servable(name, ref), ready_numbers(name))
        answer = protocol.ModelMetadataResponse(name=described["name"], versions=described["versions"],
                                                platform=described["platform"])
        for tensors, described_tensors in ((answer.inputs, described["inputs"]), (answer.outputs, described["outputs"])):
            for tensor in described_tensors:
                tensors.add(name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"])
        return answer

    # -- inference ----------------------------------------------------------------------------------

    def model_infer(self, message, caller: "Caller"):
        """Inference through the data plane, as the REST route's: the caller's ``grpc-timeout`` its deadline, its
        ``x-request-id`` (when safe) its request id, its metadata the headers a rollout's sticky key is read from;
        the version, the route, the request id and the ``traceparent`` sent back as initial metadata."""
        name, ref = _model(message.model_name, message.model_version)
        self._authorize(caller, name, PREDICT)
        metadata = caller.metadata
        request_id = request_ids.of_environ({"HTTP_X_REQUEST_ID": metadata.get("x-request-id", "")})
        given = TensorInput(partial(read_request, message), settings_of(self.app).limits.max_batch_rows)
        call = Call(name, ref, request_id, caller.deadline())
        outcome = domain.data_plane().predict(call, given, headers=Headers(list(metadata.items())),
                                              status_of=errors.status_of)
        if isinstance(outcome, Failure):
            raise outcome.error
        prediction = outcome.prediction
        answer = response(model_name=name, model_version=str(prediction.version), request_id=given.decoded.id,
                          outputs=outputs_of(prediction, given.decoded))
        sent = {**model_headers(prediction), request_ids.HEADER: request_id, **traces.answered_with(caller.served)}
        caller.context.send_initial_metadata([(key.lower(), value) for key, value in sent.items()])
        if outcome.after is not None:
            caller.context.add_callback(outcome.after)  # the shadow runs, once the answer is sent
        return answer

    def _authorize(self, caller: "Caller", model: str, right: str) -> None:
        """Where reads need a token: the caller's, holding ``right`` on ``model`` when scoped."""
        if not settings_of(self.app).access.require_auth_for_reads:
            return
        who = reader(caller.metadata.get("authorization"), address=_address(caller.context.peer()))
        check_right(who, right, model, "method")


@dataclass(frozen=True)
class Caller:
    """A call: its context, its text metadata (by lowercase key), when it arrived and its span."""

    context: grpc.ServicerContext
    metadata: dict[str, str]
    arrived: float
    served: tracing.Served

    def deadline(self) -> Deadline | None:
        """The caller's ``grpc-timeout``, as the deadline the data plane honours."""
        remaining = self.context.time_remaining()
        return None if remaining is None else Deadline(self.arrived, max(0.0, remaining + time.monotonic() - self.arrived))


def _model(name: str, version: str) -> tuple[str, str]:
    if not name:
        raise ProblemError(400, "name the model (model_name, or name); its version may be a number or an alias")
    return name, version or DEFAULT_ALIAS


def _metadata(context: grpc.ServicerContext) -> dict[str, str]:
    """The call's text metadata (binary ``-bin`` keys left out), by lowercase key."""
    return {key: value for key, value in context.invocation_metadata() if not key.endswith("-bin")}


def _address(peer: str) -> str:
    """The client address of a gRPC peer (``ipv4:127.0.0.1:5000``, ``ipv6:[::1]:5000``)."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return rest.rpartition("]")[0].lstrip("[") or rest
    return rest.rpartition(":")[0] or rest


def _serialized(answer) -> bytes:
    return answer.SerializeToString()


def _abort(context: grpc.ServicerContext, described: Problem) -> None:
    """End the call with the status and message of ``described``, its ``Retry-After`` as the trailing metadata
    ``retry-after``, its problems one by one (when it has several) as ``errors`` (JSON), and its trace's id as
    ``trace-id``; raises, as ``context.abort`` does."""
    trailing = [("retry-after", described.headers["Retry-After"])] if "Retry-After" in described.headers else []
    if described.errors:
        trailing.append(("errors", json.dumps(described.errors)))  # ASCII, as text metadata must be
    if "trace_id" in described.members:
        trailing.append(("trace-id", described.members["trace_id"]))
    if trailing:
        context.set_trailing_metadata(trailing)
    context.abort(code_of(described.status), described.detail)
