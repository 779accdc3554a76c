"""The fleet of deploy/compose.yaml brought up with podman-compose: for the fleet test and the rolling
upgrade benchmark.

No container registry can be reached on these machines, so the public images the compose file names
are replaced through its variables by images built here (deploy/local-images/): PostgreSQL and
SeaweedFS on the local Debian base, nginx from Debian forky (the upstream ``resolve`` parameter needs
nginx 1.27.3 or newer; bookworm has 1.22) made with debootstrap. Each is built once per machine.
"""
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench.harness import containers
from bench.harness.server import free_port
from config import BASE_DIR

COMPOSE_FILE = BASE_DIR / "deploy" / "compose.yaml"
LOCAL_IMAGES = BASE_DIR / "deploy" / "local-images"
REGISTRY_IMAGE = containers.IMAGE
POSTGRES_IMAGE = "localhost/fleet-postgres:15"
SEAWEEDFS_IMAGE = "localhost/fleet-seaweedfs:4.48"
NGINX_IMAGE = "localhost/fleet-nginx:forky"
REPLICAS = ("registry-1", "registry-2")
UP_TIMEOUT_SECONDS = 300
STOP_SECONDS = 45  # the compose file's stop_grace_period: DRAIN_SECONDS + GRACEFUL_TIMEOUT and a margin


def ensure_images() -> dict[str, float]:
    """Build the registry's image (podman reuses its cached layers) and every dependency's image that is
    missing; the seconds each took (0: reused)."""
    built = {"base": containers.ensure_base_image()}
    built["registry"] = containers.build_image(REGISTRY_IMAGE)
    for image, folder in ((POSTGRES_IMAGE, "postgres"), (SEAWEEDFS_IMAGE, "seaweedfs")):
        built[folder] = 0.0 if containers.image_exists(image) else _build_local(image, LOCAL_IMAGES / folder)
    built["nginx"] = 0.0 if containers.image_exists(NGINX_IMAGE) else _bootstrap_nginx(NGINX_IMAGE)
    return built


def _build_local(tag: str, folder: Path) -> float:
    started = time.monotonic()
    args = ["build", "--format", "docker", "--tag", tag, "--build-arg", f"BASE={containers.BASE_IMAGE}"]
    if containers.CA_BUNDLE.exists():
        args += ["--volume", f"{containers.CA_BUNDLE}:{containers.CA_BUNDLE}:ro"]
    containers.podman(*args, str(folder), timeout=containers.BUILD_TIMEOUT_SECONDS)
    return time.monotonic() - started


def _bootstrap_nginx(tag: str) -> float:
    """Debian forky with its nginx (bookworm's debootstrap knows forky through its sid script), with nginx
    in the foreground as its command."""
    return containers.debootstrap_image(tag, "forky", "nginx", script="/usr/share/debootstrap/scripts/sid",
                                        changes=('CMD ["nginx", "-g", "daemon off;"]',))


@dataclass
class ComposeFleet:
    """One project of deploy/compose.yaml, published on a loopback port of this machine."""

    project: str = field(default_factory=lambda: f"fleet{secrets.token_hex(3)}")
    port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    admin_token: str = field(default_factory=lambda: "mr_" + secrets.token_urlsafe(24))
    drain_seconds: float = 2
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32))
    postgres_password: str = field(default_factory=lambda: secrets.token_hex(16))
    s3_secret_key: str = field(default_factory=lambda: secrets.token_hex(24))
    max_upload_mb: int = 512
    max_predict_mb: int = 32
    trusted_balancers: str = ""

    @property
    def url(self) -> str:
        """nginx, as clients reach the fleet."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def grpc(self) -> str:
        """nginx's gRPC port, as gRPC clients reach the fleet (host:port)."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def headers(self) -> dict:
        """The admin token's Authorization header."""
        return {"Authorization": f"Bearer {self.admin_token}"}

    def env(self) -> dict:
        """The compose file's variables: the local images, the secrets (it has no default for any), the limits,
        the published port."""
        return {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "REGISTRY_IMAGE": REGISTRY_IMAGE, "POSTGRES_IMAGE": POSTGRES_IMAGE,
            "SEAWEEDFS_IMAGE": SEAWEEDFS_IMAGE, "NGINX_IMAGE": NGINX_IMAGE,
            "ADMIN_TOKEN": self.admin_token, "SECRET_KEY": self.secret_key,
            "POSTGRES_PASSWORD": self.postgres_password, "S3_ACCESS_KEY_ID": "registry",
            "S3_SECRET_ACCESS_KEY": self.s3_secret_key, "MAX_UPLOAD_MB": str(self.max_upload_mb),
            "MAX_PREDICT_MB": str(self.max_predict_mb), "TRUSTED_BALANCERS": self.trusted_balancers,
            "REGISTRY_PUBLISH": f"127.0.0.1:{self.port}", "REGISTRY_GRPC_PUBLISH": f"127.0.0.1:{self.grpc_port}",
            "DRAIN_SECONDS": str(self.drain_seconds),
        }

    def compose(self, *args: str, timeout: float = UP_TIMEOUT_SECONDS) -> subprocess.CompletedProcess:
        """``podman-compose -p PROJECT -f deploy/compose.yaml ARGS``; raises with its output when it fails."""
        done = subprocess.run(["podman-compose", "-p", self.project, "-f", str(COMPOSE_FILE), *args],
                              env=self.env(), capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"podman-compose {' '.join(args)} exited {done.returncode}:\n"
                               f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def container(self, service: str) -> str:
        """The container podman-compose named for ``service``."""
        return f"{self.project}_{service}_1"

    def up(self) -> None:
        """Start the whole fleet and wait until the bucket is made, both replicas are ready and nginx answers
        through them (podman-compose starts services in order but waits for no condition)."""
        self.compose("up", "-d")
        made = containers.podman("wait", self.container("s3-bucket"), timeout=UP_TIMEOUT_SECONDS).stdout.strip()
        if made != "0":
            raise RuntimeError(f"the bucket was not made (exit {made}):\n{self.logs('s3-bucket')[-3000:]}")
        for replica in REPLICAS:
            self.wait_ready(replica)
        self.wait_through_nginx()

    def down(self) -> None:
        """Stop and remove every container and volume of the project: at once (``-t 0``), since nothing of it is
        kept (a graceful stop waited for each container in turn, up to its stop_grace_period)."""
        subprocess.run(["podman-compose", "-p", self.project, "-f", str(COMPOSE_FILE), "down", "-v", "-t", "0"],
                       env=self.env(), capture_output=True, timeout=UP_TIMEOUT_SECONDS, check=False)

    def logs(self, service: str) -> str:
        """What ``service``'s container wrote so far."""
        done = containers.podman("logs", self.container(service), check=False)
        return done.stdout + done.stderr

    def wait_logged(self, service: str, text: str, timeout: float = 60) -> None:
        """Wait until ``service``'s log shows ``text``."""
        deadline = time.monotonic() + timeout
        while text not in self.logs(service):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{service} did not log {text!r} in {timeout:.0f} s:\n{self.logs(service)[-3000:]}")
            time.sleep(0.05)

    def ready(self, service: str) -> bool:
        """Whether ``service``'s HEALTHCHECK (its /readyz) passes now."""
        return containers.podman("healthcheck", "run", self.container(service), check=False).returncode == 0

    def wait_ready(self, service: str, timeout: float = UP_TIMEOUT_SECONDS) -> None:
        """Wait until ``service``'s /readyz answers 200; raise with its log when it does not in time."""
        deadline = time.monotonic() + timeout
        while not self.ready(service):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{service} not ready in {timeout:.0f} s:\n{self.logs(service)[-4000:]}")
            time.sleep(0.5)

    def wait_through_nginx(self, timeout: float = 60) -> None:
        """Wait until nginx answers /readyz with 200 (it found a replica)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not answer in {timeout:.0f} s:\n{self.logs('nginx')[-4000:]}")
            time.sleep(0.5)

    def address(self, service: str) -> str:
        """``service``'s address on the compose network now."""
        done = containers.podman("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                                 self.container(service))
        return done.stdout.strip()

    def replace(self, service: str) -> None:
        """Replace one replica as a rolling upgrade does: stop it gracefully (SIGTERM, its drain and the
        requests in flight), remove it, create it again from the current image, wait until it is ready
        and until nginx sends it requests (found at its new address)."""
        containers.podman("stop", "--time", str(STOP_SECONDS), self.container(service), timeout=STOP_SECONDS + 30)
        containers.podman("rm", self.container(service))
        logged = len(self.logs("nginx"))
        self.compose("up", "-d", "--no-deps", service)
        self.wait_ready(service)
        self.wait_sent_to(service, after=logged)

    def wait_sent_to(self, service: str, after: int = 0, timeout: float = 60) -> None:
        """Wait until nginx's access log, past its first ``after`` characters, shows a request answered by
        ``service`` at its current address at the first try (nginx counts it live again)."""
        target = f"upstream={self.address(service)}:8000 upstream_status=200"
        deadline = time.monotonic() + timeout
        while target not in self.logs("nginx")[after:]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx sent nothing to {service} ({target}) in {timeout:.0f} s")
            requests.get(f"{self.url}/healthz", timeout=5)
            time.sleep(0.2)
