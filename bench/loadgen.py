"""Drive a URL with wrk and read back the exact figures that ``lua/predict.lua`` prints from ``done()``."""
import json
import shutil
import signal
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve().with_name("lua") / "predict.lua"
MARKER = "BENCH_JSON "
REQUEST_TIMEOUT = "10s"
INSTALL_HINT = (
    "wrk (the HTTP load generator) is not installed or not on PATH.\n"
    "Install it, then run again:\n"
    "  Debian/Ubuntu:  sudo apt-get install -y wrk\n"
    "  macOS:          brew install wrk"
)


@dataclass(frozen=True)
class WrkResult:
    """One wrk window: throughput, latency percentiles (ms) and what went wrong."""

    requests: int
    seconds: float
    rps: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    socket_errors: int
    statuses: dict
    versions: dict

    @property
    def non_2xx(self) -> int:
        """Responses whose status is not 2xx."""
        return sum(n for status, n in self.statuses.items() if not status.startswith("2"))

    @property
    def failed(self) -> int:
        """Requests that did not get a 2xx: error statuses plus socket errors and timeouts."""
        return self.non_2xx + self.socket_errors

    def to_dict(self) -> dict:
        """JSON-ready figures, with the derived counts."""
        return {**asdict(self), "non_2xx": self.non_2xx, "failed": self.failed}


def require_wrk() -> str:
    """The wrk executable, or exit with an install hint."""
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(INSTALL_HINT)
    return path


def wrk_version() -> str:
    """wrk's version line (``wrk -v`` exits 1 by design), or "wrk not installed": a fact of every bench's
    output, and benches that drive no load (batch, v2, ...) run without it; those that do call require_wrk."""
    if shutil.which("wrk") is None:
        return "wrk not installed"
    done = subprocess.run([require_wrk(), "-v"], capture_output=True, text=True)
    return (done.stdout or done.stderr).splitlines()[0].strip()


def run(url: str, body: Path, connections: int, seconds: int, headers: dict[str, str] | None = None) -> WrkResult:
    """Closed-loop load: ``connections`` clients POST ``body`` to ``url`` for ``seconds`` (with ``headers``)."""
    done = subprocess.run(_command(url, body, connections, seconds, headers), capture_output=True, text=True)
    return _parse(done.stdout, done.stderr, done.returncode)


class Background:
    """wrk running until :meth:`stop` (SIGINT makes wrk stop and report), for windows of unknown length."""

    MAX_SECONDS = 3600

    def __init__(self, url: str, body: Path, connections: int):
        self._process = subprocess.Popen(
            _command(url, body, connections, self.MAX_SECONDS), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def stop(self) -> WrkResult:
        """Stop the load and return its figures."""
        self._process.send_signal(signal.SIGINT)
        stdout, stderr = self._process.communicate(timeout=60)
        return _parse(stdout, stderr, self._process.returncode)


def _command(url: str, body: Path, connections: int, seconds: int, headers: dict[str, str] | None = None) -> list[str]:
    # One client thread: the client shares the machine's cores with the server, so keep it lean.
    return [
        require_wrk(), "-t1", f"-c{connections}", f"-d{seconds}s", f"--timeout={REQUEST_TIMEOUT}",
        "-s", str(SCRIPT), url, "--", str(body), *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]


def _parse(stdout: str, stderr: str, returncode: int) -> WrkResult:
    line = next((line for line in stdout.splitlines() if line.startswith(MARKER)), None)
    if line is None:
        raise RuntimeError(f"wrk gave no figures (exit {returncode}):\n{stdout}\n{stderr}")
    data = json.loads(line[len(MARKER):])
    latency, errors = data["latency_us"], data["errors"]
    seconds = data["duration_us"] / 1e6
    # errors.status (HTTP >= 400) is already in statuses; the rest are socket-level failures.
    socket_errors = errors["connect"] + errors["read"] + errors["write"] + errors["timeout"]
    return WrkResult(
        requests=data["requests"],
        seconds=round(seconds, 3),
        rps=round(data["requests"] / seconds, 1),
        mean_ms=round(latency["mean"] / 1000, 3),
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        p999_ms=latency["p999"] / 1000,
        max_ms=latency["max"] / 1000,
        socket_errors=socket_errors,
        statuses=data["statuses"],
        versions=data["versions"],
    )
