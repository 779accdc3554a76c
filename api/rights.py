"""The right each route of a model needs, for tokens scoped to some models (registry/access/scopes.py).

Roles still decide who may call a route at all (``api.auth.requires``); a scoped token must also hold
the route's right on the model the URL names. Every route with a ``<name>`` of the JSON API and of V2
is listed here: a route missing from this table is refused to every scoped token (and the matrix
test, tests/integration/test_model_scopes.py, fails), never let through.
"""
from api.prediction_routes import INFER, INFER_VERSION, PREDICT_DEFAULT, PREDICT_REF
from registry.access.scopes import APPROVE, FEEDBACK, PREDICT, PROMOTE, READ, READ_INPUTS, UPLOAD

ROUTE_RIGHTS: dict[tuple[str, str], str] = {
    ("models.Model", "GET"): READ,
    ("models.Model", "PATCH"): UPLOAD,
    ("versions.Versions", "GET"): READ,
    ("versions.Versions", "POST"): UPLOAD,
    ("versions.Version", "GET"): READ,
    ("versions.Version", "PATCH"): UPLOAD,
    ("versions.Version", "DELETE"): UPLOAD,
    ("versions.download_artifact", "GET"): READ,
    ("evaluations.VersionEvaluations", "GET"): READ,
    ("evaluations.VersionEvaluations", "POST"): UPLOAD,
    ("evaluations.dataset_evaluations", "GET"): READ,
    ("batch_runs.VersionBatchRuns", "GET"): READ,
    ("batch_runs.VersionBatchRuns", "POST"): UPLOAD,
    ("predictions.put_reference", "PUT"): UPLOAD,
    ("predictions.reference", "GET"): READ,
    ("predictions.version_monitoring", "GET"): READ,
    ("predictions.predictions", "GET"): READ_INPUTS,
    ("predictions.version_importance", "GET"): READ_INPUTS,
    ("predictions.feedback", "POST"): FEEDBACK,
    (PREDICT_REF.endpoint, "POST"): PREDICT,
    (PREDICT_DEFAULT.endpoint, "POST"): PREDICT,
    ("v2.model", "GET"): READ,
    ("v2.model_version", "GET"): READ,
    ("v2.model_ready", "GET"): READ,
    ("v2.model_version_ready", "GET"): READ,
    (INFER.endpoint, "POST"): PREDICT,
    (INFER_VERSION.endpoint, "POST"): PREDICT,
    ("aliases.list_aliases", "GET"): READ,
    ("aliases.history", "GET"): READ,
    ("aliases.promote", "POST"): PROMOTE,
    ("aliases.rollback", "POST"): PROMOTE,
    ("aliases.delete_alias", "DELETE"): PROMOTE,
    ("rollouts.Rollout", "GET"): READ,
    ("rollouts.Rollout", "PUT"): PROMOTE,
    ("rollouts.Rollout", "DELETE"): PROMOTE,
    ("rollouts.complete", "POST"): PROMOTE,
    ("rollouts.pause", "POST"): PROMOTE,
    ("rollouts.resume", "POST"): PROMOTE,
    ("rollouts.advance", "POST"): PROMOTE,
    ("policies.get_policy", "GET"): READ,
    ("policies.list_policies", "GET"): READ,
    ("policies.set_policy", "PUT"): PROMOTE,
    ("policies.delete_policy", "DELETE"): PROMOTE,
    ("policies.break_glass", "POST"): PROMOTE,
    ("policies.list_requests", "GET"): READ,
    ("policies.get_request", "GET"): READ,
    ("policies.open_request", "POST"): PROMOTE,
    ("policies.approve", "POST"): APPROVE,
    ("policies.reject", "POST"): APPROVE,
}


def route_right(endpoint: str | None, method: str) -> str | None:
    """The right a request to ``endpoint`` by ``method`` needs on its model (None: a route not listed)."""
    return ROUTE_RIGHTS.get((endpoint or "", "GET" if method == "HEAD" else method))
