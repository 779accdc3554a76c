"""The ``python -m trainers`` command line: train, register, retrain, rollout, score, import-mlflow, export-example.

Exit codes: 0 success (retrain: promoted or canary started; rollout judge: completed; score: scored and
recorded), 3 retrain
kept the champion (rollout judge: aborted), 4 rollout judge: not enough traffic yet, 1 failure,
2 usage.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from pathlib import Path

import click
from registry_client import DEFAULT_TIMEOUT, RegistryClient, RegistryError
from registry_client.client import DEFAULT_URL, TOKEN_VARIABLE, URL_VARIABLE
from tqdm.contrib.logging import logging_redirect_tqdm

from trainers import artifact, boosted, datasets
from trainers.errors import ConfigurationError, TrainerError
from trainers.metrics import ALL_METRICS
from trainers.mlflow_import import DEFAULT_MAX_UPLOAD_MB, import_registry, open_source
from trainers.mlflow_import.report import format_summary
from trainers.params import parse_params
from trainers.report import build_report, read_report, report_path_for, upload_metadata, write_report
from trainers.retrain import CANARY, PROMOTED, RetrainRequest, retrain
from trainers.rollout import ABORT, COMPLETE, RolloutRule, settle
from trainers.scoring import ENGINES, ScoringJob, parse_reference, score
from trainers.target import KIND_TASKS, TASKS
from trainers.training import TrainingSpec, train

log = logging.getLogger("trainers")

EXIT_KEPT = 3
EXIT_WAIT = 4
EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


class TrainerGroup(click.Group):
    """Runs every command with one-line logs and warnings, and turns TrainerError and RegistryError into exit 1."""

    def invoke(self, ctx: click.Context):
        """Invoke the command; a TrainerError or RegistryError becomes ``Error: <message>`` on stderr and exit 1."""
        _configure_logging(quiet=ctx.params.get("quiet", False))
        with warnings.catch_warnings(), logging_redirect_tqdm(loggers=[log]):
            warnings.simplefilter("default")
            warnings.showwarning = _log_warning
            try:
                return super().invoke(ctx)
            except (TrainerError, RegistryError) as exc:
                raise click.ClickException(str(exc)) from exc


@click.group(cls=TrainerGroup)
@click.option("-q", "--quiet", is_flag=True, help="Only log warnings and errors.")
def cli(quiet: bool) -> None:
    """Train scikit-learn models and keep a model registry's champion up to date.

    Logs go to stderr one line at a time; results (metrics, a version, a JSON summary) go to
    stdout. Registry commands read the API token from the REGISTRY_TOKEN environment variable.

    Exit codes: 0 success (retrain: promoted or canary started; rollout judge: completed), 3 retrain
    kept the champion (rollout judge: aborted), 4 rollout judge: not enough traffic yet, 1 failure,
    2 usage.
    """


def _parse_param_option(ctx, param, values) -> dict:
    try:
        return parse_params(values)
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc)) from exc


def _parse_tag_option(ctx, param, values) -> dict:
    tags = {}
    for pair in values:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"tag {pair!r} is not of the form name=value")
        tags[name.strip()] = value
    return tags


def _parse_list_option(ctx, param, value: str | None) -> list | None:
    """A list given as ``a,b,c`` (strings) or as a JSON array (``[0, 1]``: integers stay integers)."""
    if value is None:
        return None
    if not value.lstrip().startswith("["):
        return [item.strip() for item in value.split(",")]
    try:
        items = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{value!r} is not a JSON array: {exc.msg}") from None
    if not isinstance(items, list):
        raise click.BadParameter(f"{value!r} is not a JSON array")
    return items


def _parse_metric_option(ctx, param, values) -> dict:
    metrics = {}
    for pair in values:
        name, sep, value = pair.partition("=")
        try:
            metrics[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise click.BadParameter(f"metric {pair!r} is not of the form name=number")
    return metrics


def _parse_plan_option(ctx, param, value: str | None) -> dict | None:
    """--plan: the word ``default`` (the registry's default plan), or a JSON file holding a plan."""
    if value is None:
        return None
    if value == "default":
        return {}
    try:
        plan = json.loads(Path(value).read_text(encoding="utf-8"))
    except OSError as exc:
        raise click.BadParameter(f"cannot read {value}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{value} is not JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(plan, dict):
        raise click.BadParameter(f"{value} must hold a JSON object (steps, gates, on_success)")
    return plan


def _check_registry_url(ctx, param, value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise click.BadParameter(f"{value!r} is not an http:// or https:// URL")
    return value


def _check_reference(ctx, param, value: str) -> str:
    try:
        parse_reference(value)
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc).removeprefix(f"--model {value!r}: ")) from None
    return value


def training_options(kinds: list[str]):
    """The data, target, kind (one of ``kinds``) and hyperparameter options shared by ``train`` and ``retrain``."""
    library_kinds = [kind for kind in kinds if kind in boosted.KINDS]
    libraries = (f", {' or '.join(library_kinds)} (the library's own model of the numeric columns, written as "
                 "its model file; either; needs the package installed)") if library_kinds else ""
    options = [
        click.option("--data", required=True, type=EXISTING_FILE,
                     help="CSV file with a header row."),
        click.option("--target", required=True, help="Name of the column to predict."),
        click.option("--kind", required=True, type=click.Choice(kinds),
                     help="linear (regression), logistic (classification), tree, forest, boosting "
                          f"(scikit-learn's HistGradientBoosting; either){libraries}."),
        click.option("--task", type=click.Choice(["auto", *TASKS]), default="auto",
                     show_default=True,
                     help="For the kinds that do both: auto reads text, booleans or at most 20 distinct "
                          "integers in the target as classes, anything else as regression."),
        click.option("--param", "params", multiple=True, callback=_parse_param_option,
                     metavar="NAME=VALUE",
                     help="Estimator hyperparameter, repeatable: --param max_depth=8 --param "
                          "max_features=sqrt. Values are read as None, true/false, int, float or "
                          "text; quote to force text."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Seeds the split, the folds and the estimator's random_state."),
        click.option("--test-size", type=click.FloatRange(0, 1, min_open=True, max_open=True),
                     default=0.2, show_default=True, help="Share of rows held out for evaluation."),
        click.option("--job-url", help="Link to the CI run, recorded in the lineage."),
    ]

    def decorate(command):
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def registry_options(command):
    """The registry URL, model name and timeout options shared by ``register`` and ``retrain``."""
    options = [
        click.option("--registry", required=True, callback=_check_registry_url, metavar="URL",
                     help="Base URL of the registry, e.g. http://127.0.0.1:8000."),
        click.option("--model", required=True, help="Registered model name."),
        click.option("--description", help="Description of the uploaded version."),
        click.option("--tag", "tags", multiple=True, callback=_parse_tag_option,
                     metavar="NAME=VALUE", help="Tag of the uploaded version, repeatable."),
        click.option("--timeout", type=click.FloatRange(min=0, min_open=True),
                     default=DEFAULT_TIMEOUT, show_default=True,
                     help="Seconds to wait for each registry request."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@cli.command("train")
@training_options(list(KIND_TASKS))
@click.option("--cv", type=click.IntRange(min=2), metavar="K",
              help="Report K-fold cross-validated mean ± sd, then fit on every row.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the artifact: a joblib file, or for xgboost its model file (*.json or *.ubj) "
                   "and for lightgbm its text file (*.txt).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the JSON report [default: next to --out, as NAME.report.json].")
def train_command(data, target, kind, task, params, seed, test_size, job_url, cv, out, report_path):
    """Train one model on a CSV and write the artifact plus a JSON report.

    The report holds the metrics, params, lineage (dataset sha256, git commit, versions),
    feature names, a few held-out rows as an input example and, for an xgboost or lightgbm
    classifier, its classes (the labels, which its file holds only as numbers).
    """
    if kind in boosted.KINDS:
        boosted.check_output(kind, out)
    dataset = datasets.load_csv(data)
    spec = TrainingSpec(kind=kind, target=target, task=task, params=params, seed=seed,
                        test_size=test_size, cv=cv)
    trained = train(dataset, spec)
    report_path = report_path or report_path_for(out)
    artifact.save(trained.pipeline, out)
    write_report(build_report(trained, dataset, job_url), report_path)
    log.info("wrote %s and %s", out, report_path)
    click.echo(_format_metrics(trained.metrics, trained.metrics_sd))


@cli.command("register")
@registry_options
@click.option("--report", "report_path", type=EXISTING_FILE,
              help="Report written by train [default: NAME.report.json beside ARTIFACT, if any].")
@click.option("--classes", callback=_parse_list_option, metavar="A,B,…|JSON",
              help="An XGBoost or LightGBM classifier's class names in the model's order (its file holds only "
                   "0 … k-1): comma-separated, or a JSON array for integers [default: the report's].")
@click.option("--feature-names", callback=_parse_list_option, metavar="A,B,…|JSON",
              help="The columns' names, where the file holds none.")
@click.option("--metric", "metrics", multiple=True, callback=_parse_metric_option, metavar="NAME=VALUE",
              help="A metric of the version, repeatable; over the report's of the same name.")
@click.option("--intended-use", help="Model card: what the version is for, and for whom.")
@click.option("--limitations", help="Model card: where it should not be trusted.")
@click.argument("artifact_path", metavar="ARTIFACT", type=EXISTING_FILE)
def register_command(registry, model, description, tags, timeout, report_path, classes, feature_names, metrics,
                     intended_use, limitations, artifact_path):
    """Upload ARTIFACT as a new version of --model and print its version number.

    Metrics, params, lineage, the input example and a boosted classifier's classes come from the
    report; the options add to it. Re-uploading the same bytes prints the existing version.
    """
    client = RegistryClient(registry, _token(), timeout)
    report_path = report_path or _existing(report_path_for(artifact_path))
    report = read_report(report_path) if report_path else {}
    if not report:
        log.warning("warning: no report for %s; uploading without metrics", artifact_path)
    metadata = upload_metadata(report, description, tags)
    given = {"classes": classes, "feature_names": feature_names, "intended_use": intended_use,
             "limitations": limitations, "metrics": {**metadata.get("metrics", {}), **metrics} if metrics else None}
    metadata.update({key: value for key, value in given.items() if value is not None})
    version = client.upload(model, artifact_path, **metadata)
    log.info("%s is %s v%s", artifact_path, model, version.version)
    click.echo(version.version)


@cli.command("retrain")
@training_options([kind for kind in KIND_TASKS if kind not in boosted.KINDS])
@registry_options
@click.option("--metric", type=click.Choice(ALL_METRICS),
              help="Metric that decides [default: r2 for regression, accuracy for classification]. "
                   "rmse, mae and log_loss are better when lower.")
@click.option("--min-improvement", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="How much the candidate must beat the champion by, in the metric's units.")
@click.option("--alias", default="production", show_default=True, help="Alias the champion holds.")
@click.option("--canary", "canary_percent", type=click.IntRange(1, 100), metavar="PERCENT",
              help="A winner takes PERCENT of the alias's traffic as a canary instead of the alias; "
                   "settle it later with `rollout judge`.")
@click.option("--plan", "plan", metavar="FILE|default", callback=_parse_plan_option,
              help="A winner starts as a canary that the registry walks by itself (steps, gates, then "
                   "promote or abort) through the plan in FILE (JSON), or its default plan; docs/rollouts.md.")
@click.option("--sticky-header", help="With --canary or --plan: the request header that keeps each caller on one version.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object on stdout.")
def retrain_command(data, target, kind, task, params, seed, test_size, job_url, registry, model,
                    description, tags, timeout, metric, min_improvement, alias, canary_percent, plan,
                    sticky_header, as_json):
    """Train a candidate and promote it if it beats the champion on the same held-out rows.

    Downloads the alias's current version (the champion), scores both on the candidate's
    held-out rows, uploads the candidate, and promotes it only when it beats the champion by
    --min-improvement (or when the alias is not set yet).

    Exit codes: 0 promoted (or canary started), 3 kept the champion, 1 failed, 2 usage.
    """
    if canary_percent and plan is not None:
        raise click.UsageError("give --canary PERCENT (a fixed share) or --plan (steps the registry walks), not both")
    if sticky_header and not canary_percent and plan is None:
        raise click.UsageError("--sticky-header only applies with --canary or --plan")
    client = RegistryClient(registry, _token(), timeout)
    dataset = datasets.load_csv(data)
    spec = TrainingSpec(kind=kind, target=target, task=task, params=params, seed=seed,
                        test_size=test_size)
    request = RetrainRequest(model=model, alias=alias, metric=metric,
                             min_improvement=min_improvement, description=description, tags=tags,
                             job_url=job_url, canary_percent=canary_percent, canary_plan=plan,
                             sticky_header=sticky_header)
    outcome = retrain(client, dataset, spec, request)
    if as_json:
        click.echo(json.dumps(outcome.to_dict(), sort_keys=True))
    elif outcome.decision == PROMOTED:
        click.echo(
            f"promoted {model} v{outcome.candidate_version} to {alias}: {outcome.comparison}"
        )
    elif outcome.decision == CANARY:
        how = f"a {canary_percent}% canary" if canary_percent else "a canary on autopilot (GET its rollout to follow it)"
        click.echo(f"started {model} v{outcome.candidate_version} as {how} on {alias}: {outcome.comparison}")
    else:
        click.echo(f"kept {model} v{outcome.champion_version} on {alias} (uploaded "
                   f"v{outcome.candidate_version}): {outcome.comparison}")
    if outcome.decision not in (PROMOTED, CANARY):
        click.get_current_context().exit(EXIT_KEPT)


@cli.group("rollout")
def rollout_group() -> None:
    """Watch and settle a canary rollout on an alias (started by `retrain --canary`)."""


@rollout_group.command("status")
@click.option("--registry", required=True, callback=_check_registry_url, metavar="URL", help="Base URL of the registry.")
@click.option("--model", required=True, help="Registered model name.")
@click.option("--alias", default="production", show_default=True)
def rollout_status_command(registry, model, alias):
    """Print the rollout's state and live figures as JSON (exit 1 when none is active)."""
    rollout = RegistryClient(registry).rollout(model, alias)
    if rollout is None:
        raise click.ClickException(f"{model!r} has no rollout on {alias!r}")
    click.echo(json.dumps(rollout.raw, sort_keys=True))


@rollout_group.command("judge")
@click.option("--registry", required=True, callback=_check_registry_url, metavar="URL", help="Base URL of the registry.")
@click.option("--model", required=True, help="Registered model name.")
@click.option("--alias", default="production", show_default=True)
@click.option("--min-requests", type=click.IntRange(min=1), default=100, show_default=True,
              help="Requests the canary must have answered before it is judged.")
@click.option("--max-error-rate-increase", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="How much higher than the primary's the canary's error rate may be (0.01 = 1 point).")
@click.option("--max-p99-ratio", type=click.FloatRange(min=0, min_open=True),
              help="Abort when the canary's p99 latency exceeds this multiple of the primary's.")
@click.option("--min-agreement", type=click.FloatRange(0, 1),
              help="Classifiers: abort when the shadow agreed with the primary on fewer labels.")
@click.option("--max-mean-abs-diff", type=click.FloatRange(min=0),
              help="Regressors: abort when the shadow's mean absolute difference is larger.")
def rollout_judge_command(registry, model, alias, min_requests, max_error_rate_increase,
                          max_p99_ratio, min_agreement, max_mean_abs_diff):
    """Complete the canary when its figures meet the rule, abort it when they fail it.

    Exit codes: 0 completed, 3 aborted, 4 not enough traffic yet (run again later), 1 failed.
    """
    rule = RolloutRule(min_requests, max_error_rate_increase, max_p99_ratio, min_agreement, max_mean_abs_diff)
    verdict = settle(RegistryClient(registry, _token()), model, alias, rule)
    click.echo(f"{verdict.decision}: {verdict.summary}")
    if verdict.decision != COMPLETE:
        click.get_current_context().exit(EXIT_KEPT if verdict.decision == ABORT else EXIT_WAIT)


@cli.command("score")
@click.option("--registry", default=DEFAULT_URL, envvar=URL_VARIABLE, show_default=True, callback=_check_registry_url,
              metavar="URL", help="Base URL of the registry [env REGISTRY_URL].")
@click.option("--model", "reference", required=True, metavar="NAME@ALIAS|NAME/VERSION", callback=_check_reference,
              help="The version to score with, resolved once before any row is read: churn@production or churn/3.")
@click.option("--input", "inputs", required=True, multiple=True, metavar="PATH|GLOB",
              help="Parquet or CSV files of rows (quote globs), repeatable; columns beyond the features are kept.")
@click.option("--output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="A new (or empty) directory for the scored rows, in the inputs' format.")
@click.option("--engine", type=click.Choice(ENGINES), default="local", show_default=True,
              help="local: file by file in this process; dask: the default scheduler, or DASK_SCHEDULER_ADDRESS; "
                   "spark: the active session (spark-submit), else a local one.")
@click.option("--proba", is_flag=True, help="A classifier's probabilities too, a column per class.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_TIMEOUT, show_default=True,
              help="Seconds to wait for each registry request.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object on stdout.")
def score_command(registry, reference, inputs, output, engine, proba, timeout, as_json):
    """Score files of rows with a registered version, exactly as its predict route would, and record the run.

    The artifact is fetched once per machine (REGISTRY_CACHE_DIR) and loaded by the registry's own
    restricted loader; a row the version's signature refuses fails the job naming it.

    Exit codes: 0 scored and recorded, 1 failed (recorded as a failed run when it got that far), 2 usage.
    """
    client = RegistryClient(registry, _token(), timeout)
    outcome = score(client, ScoringJob(reference, tuple(inputs), output, engine, proba))
    if as_json:
        click.echo(json.dumps(outcome.to_dict(), sort_keys=True))
    else:
        planned = f" (planned from {outcome.alias})" if outcome.alias else ""
        click.echo(f"scored {outcome.rows} rows with {outcome.model} v{outcome.version}{planned} into {outcome.output} "
                   f"on {outcome.engine}: batch run {outcome.batch_run_id}")


@cli.command("import-mlflow")
@click.option("--tracking-uri", required=True, envvar="MLFLOW_TRACKING_URI", metavar="URI",
              help="The MLflow tracking server's http(s):// URL (token from MLFLOW_TRACKING_TOKEN, or "
                   "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD), or a local mlruns folder.")
@click.option("--model", "models", multiple=True, metavar="NAME",
              help="An MLflow registered model to import, repeatable [default: every one].")
@click.option("--registry", default=DEFAULT_URL, envvar=URL_VARIABLE, show_default=True, callback=_check_registry_url,
              metavar="URL", help="Base URL of this registry (or REGISTRY_URL).")
@click.option("--token", help="A ci or admin token of this registry [default: REGISTRY_TOKEN]; admin also "
                              "copies each model's description and tags.")
@click.option("--dry-run", is_flag=True, help="Read everything and print what would be imported; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object on stdout.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_TIMEOUT, show_default=True,
              help="Seconds to wait for each registry request.")
@click.option("--max-upload-mb", type=click.IntRange(min=1), default=DEFAULT_MAX_UPLOAD_MB, envvar="MAX_UPLOAD_MB",
              show_default=True, help="The registry's MAX_UPLOAD_MB (or MAX_UPLOAD_MB): a file of MLflow larger than "
                                      "this stops the import before it is read whole.")
def import_mlflow_command(tracking_uri, models, registry, token, dry_run, as_json, timeout, max_upload_mb):
    """Import the scikit-learn versions of MLflow registered models, in version order, with their
    description, tags, run metrics and params, signature, input example and aliases.

    Legacy stages become aliases: Production -> production, Staging -> staging (an MLflow alias of
    that name wins); Archived is kept as the tag mlflow.stage. Versions this registry cannot serve
    are skipped with the reason. Running it again imports nothing new.

    Exit codes: 0 everything importable was imported (skips listed), 1 failed, 2 usage.
    """
    token = token or os.environ.get(TOKEN_VARIABLE, "").strip()
    if not token and not dry_run:
        raise click.UsageError(f"give --token or set {TOKEN_VARIABLE} to a ci or admin token of the registry")
    try:
        source = open_source(tracking_uri, max_upload_mb)
    except (ValueError, TrainerError) as exc:
        raise click.BadParameter(str(exc), param_hint="--tracking-uri") from None
    summary = import_registry(source, RegistryClient(registry, token or None, timeout), list(models), dry_run)
    if as_json:
        click.echo(json.dumps(summary.to_dict(), sort_keys=True))
    else:
        click.echo(format_summary(summary))


@cli.command("export-example")
@click.argument("name", type=click.Choice(list(datasets.EXAMPLES)))
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--rows", type=click.IntRange(min=1), help="Keep only the first N rows.")
def export_example_command(name, path, rows):
    """Write one of scikit-learn's bundled datasets to PATH as CSV, its label in column ``target``.

    diabetes is a regression; breast_cancer, iris and wine are classifications with class names
    as labels. Nothing is downloaded.
    """
    written = datasets.export_example(name, path, rows)
    click.echo(f"wrote {written} rows of {name} ({datasets.EXAMPLES[name]}) to {path}")


def _token() -> str:
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    if not token:
        raise click.UsageError(
            f"set {TOKEN_VARIABLE} to a registry API token (it is never passed as a flag)"
        )
    return token


def _existing(path: Path) -> Path | None:
    return path if path.is_file() else None


def _format_metrics(metrics: dict, sds: dict | None) -> str:
    if sds is None:
        return " ".join(f"{name}={value:.4f}" for name, value in metrics.items())
    return " ".join(f"{name}={value:.4f}±{sds[name]:.4f}" for name, value in metrics.items())


def _configure_logging(quiet: bool) -> None:
    # A fresh handler per run binds to the current sys.stderr (which test runners replace).
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


def _log_warning(message, category, filename, lineno, file=None, line=None) -> None:
    text = str(message).strip()
    log.warning("warning: %s: %s", category.__name__, text.splitlines()[0] if text else "")
