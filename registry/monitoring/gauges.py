"""The live quality and drift of served versions as Prometheus gauges, read from what the last
monitoring sweep kept (``version_health``): every replica shows the same figures, and a scrape
never computes them."""
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from registry.db import db, end_read
from registry.monitoring.log_bounds import MB, Usage, usage
from registry.monitoring.tables import VersionHealth
from registry.tables import RegisteredModel

VERSION = ["model", "version"]


class HealthGauges:
    """A collector of the monitoring sweep's last figures per served version."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One family per figure; empty while nothing was swept (or the database does not answer)."""
        quality = GaugeMetricFamily("registry_model_quality",
                                    "Live quality over MONITOR_WINDOW: accuracy (classifiers) or MAE (regressors)",
                                    labels=[*VERSION, "metric"])
        low = GaugeMetricFamily("registry_model_quality_ci_low", "Lower end of the live quality's 95 % interval",
                                labels=[*VERSION, "metric"])
        high = GaugeMetricFamily("registry_model_quality_ci_high", "Upper end of the live quality's 95 % interval",
                                 labels=[*VERSION, "metric"])
        requests = GaugeMetricFamily("registry_model_logged_requests",
                                     "Requests the prediction log kept over MONITOR_WINDOW", labels=VERSION)
        labelled = GaugeMetricFamily("registry_model_labelled_requests",
                                     "Logged requests that feedback labelled, over MONITOR_WINDOW", labels=VERSION)
        delay = GaugeMetricFamily("registry_model_label_delay_seconds", "Median delay of a label after its answer",
                                  labels=VERSION)
        psi = GaugeMetricFamily("registry_model_drift_psi",
                                "Population stability index of a feature (or the predictions) against the reference",
                                labels=[*VERSION, "column"])
        drifted = GaugeMetricFamily("registry_model_drifted",
                                    "1 when a feature (or the predictions) drifted past DRIFT_PSI or DRIFT_P_VALUE",
                                    labels=[*VERSION, "column"])
        swept = GaugeMetricFamily("registry_model_monitoring_timestamp_seconds",
                                  "When the monitoring sweep last measured the version (Unix time)", labels=VERSION)
        for name, number, computed_at, figures in _rows():
            version = [name, str(number)]
            requests.add_metric(version, figures["requests"])
            labelled.add_metric(version, figures["labelled"])
            swept.add_metric(version, computed_at.timestamp())
            if figures["label_delay_p50_s"] is not None:
                delay.add_metric(version, figures["label_delay_p50_s"])
            if figures["quality"] is not None:
                measured = [*version, figures["quality"]["metric"]]
                for family, figure in ((quality, "value"), (low, "ci_low"), (high, "ci_high")):
                    if figures["quality"][figure] is not None:  # stored as null where not finite (one labelled row)
                        family.add_metric(measured, figures["quality"][figure])
            drift = figures["drift"]
            if drift is not None:
                columns = {**drift["features"], "predictions": drift["predictions"]}
                for column, judged in columns.items():
                    psi.add_metric([*version, column], judged["psi"])
                    drifted.add_metric([*version, column], float(judged["drifted"]))
        yield from (quality, low, high, requests, labelled, delay, psi, drifted, swept)


def _rows() -> list[tuple]:
    """(model, version, computed at, figures) of every swept version."""
    try:
        found = db.session.execute(
            select(RegisteredModel.name, VersionHealth.version, VersionHealth.computed_at, VersionHealth.figures)
            .join(RegisteredModel, RegisteredModel.id == VersionHealth.model_id)
            .order_by(RegisteredModel.name, VersionHealth.version)
        ).all()
    except OperationalError:  # the scrape still answers with every other family
        db.session.rollback()
        return []
    end_read()
    return [tuple(row) for row in found]


class LogGauges:
    """A collector of what the prediction log holds per model, read at the scrape (one aggregate over a
    table PREDICTION_LOG_MAX_MB bounds), and the bound itself."""

    def __init__(self, bound_mb: float):
        self._bound_mb = bound_mb

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Bytes and rows per model, and the bound; per model only while the database answers."""
        size = GaugeMetricFamily("registry_prediction_log_bytes",
                                 "Bytes of the prediction log's rows (their JSON and text), per model", labels=["model"])
        rows = GaugeMetricFamily("registry_prediction_log_rows", "Rows in the prediction log, per model",
                                 labels=["model"])
        bound = GaugeMetricFamily("registry_prediction_log_max_bytes", "PREDICTION_LOG_MAX_MB, in bytes")
        bound.add_metric([], self._bound_mb * MB)
        try:
            held = usage()
        except OperationalError:  # the scrape still answers with every other family
            db.session.rollback()
            held = Usage({})
        for name, (count, total) in sorted(held.models.items()):
            size.add_metric([name], total)
            rows.add_metric([name], count)
        yield from (size, rows, bound)
