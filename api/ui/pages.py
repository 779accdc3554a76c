"""The dashboard's read pages: models, one model, compare, history, an alias; sign-in and -out."""
from datetime import timedelta

from flask import current_app, flash, redirect, render_template, request, url_for

from api import rate_limits
from api.input_privacy import hidden_value_names
from api.schemas.monitoring import window_span
from api.settings import drift_thresholds, settings_of
from api.ui.blueprint import bp
from api.ui.charts import metric_bars, quality_marks, share_bars, time_ticks
from api.ui.forms import ApproveForm, SignInForm, SignOutForm
from api.ui.operations import model_memory
from api.ui.session import page, person_id_token, safe_next, signed_in
from api.ui.sign_on import provider_name, provider_sign_out
from api.ui.session import sign_in as start_session
from api.ui.session import sign_out as end_session
from registry.access.scopes import READ, holds
from registry.aliases import moves as aliases
from registry.aliases import rollouts as rollouts
from registry.approvals import requests as approval_requests
from registry.batch import runs as batch_runs
from registry.catalog import models as catalog
from registry.catalog import versions
from registry.errors import Forbidden, RolloutNotFound, Unauthorized
from registry.evaluations import comparison
from registry.evaluations import scores as evaluations
from registry.governance import policies
from registry.monitoring.importance import version_importance
from registry.monitoring.quality import monitoring, quality_timeline
from registry.monitoring.queries import logged_predictions
from registry.tables import utcnow

PER_PAGE = 50
WINDOWS = ("1h", "24h", "7d", "30d")  # the monitoring page's windows
LATEST_REQUESTS = 20


@bp.app_context_processor
def _everywhere() -> dict:
    return {"who": signed_in(), "sign_out_form": SignOutForm(), "settings": settings_of()}


@bp.route("/")
@page
def models():
    """Every model with its aliases and the versions they serve."""
    number = request.args.get("page", 1, type=int) or 1
    who = signed_in()
    readable = holds(READ, who.role, who.scopes) if who is not None else None  # a scoped person: their models
    listing = catalog.list_models(max(number, 1), PER_PAGE, readable=readable)
    return render_template("ui/models.html", listing=listing, rollouts=rollouts.running_rollouts())


@bp.route("/models/<name>")
@page
def model(name):
    """A model's versions with their metrics side by side, sortable."""
    sort = request.args.get("sort") or "-version"
    include_archived = request.args.get("archived") == "1"
    summary = catalog.get_model(name)
    number = max(request.args.get("page", 1, type=int) or 1, 1)
    listing = versions.list_versions(name, sort=sort, include_archived=include_archived, page=number, per_page=PER_PAGE)
    metric_names = sorted({key for v in listing.items for key in v.metrics})
    running = rollouts.running_rollouts(name)
    return render_template(
        "ui/model.html", model=summary, listing=listing, metric_names=metric_names,
        sort=sort, include_archived=include_archived, rollouts=running, in_rollouts=_rollout_versions(running),
        protections=policies.protections(name), **_evaluations(name),
    )


def _rollout_versions(running: dict) -> set[int]:
    """The versions running rollouts serve as canary or shadow: archiving one is refused (409)."""
    return {settings[arm]["version"] for settings in running.values() for arm in ("canary", "shadow") if settings.get(arm)}


@bp.route("/models/<name>/compare")
@page
def compare(name):
    """Two or more versions: metrics table and chart, and every difference."""
    numbers = list(dict.fromkeys(request.args.getlist("v", type=int)))
    if len(numbers) < 2:
        flash("Tick at least two versions to compare them.", "error")
        return redirect(url_for("ui.model", name=name))
    result = comparison.compare_versions(name, numbers)
    shared = _shared_evaluations(name, numbers)
    chosen = next((item for item in shared if item[0].sha256 == request.args.get("dataset")), shared[0] if shared else None)
    scores = chosen[1] if chosen else {}
    score_names = sorted({key for score in scores.values() for key in score.metrics})
    return render_template(
        "ui/compare.html", cmp=result, numbers=numbers, bars=metric_bars(result.versions, result.metric_names),
        shared=shared, dataset=chosen[0] if chosen else None, scores=scores, score_names=score_names,
        score_bars=metric_bars([scores[v.number] for v in result.versions if v.number in scores], score_names),
        best=comparison.best_values([v.metrics for v in result.versions], result.metric_names),
        best_scores=comparison.best_values([score.metrics for score in scores.values()], score_names),
        lower_is_better=comparison.lower_is_better,
    )


def _shared_evaluations(name: str, numbers: list[int]) -> list[tuple]:
    """The datasets at least two of the compared versions were scored on, each with those versions' newest scores."""
    shared = []
    for dataset in evaluations.evaluated_datasets(name):
        listed = evaluations.dataset_evaluations(name, dataset.sha256, sort=None, include_archived=True, page=1, per_page=500)
        scores = {score.number: score for score in listed.items if score.number in numbers}
        if len(scores) >= 2:
            shared.append((dataset, scores))
    return shared


@bp.route("/models/<name>/history")
@page
def history(name):
    """The promotion ledger as a timeline, newest first."""
    alias = request.args.get("alias") or None
    number = max(request.args.get("page", 1, type=int) or 1, 1)
    summary = catalog.get_model(name)
    events = aliases.history(name, alias=alias, page=number, per_page=PER_PAGE)
    return render_template("ui/history.html", model=summary, events=events, alias=alias,
                           timeline=_timeline(name, events) if alias is None else [("move", e) for e in events.items])


def _timeline(name: str, events) -> list[tuple[str, object]]:
    """A page of alias moves with the uploads, archives and batch runs of its stretch of time, newest first: from
    the oldest move of the page before (the first page: from now) to its own oldest (the last: to the start)."""
    last_page = events.page * events.per_page >= events.total
    before = aliases.history(name, alias=None, page=(events.page - 1) * events.per_page, per_page=1).items \
        if events.page > 1 else []
    newest = before[0].at if before else None
    oldest = events.items[-1].at if events.items and not last_page else None
    entries = [("move", event) for event in events.items]
    entries += [(entry.action, entry) for entry in versions.lifecycle(name, after=oldest, until=newest)]
    entries += [("batch", run) for run in batch_runs.model_batch_runs(name, after=oldest, until=newest)]
    return sorted(entries, key=lambda entry: entry[1].at, reverse=True)


@bp.route("/models/<name>/aliases/<alias>")
@page
def alias(name, alias):
    """An alias: the version it serves, and its live figures (refreshed every few seconds)."""
    summary = catalog.get_model(name)
    protection = policies.protections(name).get(alias)
    open_requests = approval_requests.list_requests(name, alias, state="open", page=1, per_page=PER_PAGE).items
    who = signed_in()
    approvable = approval_requests.approvable(name, alias, actor=who.name, owner=who.person) \
        if who is not None and open_requests else set()
    return render_template("ui/alias.html", model=summary, alias=alias, protections={alias: protection} if protection else {},
                           policy=protection.policy if protection else None, open_requests=open_requests,
                           frozen_until=protection.frozen_until if protection else None, approvable=approvable,
                           approve_form=ApproveForm(),
                           **_alias_state(name, alias))


@bp.route("/models/<name>/aliases/<alias>/live")
@page
def alias_live(name, alias):
    """The live part of the alias page, fetched again by htmx every few seconds."""
    return render_template("ui/_alias_live.html", model=catalog.get_model(name), alias=alias, **_alias_state(name, alias))


@bp.route("/models/<name>/versions/<int:number>/monitoring")
@page
def version_monitoring(name, number):
    """A version's live quality over time, labels and their delay, drift per feature, global importance (and a
    rollout's attribution drift), latest logged requests."""
    window = request.args.get("window") if request.args.get("window") in WINDOWS else "24h"
    span = window_span(window)
    summary = catalog.get_model(name)
    version = versions.get_version(name, str(number))
    who = signed_in()
    reads_inputs = who is not None and who.reads_inputs()
    figures = monitoring(name, str(number), window=window, span=span, thresholds=drift_thresholds(),
                         name_value=str if reads_inputs else hidden_value_names(current_app))
    timeline = quality_timeline(name, str(number), span=span)
    metric = "accuracy" if version.task == "classification" else "mae"
    marks, ticks = quality_marks(timeline, metric=metric)
    drift_charts = {column: share_bars(judged["bins"]) for column, judged in _drift_columns(figures.drift)}
    # Inputs may be personal data: the latest requests and the values of categorical bins only for a
    # signed-in token with the right read_inputs, as the API asks.
    latest = logged_predictions(name, version=number, limit=LATEST_REQUESTS).items if reads_inputs else None
    # Attributions tell about the inputs they explain: the same right.
    explained = version_importance(name, str(number), window=window, span=span,
                                   min_rows=settings_of().monitoring.attribution_min_rows,
                                   threshold=settings_of().monitoring.attribution_drift) if reads_inputs else None
    return render_template(
        "ui/monitoring.html", model=summary, version=version, window=window, windows=WINDOWS, figures=figures,
        metric=metric, marks=marks, ticks=ticks, times=time_ticks(timeline), drift_charts=drift_charts, latest=latest, signed_in=who is not None,
        explained=explained,
    )


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    """Sign in with an API token; the browser keeps a session cookie, never the token."""
    form = SignInForm()
    target = safe_next(request.args.get("next"))
    if form.validate_on_submit():
        try:
            who = start_session(form.token.data.strip())
        except Unauthorized as exc:
            rate_limits.authentication_failed()  # 429 instead, past the limit
            form.token.errors.append(exc.detail)
        except Forbidden as exc:  # a valid token the dashboard does not take
            form.token.errors.append(exc.detail)
        else:
            flash(f"Signed in as {who.name} ({who.role}).", "ok")
            return redirect(target)
    return render_template("ui/sign_in.html", form=form, provider=provider_name(), target=target), \
        (400 if form.errors else 200)


@bp.route("/sign-out", methods=["POST"])
def sign_out():
    """End the session (a POST with the CSRF token, so no other site can sign you out)."""
    if SignOutForm().validate_on_submit():
        id_token = person_id_token()
        end_session()
        flash("Signed out.", "ok")
        at_provider = provider_sign_out(id_token)  # a person signed in through single sign-on: there too
        if at_provider is not None:
            return at_provider
    return redirect(url_for("ui.models"))


def _alias_state(name: str, alias: str) -> dict:
    version = versions.get_version(name, alias)
    try:
        rollout = rollouts.get_rollout(name, alias)
    except RolloutNotFound:
        rollout = None
    return {"version": version, "rollout": rollout, "arms": _arm_quality(name, rollout) if rollout else {},
            "last_moves": aliases.history(name, alias=alias, page=1, per_page=5).items}


def _arm_quality(name: str, rollout) -> dict:
    """Each arm's live figures since the rollout started: its version's requests by that route, labels and quality."""
    span = max(utcnow() - rollout.started_at, timedelta(minutes=1))
    arms = {}
    for role, arm in (("primary", rollout.primary), ("canary", rollout.canary), ("shadow", rollout.shadow)):
        if arm:
            routes = monitoring(name, str(arm["version"]), window="rollout", span=span, thresholds=None).routes
            arms[role] = (arm["version"], routes.get(role))
    return arms


def _drift_columns(drift: dict | None) -> list[tuple[str, dict]]:
    """The drift's columns in order, the predictions last."""
    if not drift:
        return []
    return [*drift["features"].items(), ("predictions", drift["predictions"])]


def _evaluations(name: str) -> dict:
    """The datasets the model's versions were scored on, and the scores on the chosen one, side by side."""
    datasets = evaluations.evaluated_datasets(name)
    chosen = request.args.get("dataset") or (datasets[0].sha256 if datasets else None)
    sort = request.args.get("eval_sort") or "-version"
    scores = evaluations.dataset_evaluations(name, chosen, sort=sort, include_archived=False, page=1, per_page=500).items if chosen else []
    return {
        "datasets": datasets, "dataset": chosen, "eval_sort": sort, "scores": scores,
        "score_names": sorted({key for score in scores for key in score.metrics}),
    }


@bp.route("/operations")
@page
def operations():
    """How this host's workers use their model memory: loaded bytes, budget, hits, misses, loads."""
    return render_template("ui/operations.html", memory=model_memory())
