"""deploy/kubernetes/ (issue 70): every overlay renders with kustomize and validates, strictly, against the
Kubernetes schemas; and what the manifests say agrees with the server they run: the probes' routes, the
secrets' files, the settings, the drain's length, the memory the settings budget, the port the scrape and
the network policy name."""
import kubernetes_validate
import pytest

from bench.harness import kube_play
from deploy.entrypoint import SECRETS
from tests.unit.test_configuration_doc import in_the_table

KUBERNETES_VERSION = "1.37.0"
# Kinds of other projects' resource definitions, which the Kubernetes schemas do not hold.
CUSTOM_KINDS = {"ServiceMonitor"}
WORKER_MB = 250  # a worker's own memory beside its models, and the master's (base/settings.yaml says so)


@pytest.fixture(scope="module", params=kube_play.OVERLAYS)
def rendered(request) -> list[dict]:
    return kube_play.render(request.param)


def one(documents, kind, name=None):
    (found,) = [d for d in documents if d["kind"] == kind and (name is None or d["metadata"]["name"].startswith(name))]
    return found


def registry_container(documents) -> dict:
    (container,) = kube_play.pod_spec(one(documents, "Deployment", "model-registry"))["containers"]
    return container


def settings(documents) -> dict[str, str]:
    return {**one(documents, "ConfigMap", "model-registry-settings")["data"], **one(documents, "ConfigMap", "model-registry-store")["data"]}


def test_every_rendered_resource_validates_against_the_kubernetes_schemas(rendered):
    checked = [d for d in rendered if d["kind"] not in CUSTOM_KINDS]

    for document in checked:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)  # raises, naming the field
    assert {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy"} <= {d["kind"] for d in checked}


def test_a_field_the_schema_does_not_know_is_refused():
    deployment = one(kube_play.render("production"), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}  # a misspelt field

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_probes_ask_the_routes_the_server_answers(rendered, app):
    container = registry_container(rendered)
    routes = {rule.rule for rule in app.url_map.iter_rules()}

    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz" in routes
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz" in routes
    assert container["startupProbe"]["httpGet"]["path"] in routes


def test_every_secret_reaches_the_server_as_a_file_it_reads(rendered):
    container = registry_container(rendered)
    files = {variable["name"].removesuffix("_FILE"): variable["value"] for variable in container["env"]}
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "secrets"]

    assert set(files) <= set(SECRETS)  # the entrypoint checks each, config.py reads each
    assert all(path.startswith(mount["mountPath"] + "/") for path in files.values())
    assert not any(variable.get("value", "").startswith("postgresql") for variable in container["env"])


def test_the_development_secret_holds_every_file_the_server_is_told_to_read():
    documents = kube_play.render("development")
    keys = set(one(documents, "Secret", "model-registry-secrets")["data"])
    named = {variable["value"].rsplit("/", 1)[1] for variable in registry_container(documents)["env"]}

    assert named == keys


def test_every_setting_the_manifests_give_is_a_documented_one(rendered):
    assert set(settings(rendered)) - in_the_table() == set()


def test_the_kubelet_waits_out_the_drain_and_the_requests_in_flight(rendered):
    given = settings(rendered)
    spec = kube_play.pod_spec(one(rendered, "Deployment", "model-registry"))

    assert spec["terminationGracePeriodSeconds"] > float(given["DRAIN_SECONDS"]) + float(given["GRACEFUL_TIMEOUT"])


def test_the_memory_request_holds_what_the_settings_let_every_worker_load(rendered):
    given = settings(rendered)
    request = registry_container(rendered)["resources"]["requests"]["memory"]
    budget = int(given["WEB_CONCURRENCY"]) * (float(given["MODEL_MEMORY_MB"]) + WORKER_MB) + WORKER_MB

    assert request.endswith("Mi") and int(request.removesuffix("Mi")) >= budget


def test_a_rolling_update_never_takes_a_ready_replica_away_first_and_a_drain_leaves_one(rendered):
    deployment = one(rendered, "Deployment", "model-registry")
    budget = one(rendered, "PodDisruptionBudget")

    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert deployment["spec"]["replicas"] >= 2 and budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_only_the_ports_the_service_names_are_open_and_the_scrape_asks_the_http_one():
    documents = kube_play.render("production")
    ports = {port["name"]: port for port in one(documents, "Service")["spec"]["ports"]}
    (opened,) = one(documents, "NetworkPolicy")["spec"]["ingress"]
    (endpoint,) = one(documents, "ServiceMonitor")["spec"]["endpoints"]

    assert sorted(p["port"] for p in opened["ports"]) == sorted(ports) == ["grpc", "http"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")


def test_the_grpc_port_is_the_one_the_settings_bind(rendered):
    given = settings(rendered)
    container_ports = {port["name"]: port["containerPort"] for port in registry_container(rendered)["ports"]}

    assert given["GRPC_BIND"].endswith(f":{container_ports['grpc']}") and given["BIND"].endswith(f":{container_ports['http']}")
