"""Settings: read once from the environment into frozen groups, with defaults that work on a fresh machine.

This is the only module that reads ``os.environ`` for the service's settings; everything else receives a
:class:`Settings` (the app carries it: ``api.settings.settings_of(app)``). Each kind of value has one parser and one
unit: a duration is held in seconds and a size in bytes, whatever unit its variable's name says
(``ADMISSION_WAIT_MS``, ``SESSION_LIFETIME_HOURS``, ``PREDICTION_LOG_DAYS``, ``MAX_METADATA_KB`` keep theirs).
A value that does not parse stops the start with one line naming the variable and the kind of value it takes.
"""
import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
# Where state goes unless told: ./instance and ./artifacts of the checkout (where pyproject.toml is) when
# run from one, else of the directory the service starts in (installed code is no place for a database).
DATA_DIR = BASE_DIR if (BASE_DIR / "pyproject.toml").exists() else Path.cwd()

MB = 2**20
DAY = 86_400.0
# The unit a duration's or a size's variable is given in, by the end of its name; held in seconds and bytes.
SECONDS = {"_MS": ("milliseconds", 0.001), "_SECONDS": ("seconds", 1.0), "_HOURS": ("hours", 3600.0),
           "_DAYS": ("days", DAY)}
BYTES = {"_KB": ("KB", 2**10), "_MB": ("MB", MB), "_MB_PER_SECOND": ("MB", MB)}
# Settings that no longer do anything, and why: a start with one of them set says so (deploy/gunicorn_conf.py).
RETIRED = {"BACK_LANE_NICE": "each worker's back process is retired; a flooded model's requests go to the back of "
                             "the worker's queue instead (docs/operations.md, \"Overload\")"}
# A window of time (MONITOR_WINDOW, a monitoring request's ?window=): a whole number of minutes, hours or days.
WINDOW = re.compile(r"^([1-9][0-9]{0,4})([mhd])$")
WINDOW_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
MAX_WINDOW = timedelta(days=366)
_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _unit(name: str, units: dict) -> tuple[str, float]:
    """The unit ``name``'s suffix says (the longest suffix that matches); seconds for gunicorn's GRACEFUL_TIMEOUT."""
    return next((units[suffix] for suffix in sorted(units, key=len, reverse=True) if name.endswith(suffix)),
                SECONDS["_SECONDS"])


def window_span(text: str) -> timedelta:
    """``30m``, ``24h`` or ``7d`` as a span; a ValueError that says what to send otherwise."""
    found = WINDOW.match(text)
    if found is None:
        raise ValueError("a window is a whole number of minutes, hours or days: 30m, 24h, 7d")
    span = int(found.group(1)) * WINDOW_UNITS[found.group(2)]
    if span > MAX_WINDOW:
        raise ValueError("a window is at most 366 days")
    return span


class Environment:
    """The variables of one start, read by kind: one parser per kind of value."""

    def __init__(self, environ: Mapping[str, str]):
        self.environ = environ

    def raw(self, name: str) -> str:
        """``name``'s value less surrounding spaces; empty when unset."""
        return (self.environ.get(name) or "").strip()

    def _read(self, name: str, default, parse, kind: str):
        """``name`` parsed by ``parse`` (None or ValueError: it does not parse), or ``default`` when unset or
        empty; a value that does not parse stops the start naming the variable and the kind it takes."""
        raw = self.raw(name)
        if not raw:
            return default
        try:
            value = parse(raw)
        except ValueError:
            value = None
        if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0):
            raise SystemExit(f"{name} must be {kind}, not {raw!r}")
        return value

    def count(self, name: str, default: int) -> int:
        """A whole number, 0 or more."""
        return self._read(name, default, int, "a whole number, 0 or more")

    def number(self, name: str, default: float) -> float:
        """A share, a ratio or a threshold: a number, 0 or more."""
        return self._read(name, float(default), float, "a number, 0 or more")

    def duration(self, name: str, default: float | None) -> float | None:
        """A duration in seconds, given as a number in the unit the name ends with; ``default`` is in that unit."""
        word, seconds = _unit(name, SECONDS)
        value = self._read(name, default, float, f"a number of {word}, 0 or more")
        return None if value is None else value * seconds

    def size(self, name: str, default: float) -> int:
        """A size in bytes, given as a number in the unit the name ends with (KB, MB); ``default`` is in that unit."""
        word, size = _unit(name, BYTES)
        return int(self._read(name, float(default), float, f"a number of {word}, 0 or more") * size)

    def flag(self, name: str, default: bool) -> bool:
        """On or off: 1/true/yes/on or 0/false/no/off, any case."""
        return self._read(name, default, lambda raw: _BOOLEANS.get(raw.lower()), "true or false (1/0, yes/no, on/off)")

    def nice(self, name: str, default: str) -> int | None:
        """A nice value from 1 to 19, or None for ``idle`` (SCHED_IDLE)."""
        raw = (self.raw(name) or default).lower()
        if raw == "idle":
            return None
        if raw.isdigit() and 1 <= int(raw) <= 19:
            return int(raw)
        raise SystemExit(f"{name} must be a nice value from 1 to 19, or idle, not {raw!r}")

    def window(self, name: str, default: str) -> tuple[str, timedelta]:
        """A window of time as given (``30m``, ``24h``, ``7d``: at most 366 days), and its span."""
        raw = self.raw(name) or default
        try:
            return raw, window_span(raw)
        except ValueError as exc:
            raise SystemExit(f"{name}={raw!r}: {exc}") from None

    def secret(self, name: str) -> str | None:
        """A secret given as ``NAME``, or as the file ``NAME_FILE`` names (Docker and Kubernetes secrets), less its
        final newline. Read here, from the file, so that it never has to be put in the environment of the
        process or of anything it starts (deploy/entrypoint.py checks the file before the start)."""
        path = self.raw(f"{name}_FILE")
        if path:
            return Path(path).read_text().rstrip("\r\n") or None
        return self.environ.get(name) or None

    def text(self, name: str, default: str | None = None) -> str | None:
        """Text (a name, an address, a URL, a path), or ``default`` when unset or empty."""
        return self.raw(name) or default


def memory_mb(cgroup_limit: Path = Path("/sys/fs/cgroup/memory.max")) -> int:
    """The memory this service may use: its cgroup's limit (in a container), else the machine's."""
    try:
        limit = cgroup_limit.read_text().strip()
        if limit != "max":
            return int(limit) // 2**20
    except (OSError, ValueError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20


def traces_exporters(environ: Mapping[str, str]) -> tuple[str, ...]:
    """Where spans go, by the standard variables: ``OTEL_TRACES_EXPORTER`` (comma-separated; ``none`` is off),
    else ``otlp`` when an OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` or its ``_TRACES_`` form);
    nothing (tracing off) otherwise, or with ``OTEL_SDK_DISABLED=true``. The SDK reads the other ``OTEL_*`` itself."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return ()
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not named:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        return ("otlp",) if endpoint else ()
    return tuple(name for name in (part.strip() for part in named.split(",")) if name and name != "none")


@dataclass(frozen=True)
class Server:
    """gunicorn's processes and listener, and what stands in front of it."""
    workers: int  # WEB_CONCURRENCY: 2 per core unless told
    worker_threads: int  # each worker's threads; the admission bounds are derived from them
    graceful_timeout_seconds: float  # what a stopping worker gives the requests and gRPC calls in flight
    bind: str
    drain_seconds: float  # on SIGTERM, how long it goes on answering while /readyz says 503
    linger_seconds: float  # once stopped, how long it stays with its port closed
    access_log: str | None  # a path, or - for standard output; None: no access log
    retired: tuple[str, ...]  # the RETIRED variables that are set (to anything but off): a start warns of each
    proxy_hops: int  # proxies in front that set X-Forwarded-For/-Proto/-Host
    metrics_dir: str | None  # PROMETHEUS_MULTIPROC_DIR: /metrics then adds up every worker's samples


@dataclass(frozen=True)
class Storage:
    """The database, the artifact store (a directory, or s3://bucket/prefix) and this machine's cache of it."""
    instance_dir: Path
    database_url: str
    database_wait_seconds: float  # the container's entrypoint waits this long for the database
    artifact_root: str
    s3_endpoint: str | None  # the S3 endpoint and credentials, by their standard names (None: the client's lookup)
    s3_access_key_id: str | None
    s3_secret_access_key: str | None
    s3_region: str | None
    cache_dir: Path
    cache_bytes: int
    min_free_bytes: int  # under this much free space in the store, /readyz warns
    scrub_seconds: float  # how often one process of the fleet re-hashes every served artifact; 0: never
    scrub_bytes_per_second: int


@dataclass(frozen=True)
class Limits:
    """What one request or one upload may hold."""
    max_upload_bytes: int
    max_model_bytes: int  # what an artifact may unpack to; never below an upload
    max_predict_bytes: int  # every body but an upload's
    max_features: int
    max_metadata_bytes: int
    max_batch_rows: int


@dataclass(frozen=True)
class Explanations:
    """A tree model's explanation, bounded before and while it runs (registry/serving/explain_bounds.py)."""
    max_rows: int
    max_row_cost: int  # one row's cost in node-points; more: the version is not explainable (422)
    max_cost: int  # one request's; more: 413
    timeout_seconds: float  # when the caller's X-Request-Timeout is not sooner (then 503 with Retry-After)


@dataclass(frozen=True)
class Serving:
    """Loaded models, and the predictions a worker computes at once (docs/operations.md, "Overload")."""
    max_in_flight: int
    max_in_flight_per_model: int
    admission_wait_seconds: float  # how long a request of a model at its bound may wait for a slot; 0: never
    low_priority_from_walks: int  # 0: every walk at the worker's own priority
    low_priority_nice: int | None  # None: SCHED_IDLE
    model_memory_bytes: int
    alias_refresh_seconds: float
    watch_aliases: bool  # the background alias watcher; off in tests that drive refreshes by hand


@dataclass(frozen=True)
class PredictionLog:
    """The prediction log (docs/monitoring.md)."""
    sample: float  # the share of each model's requests recorded (a model may set its own)
    retention_seconds: float
    queue: int  # entries a worker holds for its writer at most
    max_bytes: int  # the most it holds, shared fairly among the models that log
    export: str | None  # where rows go before they are pruned: a directory or s3://bucket/prefix; None: deleted
    export_seconds: float  # how often one process exports; 0: never
    min_free_bytes: int  # under this much free space on a SQLite database's volume nothing is logged


@dataclass(frozen=True)
class Monitoring:
    """The monitoring sweep, drift and attribution drift."""
    every_seconds: float  # 0: never in the background
    window: str  # e.g. 1h
    span: timedelta  # the window's
    drift_psi: float
    drift_p_value: float
    drift_min_reference_rows: int
    attribution_drift: float
    attribution_min_rows: int
    rollout_tick_seconds: float  # how often one process judges the running rollout plans; 0: never


@dataclass(frozen=True)
class Webhooks:
    """Webhook delivery (docs/webhooks.md)."""
    deliver_in_workers: bool  # off for a separate `flask webhooks deliver` process
    allow_private: bool
    threads: int
    timeout_seconds: float
    deadline_seconds: float  # a whole attempt, however slowly the receiver answers; unset: twice the timeout
    poll_seconds: float
    lease_seconds: float
    retry_base_seconds: float
    retry_max_seconds: float
    retry_window_seconds: float
    retention_seconds: float


@dataclass(frozen=True)
class Access:
    """Tokens, the dashboard's sessions and the failed-authentication limit."""
    admin_token: str | None
    require_auth_for_reads: bool
    secret_key: str | None  # unset: a random key kept in INSTANCE_DIR/secret_key
    session_lifetime_seconds: float
    auth_failures_per_minute: int  # 0: no limit
    ratelimit_storage_uri: str | None  # None: in memory this replica's workers share
    ratelimit_key_prefix: str


@dataclass(frozen=True)
class SignOn:
    """Single sign-on for the dashboard (docs/governance.md): off unless ``issuer`` is set."""
    issuer: str | None
    client_id: str | None
    client_secret: str | None
    scopes: str
    group_claim: str
    groups: str  # the provider's groups mapped to a role (and scopes), as JSON; checked at start
    provider_name: str


@dataclass(frozen=True)
class Tracing:
    """OpenTelemetry traces (docs/operations.md, "Traces"): what this service checks before the SDK reads them."""
    exporters: tuple[str, ...]  # none: tracing off
    otlp_protocol: str
    sampler: str
    sampler_arg: str
    propagators: str


@dataclass(frozen=True)
class Grpc:
    """The Open Inference Protocol over gRPC: off unless ``bind`` is set; TLS when both files are named."""
    bind: str | None
    tls_cert_file: str | None
    tls_key_file: str | None


@dataclass(frozen=True)
class Settings:
    """Every setting of one deployment, by group."""
    server: Server
    storage: Storage
    limits: Limits
    explanations: Explanations
    serving: Serving
    prediction_log: PredictionLog
    monitoring: Monitoring
    webhooks: Webhooks
    access: Access
    sign_on: SignOn
    tracing: Tracing
    grpc: Grpc


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings ``environ`` (by default the process's environment) gives; see docs/configuration.md."""
    environ = os.environ if environ is None else environ
    env = Environment(environ)
    workers = env.count("WEB_CONCURRENCY", 2 * (os.cpu_count() or 1))
    threads = env.count("WORKER_THREADS", 4)
    share_mb = memory_mb() // max(1, workers)  # a worker's share of memory
    instance_dir = Path(env.text("INSTANCE_DIR") or DATA_DIR / "instance")
    max_upload = env.size("MAX_UPLOAD_MB", 512)
    webhook_timeout = env.duration("WEBHOOK_TIMEOUT_SECONDS", 5)
    deadline = env.duration("WEBHOOK_DEADLINE_SECONDS", None)
    if deadline == 0:
        raise SystemExit("WEBHOOK_DEADLINE_SECONDS must be a number of seconds above 0 (unset: twice "
                         "WEBHOOK_TIMEOUT_SECONDS), not '0'")
    window, span = env.window("MONITOR_WINDOW", "1h")
    return Settings(
        server=Server(
            workers=workers, worker_threads=threads,
            graceful_timeout_seconds=env.duration("GRACEFUL_TIMEOUT", 30),
            bind=env.text("BIND", "127.0.0.1:8000"),
            drain_seconds=env.duration("DRAIN_SECONDS", 0), linger_seconds=env.duration("LINGER_SECONDS", 0),
            access_log=env.text("ACCESS_LOG"),
            retired=tuple(name for name in RETIRED if env.raw(name).lower() not in ("", "off")),
            proxy_hops=env.count("PROXY_HOPS", 0),
            metrics_dir=env.text("PROMETHEUS_MULTIPROC_DIR"),
        ),
        storage=Storage(
            instance_dir=instance_dir,
            database_url=env.secret("DATABASE_URL") or f"sqlite:///{instance_dir / 'registry.db'}",
            database_wait_seconds=env.duration("DATABASE_WAIT_SECONDS", 0),
            artifact_root=env.text("ARTIFACT_ROOT", str(DATA_DIR / "artifacts")),
            s3_endpoint=env.text("AWS_ENDPOINT_URL"), s3_access_key_id=env.text("AWS_ACCESS_KEY_ID"),
            s3_secret_access_key=env.secret("AWS_SECRET_ACCESS_KEY"),
            s3_region=env.text("AWS_REGION") or env.text("AWS_DEFAULT_REGION"),
            cache_dir=Path(env.text("ARTIFACT_CACHE_DIR") or instance_dir / "artifact-cache"),
            cache_bytes=env.size("ARTIFACT_CACHE_MB", 10_240),
            min_free_bytes=env.size("MIN_FREE_STORE_MB", 1024),
            scrub_seconds=env.duration("ARTIFACT_SCRUB_SECONDS", 600),
            scrub_bytes_per_second=env.size("ARTIFACT_SCRUB_MB_PER_SECOND", 20),
        ),
        limits=Limits(
            max_upload_bytes=max_upload,
            # A quarter of a worker's share of memory, leaving room for the models it serves and the request.
            max_model_bytes=max(env.size("MAX_MODEL_MB", share_mb // 4), max_upload),
            max_predict_bytes=env.size("MAX_PREDICT_MB", 32),
            max_features=env.count("MAX_FEATURES", 10_000),
            max_metadata_bytes=env.size("MAX_METADATA_KB", 1024),
            max_batch_rows=env.count("MAX_BATCH_ROWS", 10_000),
        ),
        explanations=Explanations(
            max_rows=env.count("MAX_EXPLAIN_ROWS", 500),
            max_row_cost=env.count("EXPLAIN_MAX_ROW_COST", 20_000_000),
            max_cost=env.count("EXPLAIN_MAX_COST", 500_000_000),
            timeout_seconds=env.duration("EXPLAIN_TIMEOUT_SECONDS", 10),
        ),
        serving=Serving(
            # One model may take every thread of a worker but one, left to the others (and to its refusals).
            max_in_flight=env.count("MAX_IN_FLIGHT", max(1, threads)),
            max_in_flight_per_model=env.count("MAX_IN_FLIGHT_PER_MODEL", max(1, threads - 1)),
            admission_wait_seconds=env.duration("ADMISSION_WAIT_MS", 10),
            low_priority_from_walks=env.count("LOW_PRIORITY_FROM_WALKS", 200_000),
            low_priority_nice=env.nice("LOW_PRIORITY_NICE", "10"),
            model_memory_bytes=env.size("MODEL_MEMORY_MB", max(64, share_mb // 2)),
            alias_refresh_seconds=env.duration("ALIAS_REFRESH_SECONDS", 1),
            watch_aliases=env.flag("WATCH_ALIASES", True),
        ),
        prediction_log=PredictionLog(
            sample=env.number("PREDICTION_LOG_SAMPLE", 0.1),
            retention_seconds=env.duration("PREDICTION_LOG_DAYS", 30),
            queue=env.count("PREDICTION_LOG_QUEUE", 10_000),
            max_bytes=env.size("PREDICTION_LOG_MAX_MB", 256),
            export=env.text("PREDICTION_LOG_EXPORT"),
            export_seconds=env.duration("PREDICTION_LOG_EXPORT_SECONDS", 10),
            min_free_bytes=env.size("PREDICTION_LOG_MIN_FREE_MB", 256),
        ),
        monitoring=Monitoring(
            every_seconds=env.duration("MONITOR_SECONDS", 60),
            window=window, span=span,
            drift_psi=env.number("DRIFT_PSI", 0.2),
            drift_p_value=env.number("DRIFT_P_VALUE", 0.01),
            drift_min_reference_rows=env.count("DRIFT_MIN_REFERENCE_ROWS", 100),
            attribution_drift=env.number("ATTRIBUTION_DRIFT", 0.2),
            attribution_min_rows=env.count("ATTRIBUTION_MIN_ROWS", 100),
            rollout_tick_seconds=env.duration("ROLLOUT_TICK_SECONDS", 5),
        ),
        webhooks=Webhooks(
            deliver_in_workers=env.flag("WEBHOOK_DELIVER_IN_WORKERS", True),
            allow_private=env.flag("WEBHOOK_ALLOW_PRIVATE", False),
            threads=env.count("WEBHOOK_THREADS", 4),
            timeout_seconds=webhook_timeout,
            deadline_seconds=deadline or 2 * webhook_timeout,
            poll_seconds=env.duration("WEBHOOK_POLL_SECONDS", 1),
            lease_seconds=env.duration("WEBHOOK_LEASE_SECONDS", 60),
            retry_base_seconds=env.duration("WEBHOOK_RETRY_BASE_SECONDS", 10),
            retry_max_seconds=env.duration("WEBHOOK_RETRY_MAX_SECONDS", 3600),
            retry_window_seconds=env.duration("WEBHOOK_RETRY_WINDOW_SECONDS", 86_400),
            retention_seconds=env.duration("WEBHOOK_RETENTION_DAYS", 30),
        ),
        access=Access(
            admin_token=env.secret("ADMIN_TOKEN"),
            require_auth_for_reads=env.flag("REQUIRE_AUTH_FOR_READS", False),
            secret_key=env.secret("SECRET_KEY"),
            session_lifetime_seconds=env.duration("SESSION_LIFETIME_HOURS", 12),
            auth_failures_per_minute=env.count("AUTH_FAILURES_PER_MINUTE", 20),
            ratelimit_storage_uri=env.text("RATELIMIT_STORAGE_URI"),
            ratelimit_key_prefix=env.text("RATELIMIT_KEY_PREFIX", "registry"),
        ),
        sign_on=SignOn(
            issuer=(env.text("OIDC_ISSUER") or "").rstrip("/") or None,
            client_id=env.text("OIDC_CLIENT_ID"),
            client_secret=env.secret("OIDC_CLIENT_SECRET"),
            scopes=env.text("OIDC_SCOPES", "openid email profile groups"),
            group_claim=env.text("OIDC_GROUP_CLAIM", "groups"),
            groups=env.text("OIDC_GROUPS", ""),
            provider_name=env.text("OIDC_PROVIDER_NAME", "single sign-on"),
        ),
        tracing=Tracing(
            exporters=traces_exporters(environ),
            otlp_protocol=env.text("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.text("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf",
            sampler=env.text("OTEL_TRACES_SAMPLER", "").lower() or "parentbased_always_on",
            sampler_arg=env.text("OTEL_TRACES_SAMPLER_ARG", ""),
            propagators=env.text("OTEL_PROPAGATORS", ""),
        ),
        grpc=Grpc(
            bind=env.text("GRPC_BIND"),
            tls_cert_file=env.text("GRPC_TLS_CERT_FILE"),
            tls_key_file=env.text("GRPC_TLS_KEY_FILE"),
        ),
    )


def load_with(variables: Mapping[str, object]) -> Settings:
    """The settings of this process's environment with ``variables`` on top, each by its name (None: unset), read
    as a start reads them: for the tests, benchmarks and tools that build an app in process."""
    return load({**os.environ, **{name: "" if value is None else str(value) for name, value in variables.items()}})


@functools.cache
def settings() -> Settings:
    """This process's settings, read from its environment once (the first call; a bad value stops the start)."""
    return load(os.environ)
