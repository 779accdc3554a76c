"""Open Inference Protocol (V2 REST) routes: health, metadata, readiness and inference.

A thin translation: decode the tensors, call the prediction use case the predict routes call, and
encode its answer as output tensors. Without ``/versions/<v>`` the ``production`` alias answers. The
inference routes are answered by the prediction dispatcher (``api/fast_predict.py``), which calls
:func:`given_of` and :func:`render`; the rest by the views of ``blp``.
"""
from functools import partial

from flask import current_app
from flask_smorest import Blueprint

from api import domain, health
from api.answering import Rendered
from api.auth import reads
from api.errors import ProblemError
from api.openapi import READ, REQUEST_TIMEOUT
from api.prediction_routes import INFER, INFER_VERSION, PredictionRoute
from api.v2 import errors
from api.v2.features import TensorInput
from api.v2.metadata import model_metadata
from api.v2.outputs import encode_response, outputs_of
from api.v2.tensors import DATATYPES, read_request
from registry.catalog.versions import ready_numbers
from registry.names import DEFAULT_ALIAS
from registry.serving.running import Prediction

HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = ["binary_tensor_data"]

blp = Blueprint("v2", __name__, description="Open Inference Protocol (V2 REST), as KServe, Triton and MLServer speak it")
errors.register(blp)

# null as well as an object: clients built on pydantic models (KServe's among them) send their unset fields as null,
# which read_request takes as absent
_OPTIONAL_OBJECT = {"type": ["object", "null"]}
_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string", "enum": sorted(DATATYPES)},
        "parameters": _OPTIONAL_OBJECT,
        "data": {"description": "the values, flat or nested, row-major; their count is the product of shape"},
    },
}
_INFER_SCHEMA = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": ["string", "null"]},
        "parameters": _OPTIONAL_OBJECT,
        "inputs": {"type": "array", "minItems": 1, "items": _TENSOR},
        "outputs": {
            "type": ["array", "null"],
            "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "parameters": _OPTIONAL_OBJECT}},
        },
    },
}
_INFER_DOC = {
    "parameters": [REQUEST_TIMEOUT],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": _INFER_SCHEMA,
                "example": {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": [0.1, 2.0, 3.5]}]},
            },
            "application/octet-stream": {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "binary tensor data extension: the JSON header (Inference-Header-Content-Length "
                    "bytes), then each binary input's binary_data_size bytes",
                },
            },
        },
    }
}


@blp.route("/v2")
@blp.response(200, description="name, version and extensions of the server")
def server_metadata():
    """Server metadata."""
    return {"name": "model-registry", "version": current_app.config["API_VERSION"], "extensions": EXTENSIONS}


@blp.route("/v2/health/live")
@blp.response(200, description='{"live": true}')
def live():
    """The process is alive."""
    return {"live": True}


@blp.route("/v2/health/ready")
@blp.response(200, description='{"ready": true}')
@blp.alt_response(503, description="not ready, as /readyz says")
def ready():
    """Ready when /readyz is: this process can serve predictions (degraded or not)."""
    readiness = health.readiness()
    if not readiness.can_serve:
        raise ProblemError(503, f"not ready: {', '.join(readiness.problems)} unreachable")
    return {"ready": True}


@blp.route("/v2/models/<name>")
@reads
@blp.response(200, description="model metadata of the version the production alias points at")
@errors.documented(blp, 401, 404, 410)
def model(name):
    """Model metadata (the ``production`` version's signature as tensors)."""
    return _metadata(name, DEFAULT_ALIAS)


@blp.route("/v2/models/<name>/versions/<version>")
@reads
@blp.response(200, description="model metadata of a version (number or alias)")
@errors.documented(blp, 401, 404, 410)
def model_version(name, version):
    """Model metadata of a version, given as a number or an alias."""
    return _metadata(name, version)


@blp.route("/v2/models/<name>/ready")
@reads
@blp.response(200, description='{"name", "ready": true}')
@errors.documented(blp, 401, 404, 410)
def model_ready(name):
    """Ready when the ``production`` version is loaded and answering; 404 when unknown."""
    return _ready(name, DEFAULT_ALIAS)


@blp.route("/v2/models/<name>/versions/<version>/ready")
@reads
@blp.response(200, description='{"name", "ready": true}')
@errors.documented(blp, 401, 404, 410)
def model_version_ready(name, version):
    """Ready when the version is loaded and answering; 404 when unknown."""
    return _ready(name, version)


def _infer_operation(summary: str) -> dict:
    """An inference route's OpenAPI operations (its ``POST``), as flask-smorest would document a view of them."""
    return {"post": {
        "summary": summary, "tags": [blp.name], **READ, **_INFER_DOC,
        "responses": {
            "200": {"description": "outputs predict (and predict_proba when asked); model_version computed them"},
            "410": {"description": errors.ERROR_STATUSES[410],
                    "content": {"application/json": {"schema": errors.ProtocolError}}},
        },
    }}


# The inference routes, answered by the prediction dispatcher (api/fast_predict.py), not by views of ``blp``.
OPERATIONS: dict[PredictionRoute, dict] = {
    INFER: _infer_operation("Inference with the ``production`` alias."),
    INFER_VERSION: _infer_operation("Inference with a version, given as a number or an alias."),
}


def _metadata(name: str, ref: str) -> dict:
    servable = domain.runtime().models.servable(name, ref)
    return model_metadata(servable, ready_numbers(name))


def _ready(name: str, ref: str) -> dict:
    servable = domain.runtime().models.servable(name, ref)
    return {"name": servable.model, "ready": True}


def given_of(data: bytes, header_length: str | None, max_rows: int) -> TensorInput:
    """An inference request from its body ``data`` (decompressed) and its ``Inference-Header-Content-Length``,
    decoded when the answering version asks for its rows."""
    return TensorInput(partial(read_request, data, header_length, max_rows), max_rows)


def render(name: str, given: TensorInput, prediction: Prediction) -> Rendered:
    """The protocol's answer to ``given`` from ``name``'s ``prediction``: output tensors, as JSON or binary."""
    decoded = given.decoded
    body, headers = encode_response(
        model_name=name, model_version=str(prediction.version), request_id=decoded.id,
        outputs=outputs_of(prediction, decoded),
    )
    mimetype = "application/octet-stream" if HEADER_LENGTH in headers else "application/json"
    return body, mimetype, headers
