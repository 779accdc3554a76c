"""Configuration, read from the environment with defaults that work on a fresh machine.

This is the only module that reads ``os.environ``; everything else receives values as arguments.
"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
# Where state goes unless told: ./instance and ./artifacts of the checkout (where pyproject.toml is) when
# run from one, else of the directory the service starts in (installed code is no place for a database).
DATA_DIR = BASE_DIR if (BASE_DIR / "pyproject.toml").exists() else Path.cwd()


def _read(name: str, default, parse, kind: str):
    """``name`` from the environment parsed by ``parse``, or ``default`` when unset or empty; a value that does
    not parse stops the start with a message naming the variable and the kind of value it takes."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError:
        value = None
    if value is None or (isinstance(value, (int, float)) and value < 0):
        raise SystemExit(f"{name} must be {kind}, not {raw!r}")
    return value


def _int(name: str, default: int) -> int:
    """A count (0 or more)."""
    return _read(name, default, int, "a whole number, 0 or more")


def _float(name: str, default: float) -> float:
    """A quantity in the unit the name says (seconds, MB, days …; 0 or more)."""
    return _read(name, float(default), float, "a number, 0 or more")


_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _bool(name: str, default: bool) -> bool:
    """On or off: 1/true/yes/on or 0/false/no/off, any case (anything else stops the start)."""
    return _read(name, default, lambda raw: _BOOLEANS.get(raw.lower()), "true or false (1/0, yes/no, on/off)")


def nice_value(name: str, default: str) -> int | None:
    """A nice value from 1 to 19, or None for ``idle`` (SCHED_IDLE)."""
    value = os.environ.get(name, default).strip().lower()
    if value == "idle":
        return None
    if value.isdigit() and 1 <= int(value) <= 19:
        return int(value)
    raise ValueError(f"{name} must be a nice value from 1 to 19, or idle (SCHED_IDLE), not {value!r}")


def secret(name: str) -> str | None:
    """A secret given as ``NAME``, or as the file ``NAME_FILE`` names (Docker and Kubernetes secrets), less its
    final newline. Read here, from the file, so that it never has to be put in the environment of the
    process or of anything it starts (deploy/entrypoint.py checks the file before the start)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text().rstrip("\r\n") or None
    return os.environ.get(name) or None


def memory_mb(cgroup_limit: Path = Path("/sys/fs/cgroup/memory.max")) -> int:
    """The memory this service may use: its cgroup's limit (in a container), else the machine's."""
    try:
        limit = cgroup_limit.read_text().strip()
        if limit != "max":
            return int(limit) // 2**20
    except (OSError, ValueError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20


def traces_exporters(environ: dict | None = None) -> tuple[str, ...]:
    """Where spans go, by the standard variables: ``OTEL_TRACES_EXPORTER`` (comma-separated; ``none`` is off),
    else ``otlp`` when an OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` or its ``_TRACES_`` form);
    nothing (tracing off) otherwise, or with ``OTEL_SDK_DISABLED=true``. The SDK reads the other ``OTEL_*`` itself."""
    environ = os.environ if environ is None else environ
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return ()
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not named:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        return ("otlp",) if endpoint else ()
    return tuple(name for name in (part.strip() for part in named.split(",")) if name and name != "none")


# gunicorn's worker processes (gunicorn.conf.py): 2 per core unless WEB_CONCURRENCY says otherwise.
WORKERS = _int("WEB_CONCURRENCY", 2 * (os.cpu_count() or 1))
# The threads of each worker (gunicorn.conf.py); the admission bounds below are derived from them.
WORKER_THREADS = _int("WORKER_THREADS", 4)
# The seconds a stopping worker gives the requests and gRPC calls in flight to finish (gunicorn.conf.py).
GRACEFUL_TIMEOUT = _int("GRACEFUL_TIMEOUT", 30)
# gunicorn's listener and stop (gunicorn.conf.py): where it listens; on SIGTERM, how long it goes on answering while
# /readyz says 503 (DRAIN_SECONDS), and once stopped how long it stays with its port closed (LINGER_SECONDS); where
# its access log goes (a path, or - for standard output; unset: none).
BIND = os.environ.get("BIND", "").strip() or "127.0.0.1:8000"
DRAIN_SECONDS = _float("DRAIN_SECONDS", 0.0)
LINGER_SECONDS = _float("LINGER_SECONDS", 0.0)
ACCESS_LOG = os.environ.get("ACCESS_LOG", "").strip() or None


# Settings that no longer do anything, and why: a start with one of them set says so (deploy/gunicorn_conf.py).
RETIRED = {"BACK_LANE_NICE": "each worker's back process is retired; a flooded model's requests go to the back of "
                             "the worker's queue instead (docs/operations.md, \"Overload\")"}
RETIRED_SET = tuple(name for name in RETIRED if os.environ.get(name, "").strip().lower() not in ("", "off"))


class Config:
    """Settings of one deployment; ``create_app`` copies them into ``app.config``."""

    INSTANCE_DIR = Path(os.environ.get("INSTANCE_DIR", DATA_DIR / "instance"))
    SQLALCHEMY_DATABASE_URI = secret("DATABASE_URL") or f"sqlite:///{INSTANCE_DIR / 'registry.db'}"
    DATABASE_WAIT_SECONDS = _float("DATABASE_WAIT_SECONDS", 0.0)  # the container's entrypoint waits this long for it
    # A directory (one machine, or a shared mount) or s3://bucket/prefix (a fleet: docs/scaling.md).
    ARTIFACT_ROOT = os.environ.get("ARTIFACT_ROOT", str(DATA_DIR / "artifacts"))
    # The S3 endpoint and credentials, by their standard names (unset: the client's own lookup).
    AWS_ENDPOINT_URL = os.environ.get("AWS_ENDPOINT_URL") or None
    AWS_ACCESS_KEY_ID = os.environ.get("AWS_ACCESS_KEY_ID") or None
    AWS_SECRET_ACCESS_KEY = secret("AWS_SECRET_ACCESS_KEY")
    AWS_REGION = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    # With an S3 store: this machine's copies of artifacts, shared by its workers, and their byte budget
    # (what an alias or a rollout serves is kept even over it).
    ARTIFACT_CACHE_DIR = Path(os.environ.get("ARTIFACT_CACHE_DIR", INSTANCE_DIR / "artifact-cache"))
    ARTIFACT_CACHE_MB = _int("ARTIFACT_CACHE_MB", 10_240)
    ADMIN_TOKEN = secret("ADMIN_TOKEN")
    MAX_UPLOAD_MB = _int("MAX_UPLOAD_MB", 512)
    # What an artifact may unpack to (decompressed bytes and arrays): by default a quarter of a worker's
    # share of memory, leaving room for the models it serves and the request it answers. An upload
    # must always fit.
    MAX_MODEL_MB = max(_int("MAX_MODEL_MB", memory_mb() // WORKERS // 4), MAX_UPLOAD_MB)
    MAX_PREDICT_MB = _int("MAX_PREDICT_MB", 32)
    # The most input columns an uploaded model (or any step inside it) may take.
    MAX_FEATURES = _int("MAX_FEATURES", 10_000)
    MAX_METADATA_KB = _int("MAX_METADATA_KB", 1024)
    MAX_BATCH_ROWS = _int("MAX_BATCH_ROWS", 10_000)
    # The most rows one request may ask to explain: an exact explanation costs tens of predictions a row.
    MAX_EXPLAIN_ROWS = _int("MAX_EXPLAIN_ROWS", 500)
    # A tree model's explanation, bounded before and while it runs (registry/serving/explain_bounds.py): one row's
    # cost in node-points (its trees' nodes × quadrature points × outputs; more: the version is not explainable,
    # 422), one request's (more: 413), and the seconds it may run when the caller's X-Request-Timeout is not sooner
    # (then 503 with Retry-After).
    EXPLAIN_MAX_ROW_COST = _int("EXPLAIN_MAX_ROW_COST", 20_000_000)
    EXPLAIN_MAX_COST = _int("EXPLAIN_MAX_COST", 500_000_000)
    EXPLAIN_TIMEOUT_SECONDS = _float("EXPLAIN_TIMEOUT_SECONDS", 10.0)
    # Admission (docs/operations.md, "Overload"): the predictions one worker computes at once, all models
    # together and any one model. Beyond them a prediction is refused at once (503 and 429, Retry-After)
    # instead of queueing. By default one model may take every thread of a worker but one, which is left
    # to the other models (and to answering the flooded model's refusals); lower MAX_IN_FLIGHT to keep a
    # thread free of predictions altogether.
    MAX_IN_FLIGHT = _int("MAX_IN_FLIGHT", max(1, WORKER_THREADS))
    MAX_IN_FLIGHT_PER_MODEL = _int("MAX_IN_FLIGHT_PER_MODEL", max(1, WORKER_THREADS - 1))
    # How long one request of a model at its bound may wait for a slot (a fast model's burst passes in a
    # few ms; a flooded model's other requests are refused at once); 0: never.
    ADMISSION_WAIT_MS = _float("ADMISSION_WAIT_MS", 10.0)
    # A tree walk or explanation of this many walks or more (rows × trees: 2,000 rows of a 100-tree forest)
    # runs on a thread of lower CPU priority (LOW_PRIORITY_NICE, or idle for SCHED_IDLE), so that a flood of
    # large batches gives way to small requests; 0: every walk at the worker's own priority.
    LOW_PRIORITY_FROM_WALKS = _int("LOW_PRIORITY_FROM_WALKS", 200_000)
    LOW_PRIORITY_NICE = nice_value("LOW_PRIORITY_NICE", "10")
    # Under this much free space in the artifact store, /readyz warns (still ready: see docs/faults.md).
    MIN_FREE_STORE_MB = _int("MIN_FREE_STORE_MB", 1024)
    # The artifact scrub: every ARTIFACT_SCRUB_SECONDS (0: never in the background) one process of the fleet
    # re-hashes the store's copy of every served artifact, reading at most ARTIFACT_SCRUB_MB_PER_SECOND.
    ARTIFACT_SCRUB_SECONDS = _float("ARTIFACT_SCRUB_SECONDS", 600.0)
    ARTIFACT_SCRUB_MB_PER_SECOND = _float("ARTIFACT_SCRUB_MB_PER_SECOND", 20.0)
    # What each worker's loaded versions may hold in memory, measured: half a worker's share of memory
    # by default. What aliases and rollouts serve stays loaded even past it; other versions are
    # evicted least recently used first.
    MODEL_MEMORY_MB = _float("MODEL_MEMORY_MB", max(64, memory_mb() // WORKERS // 2))
    ALIAS_REFRESH_SECONDS = _float("ALIAS_REFRESH_SECONDS", 1.0)
    # The prediction log: the share of each model's requests recorded (a model may set its own; errors
    # are always recorded), and for how many days.
    PREDICTION_LOG_SAMPLE = _float("PREDICTION_LOG_SAMPLE", 0.1)
    PREDICTION_LOG_DAYS = _float("PREDICTION_LOG_DAYS", 30.0)
    PREDICTION_LOG_QUEUE = _int("PREDICTION_LOG_QUEUE", 10_000)  # entries a worker holds for its writer at most
    # The most the prediction log holds (its rows' JSON and text), shared fairly among the models that log;
    # each model's oldest rows go first. Sized for the embedded SQLite case: ~85,000 rows of ~3 KB.
    PREDICTION_LOG_MAX_MB = _float("PREDICTION_LOG_MAX_MB", 256.0)
    # Where rows go before they are pruned (past PREDICTION_LOG_DAYS, or past a model's share of the bound), as
    # Parquet: a directory or s3://bucket/prefix (the AWS_* settings above); unset: they are only deleted.
    PREDICTION_LOG_EXPORT = os.environ.get("PREDICTION_LOG_EXPORT", "")
    PREDICTION_LOG_EXPORT_SECONDS = _float("PREDICTION_LOG_EXPORT_SECONDS", 10.0)  # how often one process exports
    # Under this much free space on a SQLite database's volume nothing is logged (PostgreSQL's is not visible).
    PREDICTION_LOG_MIN_FREE_MB = _float("PREDICTION_LOG_MIN_FREE_MB", 256.0)
    # A feature (or the predictions) has drifted when its PSI is above DRIFT_PSI or its test's p-value below DRIFT_P_VALUE.
    DRIFT_PSI = _float("DRIFT_PSI", 0.2)
    DRIFT_P_VALUE = _float("DRIFT_P_VALUE", 0.01)
    # A sent drift reference of fewer rows is too small to judge drift against (the answer says so).
    DRIFT_MIN_REFERENCE_ROWS = _int("DRIFT_MIN_REFERENCE_ROWS", 100)
    # The monitoring sweep: every MONITOR_SECONDS (0: never in the background) one process of the fleet
    # measures each served version over MONITOR_WINDOW, for /metrics and model.drift alerts.
    MONITOR_SECONDS = _float("MONITOR_SECONDS", 60.0)
    MONITOR_WINDOW = os.environ.get("MONITOR_WINDOW", "1h")
    # Attribution drift (a rollout's canary against its primary, from the logged explanations): the sweep sends
    # model.attribution_drift when the total variation distance of their importance shares passes
    # ATTRIBUTION_DRIFT, once each arm has ATTRIBUTION_MIN_ROWS explained rows in MONITOR_WINDOW.
    ATTRIBUTION_DRIFT = _float("ATTRIBUTION_DRIFT", 0.2)
    ATTRIBUTION_MIN_ROWS = _int("ATTRIBUTION_MIN_ROWS", 100)
    # How often one process of the fleet judges the running rollout plans (0: never in the background).
    ROLLOUT_TICK_SECONDS = _float("ROLLOUT_TICK_SECONDS", 5.0)
    REQUIRE_AUTH_FOR_READS = _bool("REQUIRE_AUTH_FOR_READS", False)
    # The Open Inference Protocol over gRPC (docs/open-inference-protocol.md): off unless GRPC_BIND (host:port) is
    # set; then every worker serves it there, with TLS when both files are named.
    GRPC_BIND = os.environ.get("GRPC_BIND", "").strip() or None
    GRPC_TLS_CERT_FILE = os.environ.get("GRPC_TLS_CERT_FILE") or None
    GRPC_TLS_KEY_FILE = os.environ.get("GRPC_TLS_KEY_FILE") or None
    GRACEFUL_TIMEOUT = GRACEFUL_TIMEOUT
    WORKER_THREADS = WORKER_THREADS
    # A dashboard sign-in ends after this long, whatever happens meanwhile.
    SESSION_LIFETIME_HOURS = _float("SESSION_LIFETIME_HOURS", 12.0)
    # Single sign-on for the dashboard (docs/governance.md, "Single sign-on"): off unless OIDC_ISSUER is set.
    # OIDC_GROUPS maps the provider's groups to a role (and scopes), as JSON; it is checked at start.
    OIDC_ISSUER = os.environ.get("OIDC_ISSUER", "").rstrip("/") or None
    OIDC_CLIENT_ID = os.environ.get("OIDC_CLIENT_ID") or None
    OIDC_CLIENT_SECRET = secret("OIDC_CLIENT_SECRET")
    OIDC_SCOPES = os.environ.get("OIDC_SCOPES", "openid email profile groups")
    OIDC_GROUP_CLAIM = os.environ.get("OIDC_GROUP_CLAIM", "groups")
    OIDC_GROUPS = os.environ.get("OIDC_GROUPS", "")
    OIDC_PROVIDER_NAME = os.environ.get("OIDC_PROVIDER_NAME", "single sign-on")
    # Failed authentication (bad bearer tokens, refused sign-ins) per client address and minute; 0: no limit.
    AUTH_FAILURES_PER_MINUTE = _int("AUTH_FAILURES_PER_MINUTE", 20)
    # Where those counts live: unset, in memory this replica's workers share; a store every replica
    # names (redis://host:6379) makes one count for the fleet. The prefix keeps deployments apart in it.
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "")
    RATELIMIT_KEY_PREFIX = os.environ.get("RATELIMIT_KEY_PREFIX", "registry")
    # Proxies in front that set X-Forwarded-For/-Proto/-Host: the client address is read past them.
    PROXY_HOPS = _int("PROXY_HOPS", 0)
    # Signs the dashboard's session cookie and CSRF tokens; the same value on every replica.
    # When unset, a random key is made once and kept in INSTANCE_DIR/secret_key.
    SECRET_KEY = secret("SECRET_KEY")
    # Traces (OpenTelemetry; docs/operations.md, "Traces"): the exporters named, none when off, and the OTLP
    # protocol asked for (this service sends OTLP over HTTP with protobuf).
    TRACES_EXPORTERS = traces_exporters()
    TRACES_OTLP_PROTOCOL = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                            or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf")
    # Set by gunicorn.conf.py; /metrics then adds up every worker's samples.
    PROMETHEUS_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
    # Background alias watcher; off in tests that drive refreshes by hand.
    WATCH_ALIASES = _bool("WATCH_ALIASES", True)
    # Webhooks (docs/webhooks.md). Each worker delivers unless turned off for a separate
    # `flask webhooks deliver` process.
    WEBHOOK_DELIVER_IN_WORKERS = _bool("WEBHOOK_DELIVER_IN_WORKERS", True)
    WEBHOOK_ALLOW_PRIVATE = _bool("WEBHOOK_ALLOW_PRIVATE", False)
    WEBHOOK_THREADS = _int("WEBHOOK_THREADS", 4)
    WEBHOOK_TIMEOUT_SECONDS = _float("WEBHOOK_TIMEOUT_SECONDS", 5.0)
    # A whole attempt, however slowly the receiver trickles its answer; 0: twice WEBHOOK_TIMEOUT_SECONDS.
    WEBHOOK_DEADLINE_SECONDS = _float("WEBHOOK_DEADLINE_SECONDS", 0.0)
    WEBHOOK_POLL_SECONDS = _float("WEBHOOK_POLL_SECONDS", 1.0)
    WEBHOOK_LEASE_SECONDS = _float("WEBHOOK_LEASE_SECONDS", 60.0)
    WEBHOOK_RETRY_BASE_SECONDS = _float("WEBHOOK_RETRY_BASE_SECONDS", 10.0)
    WEBHOOK_RETRY_MAX_SECONDS = _float("WEBHOOK_RETRY_MAX_SECONDS", 3600.0)
    WEBHOOK_RETRY_WINDOW_SECONDS = _float("WEBHOOK_RETRY_WINDOW_SECONDS", 86_400.0)
    WEBHOOK_RETENTION_DAYS = _float("WEBHOOK_RETENTION_DAYS", 30.0)
