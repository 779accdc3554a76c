"""The floor's two apps in the service's container image (``--in-container`` of ``bench/floor.py``).

Both run from the same image under its gunicorn, each in a container of its own on podman's bridge with its
port 8000 published on a free loopback port, so that wrk's requests to either pay the same container
networking. The registry is started by the image's own entrypoint and command (migrations, then gunicorn
with the package's settings); the floor app by the same image with ``bench/`` and ``gunicorn.conf.py`` of
this checkout mounted read-only in its working directory and gunicorn as the entrypoint, exactly the
command the host measurement runs (``bench/baseline_gunicorn.conf.py``: the registry's server settings
without its hooks). The image is built as the end-to-end tests build it (``bench/harness/containers.py``;
podman reuses its cached layers).
"""
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psutil
from sqlalchemy.engine import make_url

from bench import servers
from bench.harness import containers
from bench.harness.tcp_proxy import CuttableProxy
from config import BASE_DIR

# How a container reaches this machine (podman's name for it).
HOST = "host.containers.internal"
# /data on a tmpfs the image's user owns (U): no volume is left behind (the image declares /data a volume). Its
# size is a cap, not memory taken: with 256 MB, under PREDICTION_LOG_MIN_FREE_MB's 256 free, the prediction log
# stopped for space and the registry was measured in that state rather than a volume's usual one.
DATA = ("--tmpfs", "/data:rw,size=2g,U")
# The bench's files where the image's gunicorn imports them from: its working directory /app.
FLOOR_FILES = ("--volume", f"{BASE_DIR / 'bench'}:/app/bench:ro",
               "--volume", f"{BASE_DIR / 'gunicorn.conf.py'}:/app/gunicorn.conf.py:ro")
FLOOR_COMMAND = ("-c", "bench/baseline_gunicorn.conf.py", "bench.baseline_app:app")


@dataclass
class Contained:
    """An app serving in a container: its container, its gunicorn master as this host sees it (the
    container's first process: the entrypoint becomes gunicorn), and the admin's headers."""

    container: containers.Container
    process: psutil.Process
    headers: dict

    @property
    def url(self) -> str:
        """Where the container's port 8000 is published on this host."""
        return self.container.url

    def stop(self) -> None:
        """Remove the container (its gunicorn stops at once)."""
        self.container.remove()


def build_image() -> None:
    """The service's image (and its local base) as the end-to-end tests build them."""
    containers.require_podman()
    containers.ensure_base_image()
    containers.build_image(containers.IMAGE)


@contextmanager
def reachable(database_url: str) -> Iterator[str]:
    """``database_url`` as a container reaches it, for the block's duration: through a TCP proxy on podman's
    bridge (``HOST``, its gateway; the local PostgreSQL listens on loopback only, and nothing beyond this
    host's containers reaches the bridge). The bridge exists while a container runs: start one first."""
    url = make_url(database_url)
    gateway = containers.podman("network", "inspect", "--format", "{{range .Subnets}}{{.Gateway}}{{end}}",
                                "podman").stdout.strip()
    with CuttableProxy((url.host, url.port or 5432), host=gateway) as proxy:
        yield url.set(host=HOST, port=proxy.port).render_as_string(hide_password=False)


def start_registry(database_url: str | None = None, **settings) -> Contained:
    """The registry by the image's entrypoint and command on ``database_url`` (by default the image's SQLite
    file under /data), once it answers /readyz; ``settings`` add to its environment."""
    env = {"ADMIN_TOKEN": servers.ADMIN_TOKEN, "ALIAS_REFRESH_SECONDS": servers.REFRESH_SECONDS}
    if database_url:
        env["DATABASE_URL"] = database_url
    return _start("registry", {**env, **settings})


def start_floor(**settings) -> Contained:
    """The floor app (``bench/baseline_app.py``) under the image's gunicorn, once it answers /readyz;
    ``settings`` add to its environment."""
    return _start("floor", settings, options=(*FLOOR_FILES, "--entrypoint", "gunicorn"), command=FLOOR_COMMAND)


def _start(role: str, env: dict, options: tuple[str, ...] = (), command: tuple[str, ...] = ()) -> Contained:
    """A container of the image with ``servers.WORKERS`` workers (and this process's GUNICORN_CMD_ARGS, as
    the host's servers inherit it), ready."""
    env = {"WEB_CONCURRENCY": servers.WORKERS, **env}
    if "GUNICORN_CMD_ARGS" in os.environ:
        env["GUNICORN_CMD_ARGS"] = os.environ["GUNICORN_CMD_ARGS"]
    container = containers.run(containers.IMAGE, f"bench-floor-{role}-{uuid.uuid4().hex[:8]}", env=env,
                               options=("--no-healthcheck", *DATA, *options), command=command)
    try:
        container.wait_ready()
        pid = int(containers.podman("inspect", "--format", "{{.State.Pid}}", container.name).stdout)
        return Contained(container, psutil.Process(pid), {"Authorization": f"Bearer {servers.ADMIN_TOKEN}"})
    except BaseException:
        container.remove()
        raise
