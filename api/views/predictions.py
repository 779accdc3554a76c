"""The prediction log of a model, page by page (JSON) or as one CSV page for notebooks, the
feedback that labels it, a version's live quality and drift, and the reference drift is judged by.
Logged inputs and raw categorical values go only to a token with the right ``read_inputs``."""
import dataclasses

from flask import Response, current_app, request
from flask_smorest import Blueprint

from api import background, domain
from api.auth import principal, reads, requires, requires_read_inputs, sees_inputs
from api.content import accepts
from api.csv_export import csv_table
from api.input_privacy import shown_value_names
from api.openapi import errors
from api.schemas.monitoring import (
    MonitoringArgs,
    MonitoringOut,
    ReferenceIn,
    ReferenceOut,
    VersionImportanceOut,
    window_span,
)
from api.schemas.predictions import FeedbackIn, FeedbackOut, LoggedPageOut, LoggedPredictionArgs, LoggedPredictionOut
from api.settings import drift_thresholds, settings_of
from registry.monitoring.feedback import apply_feedback
from registry.monitoring.importance import version_importance as importance_of
from registry.monitoring.log_export import exported_state
from registry.monitoring.masking import masked_profile
from registry.monitoring.quality import monitoring
from registry.monitoring.queries import logged_predictions
from registry.monitoring.references import get_reference, set_reference

blp = Blueprint("predictions", __name__, description="The prediction log")

CSV_COLUMNS = ("request_id", "version", "alias", "route", "status", "latency_ms", "at", "inputs", "outputs", "label",
               "labelled_at", "trace_id", "explanations")


@blp.route("/models/<name>/predictions")
@requires_read_inputs
@blp.arguments(LoggedPredictionArgs, location="query")
@blp.response(200, LoggedPageOut)
@blp.alt_response(200, description="the same page as CSV, with `Accept: text/csv`", content_type="text/csv")
def predictions(args, name):
    """Logged requests of a model, newest first; ``next_cursor`` fetches the next (older) page.

    Answered from the database's window; with PREDICTION_LOG_EXPORT set, ``exported_to`` says where the
    model's older rows went (Parquet files and their manifest).

    Inputs may be personal data: this needs a token with the right ``read_inputs`` (roles ``analyst``
    and ``admin``), even where reads are open. The CSV neutralises formulas (see ``api.csv_export``)."""
    exporter = background.log_exporter(current_app)
    exported = exported_state(name, exporter.location) if exporter is not None else None  # ends its read: first
    page = logged_predictions(name, **args)
    if request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv":
        headers = {"X-Next-Cursor": str(page.next_cursor)} if page.next_cursor else {}
        items = LoggedPredictionOut(many=True).dump(page.items)
        return Response(csv_table(CSV_COLUMNS, items, json_columns=("inputs", "outputs", "label", "explanations")),
                        mimetype="text/csv", headers=headers)
    return {"items": page.items, "next_cursor": page.next_cursor, "exported_to": exported}


@blp.route("/models/<name>/feedback", methods=["POST"])
@requires("feedback", "ci")
@accepts("application/json")
@blp.arguments(FeedbackIn)
@blp.response(200, FeedbackOut)
def feedback(body, name):
    """Labels for logged predictions, by request id (up to 10,000 a call): each joins its prediction at once.

    What cannot apply is listed under ``errors`` with its index; the rest apply. A second label for a
    request replaces the first (counted under ``replaced``)."""
    domain.prediction_log().flush(timeout=2)  # what this worker answered moments ago is written first
    return apply_feedback(name, body["items"])


@blp.route("/models/<name>/versions/<ref>/monitoring")
@reads
@blp.arguments(MonitoringArgs, location="query")
@blp.response(200, MonitoringOut)
def version_monitoring(args, name, ref):
    """A version's logged requests, labels and live quality over a window ending now (``?window=24h``).

    Quality is a classifier's accuracy or a regressor's mean absolute error, with its 95 % interval,
    over the labelled rows; null until a label came. Drift compares the window's rows and predictions
    with the version's reference (``…/reference``: its training or evaluation rows, else its first
    1,000 served rows), by PSI and a KS or χ² test; null until the window holds 100 rows past it, or
    while the reference sent has fewer than ``DRIFT_MIN_REFERENCE_ROWS`` rows: ``drift_detail`` says why.
    A categorical feature's bins are named by value only for a token with the right ``read_inputs``,
    by the value's keyed hash (``value 3f2a9c1b04de``) for everyone else."""
    return monitoring(name, ref, window=args["window"], span=window_span(args["window"]), thresholds=drift_thresholds(),
                      name_value=shown_value_names())


@blp.route("/models/<name>/versions/<ref>/importance")
@requires_read_inputs
@blp.arguments(MonitoringArgs, location="query")
@blp.response(200, VersionImportanceOut)
def version_importance(args, name, ref):
    """A version's global importance over a window ending now (``?window=24h``), from its logged explanations.

    Per input column, the mean absolute attribution over the window's explained rows (summed over the
    classes where the explanations' space has a value per class), largest first, and each column's share;
    the model's ``prediction_log.explain`` setting decides how many answers are explained. ``rollouts``
    puts, for each running rollout the version is an arm of, the canary's importance beside the primary's
    (each over its own answers) with their total variation distance: the attribution drift the monitoring
    sweep alerts on (``model.attribution_drift``). Explanations tell about the inputs they explain: this
    needs a token with the right ``read_inputs``, as the logged inputs do."""
    given = settings_of().monitoring
    return importance_of(name, ref, window=args["window"], span=window_span(args["window"]),
                         min_rows=given.attribution_min_rows, threshold=given.attribution_drift)


@blp.route("/models/<name>/versions/<ref>/reference", methods=["PUT"])
@requires("ci")
@errors(410)
@accepts("application/json")
@blp.arguments(ReferenceIn)
@blp.response(200, ReferenceOut)
def put_reference(body, name, ref):
    """Judge the version's drift against the rows it was trained or evaluated on (up to 10,000).

    The rows come in any JSON predict body shape beside ``source``; the version answers them (the
    reference of its predictions) and each feature is profiled. The profiles are kept, and 500 of the
    rows for a rollout plan's agreement gate (never returned by any route); sending
    again replaces them."""
    rows = {key: value for key, value in body.items() if key != "source"}
    return _shown(set_reference(domain.runtime(), name=name, ref=ref, source=body["source"], body=rows,
                                actor=principal().name))


@blp.route("/models/<name>/versions/<ref>/reference")
@reads
@blp.response(200, ReferenceOut)
def reference(name, ref):
    """The version's drift reference: where its rows came from, how many, and each column's profile.

    A categorical column's values are shown as they are only to a token with the right ``read_inputs``;
    to everyone else each is named by its keyed hash, the same name its drift bin has."""
    return _shown(get_reference(name, ref))


def _shown(reference):
    """``reference`` as this caller may see it: categorical values as they are, or by their keyed hash."""
    if sees_inputs():
        return reference
    name_value = shown_value_names()
    return dataclasses.replace(reference, features={column: masked_profile(found, name_value)
                                                    for column, found in reference.features.items()})
