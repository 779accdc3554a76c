"""Build the service's image and run it with podman: for the image test, and by hand.

No container registry can be reached on these machines, so the image's base (Debian bookworm with
Python 3.11) is made here with debootstrap from the Debian mirror apt already uses, once per machine:
it is reused while it is there. ``make containers`` installs podman, runc and debootstrap.
"""
import hashlib
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from bench.harness.server import STARTUP_TIMEOUT_SECONDS, free_port
from config import BASE_DIR

BASE_IMAGE = "localhost/debian-python:bookworm"
# The service's image as this checkout builds it: two checkouts on one machine (a CI clone beside a
# working copy) never run each other's build.
IMAGE = f"localhost/model-registry:test-{hashlib.sha256(str(BASE_DIR).encode()).hexdigest()[:10]}"
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
# pip in a build reaches the package index only with this machine's CA bundle (it may intercept TLS).
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
APT_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
BUILD_TIMEOUT_SECONDS = 1800
# The (tag, base) pairs this process built (build_image).
_BUILT: set[tuple[str, str]] = set()


class PodmanMissing(RuntimeError):
    """podman (or debootstrap, for the base image) is not installed."""


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``podman ARGS``; its output as text. Raises with podman's stderr when ``check`` and it fails."""
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} exited {done.returncode}:\n{done.stderr[-4000:]}")
    return done


def require_podman() -> None:
    """Stop with one line saying what to install when podman is not there."""
    if shutil.which("podman") is None:
        raise PodmanMissing("podman is missing: `make containers` installs it (as root on Debian)")


def image_exists(name: str) -> bool:
    """Whether podman has the image ``name`` locally."""
    return podman("image", "exists", name, check=False).returncode == 0


def ensure_base_image(name: str = BASE_IMAGE) -> float:
    """Make the local base image with debootstrap unless it is there already; the seconds it took (0: reused)."""
    if image_exists(name):
        return 0.0
    return debootstrap_image(name, "bookworm", BASE_PACKAGES)


def debootstrap_image(name: str, suite: str, packages: str, *, script: str | None = None,
                      changes: tuple[str, ...] = ()) -> float:
    """Import a minimal Debian ``suite`` with ``packages``, made with debootstrap from the mirror apt uses, as
    the image ``name`` (``script``: debootstrap's script for a suite it does not know by name; ``changes``:
    Dockerfile instructions such as CMD for ``podman import --change``); the seconds it took."""
    if shutil.which("debootstrap") is None:
        raise PodmanMissing("debootstrap is missing: `make containers` installs it (as root on Debian)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir="/var/tmp") as rootfs:
        subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={packages}", suite, rootfs, debian_mirror(),
             *([script] if script else [])],
            check=True, capture_output=True, timeout=BUILD_TIMEOUT_SECONDS,
        )
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):  # nothing an image needs
            shutil.rmtree(Path(rootfs) / leftover, ignore_errors=True)
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["podman", "import", *(f"--change={change}" for change in changes), "-", name],
                       stdin=tar.stdout, check=True, capture_output=True, timeout=BUILD_TIMEOUT_SECONDS)
        tar.stdout.close()
        if tar.wait() != 0:
            raise RuntimeError(f"tar of the debootstrap root {rootfs} failed")
    return time.monotonic() - started


def debian_mirror() -> str:
    """The Debian mirror apt on this machine uses (its deb822 sources), else Debian's own."""
    if APT_SOURCES.exists():
        for line in APT_SOURCES.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    return DEFAULT_MIRROR


def build_image(tag: str, base: str = BASE_IMAGE) -> float:
    """Build the repository's Dockerfile as ``tag`` on ``base``; the seconds it took (podman reuses its
    cached layers: the requirements' layer is rebuilt only when requirements.txt changes). Once a process
    (0: reused): a process builds from one checkout, and a build podman answered wholly from its cache
    still took 13 s on an idle machine, 30 to 50 on a busy one, for each test module that asked again."""
    if (tag, base) in _BUILT and image_exists(tag):
        return 0.0
    started = time.monotonic()
    args = ["build", "--format", "docker", "--tag", tag, "--build-arg", f"BASE={base}",  # docker format: HEALTHCHECK
            "--build-arg", f"REVISION={_git('rev-parse', 'HEAD')}",
            "--build-arg", f"VERSION={_git('describe', '--always', '--dirty')}"]
    if CA_BUNDLE.exists():
        args += ["--volume", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"]
    podman(*args, str(BASE_DIR), timeout=BUILD_TIMEOUT_SECONDS)
    _BUILT.add((tag, base))
    return time.monotonic() - started


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=BASE_DIR, capture_output=True, text=True, check=True).stdout.strip()


@dataclass
class Container:
    """A container of the service started detached, published on a loopback port of this machine."""

    name: str
    url: str

    def logs(self) -> str:
        """What the container wrote so far, stdout and stderr."""
        done = podman("logs", self.name, check=False)
        return done.stdout + done.stderr

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
        """Wait until /readyz answers 200; raise with the container's log if it exits or stalls."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass
            if not self.running():
                raise RuntimeError(f"container {self.name} exited:\n{self.logs()[-4000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"container {self.name} not ready in {timeout:.0f} s:\n{self.logs()[-4000:]}")

    def running(self) -> bool:
        """Whether the container's process still runs."""
        done = podman("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return done.stdout.strip() == "true"

    def signal(self, name: str = "TERM") -> None:
        """Send a signal to the container's main process (gunicorn's master)."""
        podman("kill", "--signal", name, self.name)

    def wait(self, timeout: float = 120) -> int:
        """Wait for the container to exit; its exit status."""
        return int(podman("wait", self.name, timeout=timeout).stdout.strip())

    def stop(self, timeout: int = 40) -> int:
        """Stop it as ``docker stop`` does (SIGTERM, SIGKILL after ``timeout`` s); its exit status."""
        podman("stop", "--time", str(timeout), self.name, timeout=timeout + 30)
        return self.wait()

    def remove(self) -> None:
        """Remove the container (stopping it at once if it still runs)."""
        podman("rm", "--force", "--time", "0", self.name, check=False)


def run(image: str, name: str, *, volume: str | None = None, env: dict | None = None,
        options: tuple[str, ...] = (), command: tuple[str, ...] = (), port: int = 8000) -> Container:
    """Start ``image`` detached as ``name`` with ``port`` (8000, the README's quick start) published on a free
    loopback port, ``volume`` mounted on /data, ``env`` set, podman ``options`` added and ``command`` after the
    image's name."""
    published = free_port()
    args = ["run", "--detach", "--name", name, "--publish", f"127.0.0.1:{published}:{port}", *options]
    if volume is not None:
        args += ["--volume", f"{volume}:/data"]
    for key, value in (env or {}).items():
        args += ["--env", f"{key}={value}"]
    podman(*args, image, *command)
    return Container(name, f"http://127.0.0.1:{published}")


def run_to_exit(image: str, *command: str, env: dict | None = None, options: tuple[str, ...] = (),
                timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``image`` (with ``command`` after its name) in the foreground until it exits, then remove it.
    Without its HEALTHCHECK: podman's timers for it need systemd, and say so on stderr where there is none."""
    args = ["run", "--rm", "--no-healthcheck", *options]
    for key, value in (env or {}).items():
        args += ["--env", f"{key}={value}"]
    return podman(*args, image, *command, timeout=timeout, check=False)


def remove_volume(name: str) -> None:
    """Remove a named volume, if it is there."""
    podman("volume", "rm", "--force", name, check=False)
