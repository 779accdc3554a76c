"""Open Inference Protocol (V2 REST) routes: health, metadata, readiness and inference.

A thin translation: decode the tensors, call the prediction use case the predict routes call, and
encode its answer as output tensors. Without ``/versions/<v>`` the ``production`` alias answers.
"""
import time
from collections.abc import Callable
from functools import partial

import numpy as np
from flask import Response, current_app, request
from flask_smorest import Blueprint

from api.auth import reads
from api.errors import ProblemError
from api.prediction_metrics import answer_headers, count_answer, count_failure
from api.services import services
from api.v2 import errors
from api.v2.compression import decoded_body
from api.v2.features import model_input
from api.v2.metadata import PREDICT, PREDICT_PROBA, model_metadata, output_names
from api.v2.outputs import Output, encode_response
from api.v2.tensors import InferRequest, read_request
from api.views.ops import readiness_checks
from registry.catalog.paging import MAX_PER_PAGE
from registry.catalog.versions import list_versions
from registry.names import DEFAULT_ALIAS
from registry.serving.cache import ServableModel
from registry.serving.predict import Prediction, after_answer, predict

HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = ["binary_tensor_data"]

blp = Blueprint("v2", __name__, description="Open Inference Protocol (V2 REST), as KServe, Triton and MLServer speak it")
errors.register(blp)

_INFER_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object", "required": ["inputs"]},
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
    """Ready when /readyz is: the database answers and the artifact store can be written."""
    failing = [name for name, ok in readiness_checks().items() if not ok]
    if failing:
        raise ProblemError(503, f"not ready: {', '.join(failing)} unreachable")
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


@blp.route("/v2/models/<name>/infer", methods=["POST"])
@reads
@blp.doc(**_INFER_DOC)
@blp.response(200, description="outputs predict (and predict_proba when asked); model_version computed them")
@errors.documented(blp, 400, 401, 404, 410, 413)
def infer(name):
    """Inference with the ``production`` alias."""
    return _infer(name, DEFAULT_ALIAS)


@blp.route("/v2/models/<name>/versions/<version>/infer", methods=["POST"])
@reads
@blp.doc(**_INFER_DOC)
@blp.response(200, description="outputs predict (and predict_proba when asked); model_version computed them")
@errors.documented(blp, 400, 401, 404, 410, 413)
def infer_version(name, version):
    """Inference with a version, given as a number or an alias."""
    return _infer(name, version)


def _metadata(name: str, ref: str) -> dict:
    servable = services().server.servable(name, ref)
    numbers = sorted(version.number for version in list_versions(name, sort=None, include_archived=False, page=1, per_page=MAX_PER_PAGE).items)
    return model_metadata(servable, numbers)


def _ready(name: str, ref: str) -> dict:
    servable = services().server.servable(name, ref)
    return {"name": servable.model, "ready": True}


def _infer(name: str, ref: str) -> Response:
    started = time.perf_counter()
    limit = current_app.config["MAX_PREDICT_MB"] * 1024 * 1024
    body = decoded_body(request.get_data(), request.headers.get("Content-Encoding"), limit)
    header_length = request.headers.get(HEADER_LENGTH)
    decoded, prediction = _predict(name, ref, decode=lambda: read_request(body, header_length), started=started)
    version = str(prediction.version)
    answer, headers = encode_response(
        model_name=name, model_version=version, request_id=decoded.id, outputs=_outputs(prediction, decoded)
    )
    headers.update(answer_headers(prediction))
    mimetype = "application/octet-stream" if HEADER_LENGTH in headers else "application/json"
    response = Response(answer, mimetype=mimetype, headers=headers)
    if prediction.shadow is not None:
        response.call_on_close(partial(after_answer, services().server, prediction))
    return response


def _predict(name: str, ref: str, *, decode: Callable[[], InferRequest], started: float) -> tuple[InferRequest, Prediction]:
    """The one call into the prediction use case (alias requests follow their rollout), counted like
    the predict routes' answers."""
    server = services().server
    asked = server.servable(name, ref)  # an unknown model or version is a 404 before any decoding
    max_rows = current_app.config["MAX_BATCH_ROWS"]
    try:
        decoded = decode()
        proba = _wants_proba(asked, decoded)
        result = predict(
            server, name=name, ref=ref, parse=lambda signature: model_input(decoded.inputs, signature, max_rows),
            return_proba=proba, route_key=request.headers.get,
        )
    except Exception as exc:
        count_failure(name, ref, exc, asked=asked.version)
        raise
    count_answer(name, ref, result, time.perf_counter() - started)
    return decoded, result


def _wants_proba(servable: ServableModel, decoded: InferRequest) -> bool:
    if decoded.outputs is None:
        return False
    known = output_names(servable)
    unknown = [name for name in decoded.outputs if name not in known]
    if unknown:
        raise ProblemError(
            400,
            f"unknown output(s) {', '.join(unknown)}; version {servable.version} of {servable.model!r} "
            f"answers {' and '.join(known)}",
        )
    return PREDICT_PROBA in decoded.outputs


def _outputs(prediction: Prediction, decoded: InferRequest) -> list[Output]:
    wanted = decoded.outputs or {PREDICT: None}
    outputs = []
    for name in wanted:
        binary = decoded.binary_output if wanted[name] is None else wanted[name]
        if name == PREDICT:
            outputs.append(Output(PREDICT, np.asarray(prediction.predictions), binary))
        else:
            classes = {"classes": prediction.classes}
            outputs.append(Output(PREDICT_PROBA, np.asarray(prediction.probabilities, dtype=np.float64), binary, classes))
    return outputs
