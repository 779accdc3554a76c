"""The CI retrain job: train a candidate, score it and the champion on the same held-out rows,
upload the candidate, and promote it only when it beats the champion by the margin."""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import pandas as pd
from registry_client import RegistryClient, Version

from trainers import artifact, progress
from trainers.datasets import Dataset
from trainers.errors import ChampionUnusable, ConfigurationError, first_line
from trainers.lineage import holdout_dataset
from trainers.metrics import DEFAULT_METRIC, check_metric, evaluate, higher_is_better, improvement
from trainers.report import build_report, upload_metadata
from trainers.training import TrainedModel, TrainingSpec, prepare, train_holdout

log = logging.getLogger(__name__)

PROMOTED, KEPT, CANARY = "promoted", "kept", "canary"
REASON_PREFIX = "retrain: "
# Scores are differences of floats; a margin met up to rounding noise counts as met.
TOLERANCE = 1e-9
REFERENCE_ROWS = 10_000  # training rows sent for drift at most (the registry's limit)


@dataclass(frozen=True)
class RetrainRequest:
    """Where the candidate goes and the rule that decides whether it replaces the champion."""

    model: str
    alias: str = "production"
    metric: str | None = None  # None: r2 for regression, accuracy for classification
    min_improvement: float = 0.0
    description: str | None = None
    tags: dict = field(default_factory=dict)
    job_url: str | None = None
    canary_percent: int | None = None  # a winner takes this share of traffic first, not the alias
    canary_plan: dict | None = None  # ... or starts as a canary the registry walks through this plan
    sticky_header: str | None = None


@dataclass(frozen=True)
class Champion:
    """The version the alias pointed at, scored on the candidate's held-out rows."""

    version: int
    score: float
    metrics: dict = field(default_factory=dict)  # every metric of the task on those rows


@dataclass(frozen=True)
class RetrainOutcome:
    """What a retrain decided, with the scores behind the decision."""

    decision: str
    model: str
    alias: str
    metric: str
    higher_is_better: bool
    min_improvement: float
    candidate_version: int
    candidate_score: float
    champion_version: int | None
    champion_score: float | None
    improvement: float | None
    comparison: str  # e.g. "r2 0.8123 vs champion v3 0.7990 (+0.0133 ≥ 0.005)"
    metrics: dict

    @property
    def reason(self) -> str:
        """The reason recorded with the promotion in the model's history."""
        return REASON_PREFIX + self.comparison

    def to_dict(self) -> dict:
        """The JSON summary printed by ``retrain --json``."""
        return {**asdict(self), "reason": self.reason}


def retrain(
    client: RegistryClient, dataset: Dataset, spec: TrainingSpec, request: RetrainRequest
) -> RetrainOutcome:
    """Train, compare with the champion on the same rows, upload, and promote when better."""
    if spec.cv:
        raise ConfigurationError(
            "retrain compares on held-out rows; cross-validation does not apply"
        )
    data = prepare(dataset, spec)
    metric = request.metric or DEFAULT_METRIC[data.task]
    check_metric(metric, data.task)
    # Asking for the champion first makes an unreachable registry fail before minutes of training.
    champion_version = client.find_version(request.model, request.alias)
    with progress.steps(4, f"retrain {request.model}") as bar:
        bar.set_postfix_str("train")
        trained = train_holdout(data, spec)
        candidate_score = _candidate_score(trained, metric)
        bar.update()
        bar.set_postfix_str("score champion")
        champion = score_champion(client, request.model, champion_version, trained, metric)
        bar.update()
        bar.set_postfix_str("upload")
        candidate_version = upload_candidate(client, request, trained, dataset)
        send_training_rows(client, request.model, candidate_version, data.features.drop(index=trained.test_features.index))
        record_evaluations(client, request.model, holdout_dataset(dataset, trained.test_features, trained.test_y),
                           {candidate_version: trained.metrics, **_champion_metrics(champion)})
        bar.update()
        outcome = decide(
            request, metric, candidate_version, candidate_score, champion, trained.metrics
        )
        if outcome.decision == PROMOTED:
            bar.set_postfix_str("promote")
            client.promote(request.model, candidate_version, request.alias, outcome.reason)
        elif outcome.decision == CANARY:
            bar.set_postfix_str("start canary")
            if request.canary_plan is not None:
                client.start_rollout(request.model, request.alias, canary={"version": candidate_version},
                                     plan=request.canary_plan, sticky_header=request.sticky_header, reason=outcome.reason)
            else:
                canary = {"version": candidate_version, "percent": request.canary_percent}
                client.start_rollout(request.model, request.alias, canary=canary, sticky_header=request.sticky_header,
                                     reason=outcome.reason)
        bar.update()
    return outcome


def upload_candidate(
    client: RegistryClient, request: RetrainRequest, trained: TrainedModel, dataset: Dataset
) -> int:
    """Upload the candidate with metrics, params, lineage and input example; return its version."""
    report = build_report(trained, dataset, request.job_url)
    metadata = upload_metadata(report, request.description, request.tags)
    content = artifact.to_bytes(trained.pipeline)
    uploaded = client.upload(request.model, content, filename=f"{request.model}.joblib", **metadata)
    log.info("uploaded the candidate as v%s", uploaded.version)
    return uploaded.version


def send_training_rows(client: RegistryClient, model: str, version: int, features: pd.DataFrame) -> None:
    """Send (a sample of) the rows the candidate was fitted on: the registry judges its drift against them."""
    complete = features.dropna()  # a row with a missing value is not a row of the signature's types
    sample = complete.sample(n=min(REFERENCE_ROWS, len(complete)), random_state=0) if len(complete) else complete
    if sample.empty:
        log.warning("no complete training row to judge drift by; v%s is judged against its first served traffic", version)
        return
    client.set_reference(model, version, "training", sample)
    log.info("sent %d training rows as v%s's drift reference", len(sample), version)


def record_evaluations(client: RegistryClient, model: str, dataset: dict, scores: dict[int, dict]) -> None:
    """Record each version's scores on the shared held-out rows, so the registry can compare them."""
    for version, metrics in scores.items():
        if metrics:
            client.record_evaluation(model, version, dataset, metrics, note="retrain: scored on the candidate's hold-out rows")
    log.info("recorded evaluations of v%s on %s", ", v".join(map(str, scores)), dataset["sha256"][:12])


def _champion_metrics(champion: Champion | None) -> dict[int, dict]:
    return {champion.version: champion.metrics} if champion is not None else {}


def decide(
    request: RetrainRequest, metric: str, candidate_version: int, candidate_score: float,
    champion: Champion | None, metrics: dict,
) -> RetrainOutcome:
    """Promote when there is no champion or the candidate beats it by at least the margin.

    With ``canary_percent`` (or ``canary_plan``) a winner over a champion starts as a canary on the alias instead.
    """
    gain = None if champion is None else improvement(metric, candidate_score, champion.score)
    if champion is None:
        decision = PROMOTED
        comparison = f"{metric} {candidate_score:.4f}, no champion on {request.alias} yet"
    elif candidate_version == champion.version:
        decision = KEPT
        comparison = f"the candidate is identical to champion v{champion.version}"
    else:
        beats = gain > 0 and gain >= request.min_improvement - TOLERANCE
        as_canary = request.canary_percent or request.canary_plan is not None
        decision = (CANARY if as_canary else PROMOTED) if beats else KEPT
        comparison = (
            f"{metric} {candidate_score:.4f} vs champion v{champion.version} "
            f"{champion.score:.4f} ({gain:+.4f} {'≥' if beats else '<'} "
            f"{request.min_improvement:g})"
        )
    return RetrainOutcome(
        decision=decision, model=request.model, alias=request.alias, metric=metric,
        higher_is_better=higher_is_better(metric), min_improvement=request.min_improvement,
        candidate_version=candidate_version, candidate_score=candidate_score,
        champion_version=champion.version if champion else None,
        champion_score=champion.score if champion else None, improvement=gain,
        comparison=comparison, metrics=metrics,
    )


def score_champion(
    client: RegistryClient, model: str, version: Version | None, trained: TrainedModel, metric: str
) -> Champion | None:
    """Download the champion version and score it on the candidate's held-out rows; None if none."""
    if version is None:
        log.info("no champion yet")
        return None
    number = version.version
    if version.task and version.task != trained.task:
        raise ChampionUnusable(
            f"champion v{number} is a {version.task} model; the candidate is {trained.task}"
        )
    with progress.received(f"download v{number}") as update:
        content = client.download(model, number, progress=update)
    estimator = load_champion(content, number)
    features = _champion_input(estimator, version, trained.test_features)
    try:
        scores = evaluate(estimator, features, trained.test_y, trained.task)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ChampionUnusable(
            f"champion v{number} cannot score the held-out rows: {first_line(exc)}"
        ) from exc
    if metric not in scores:
        raise ChampionUnusable(f"{metric} of champion v{number} is undefined on the held-out rows")
    log.info("champion v%d: %s %.4f on the same rows", number, metric, scores[metric])
    return Champion(version=number, score=scores[metric], metrics=scores)


def load_champion(content: bytes, version: int):
    """Unpickle the champion with the registry's allow-listing loader and return its estimator."""
    try:
        from registry.artifacts.safe_pickle import load_estimator
        from registry.errors import InvalidArtifact
    except ImportError as exc:
        raise ChampionUnusable(
            "loading the champion safely needs the registry package; run from the repository root"
        ) from exc
    try:
        return load_estimator(content).estimator
    except InvalidArtifact as exc:
        raise ChampionUnusable(
            f"champion v{version} could not be loaded safely: {exc.detail}"
        ) from exc


def _candidate_score(trained: TrainedModel, metric: str) -> float:
    if metric not in trained.metrics:
        raise ConfigurationError(
            f"{metric} is undefined on the held-out rows; choose another metric"
        )
    log.info(
        "candidate %s: %s %.4f on %d held-out rows",
        trained.spec.kind, metric, trained.metrics[metric], len(trained.test_y),
    )
    return trained.metrics[metric]


def _champion_input(estimator, version: Version, features: pd.DataFrame):
    """The held-out rows with the champion's columns in its order (by name, as it was fitted)."""
    fitted_names = getattr(estimator, "feature_names_in_", None)
    names = fitted_names if fitted_names is not None else (version.signature.names or None)
    if names is None:
        return features
    missing = [str(name) for name in names if name not in features.columns]
    if missing:
        raise ChampionUnusable(
            f"champion v{version.version} needs columns the data lacks: {', '.join(missing)}"
        )
    selected = features[list(names)]
    # A model fitted without names takes a plain array (and warns when given a DataFrame).
    return selected if fitted_names is not None else selected.to_numpy()

