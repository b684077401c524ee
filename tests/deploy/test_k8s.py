"""deploy/k8s/: each overlay rendered by the real `kubectl kustomize`, validated, and held to policy.

What is validated, and how far:
- Built-in kinds (Deployment, Service, HPA, PDB, ConfigMap, ServiceAccount): kubernetes-validate
  --strict against the OpenAPI schemas of Kubernetes 1.29 to 1.33 (unknown fields are errors).
- ServiceMonitor and PrometheusRule (the Prometheus Operator's CRDs): kubernetes-validate has no
  schema for them and only warns, so the test requires exactly those two warnings. Their
  structure is checked here against the fields of monitoring.coreos.com/v1 that we use (written
  out below, additionalProperties false); the rules also pass `promtool check rules`. Not
  validated: the rest of the CRDs' schemas, and the operator's own admission checks.
- Not checked anywhere, since no cluster runs here: scheduling, the API server's defaulting and
  admission (Pod Security "restricted" is checked field by field below).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from deploy import k8s_rules
from tests.conftest import REPO
from web_service.serve import problems
from web_service_mlflow.settings import ModelSettings, SourceKind

pytestmark = pytest.mark.slow  # kubectl and kubernetes-validate, in subprocesses

K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("staging", "production")
KUBERNETES_VERSIONS = ("1.29", "1.30", "1.31", "1.32", "1.33")
CONTAINER = "ride-duration"
BUILT_IN_KINDS = {"ServiceAccount", "ConfigMap", "Service", "Deployment", "PodDisruptionBudget",
                  "HorizontalPodAutoscaler"}  # fmt: skip
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
# Where the service reads its environment: its settings, the launcher and Gunicorn's config.
SERVICE_SOURCES = [REPO / "gunicorn.conf.py", *(REPO / "web_service").glob("*.py"),
                   *(REPO / "web_service_mlflow").glob("*.py")]  # fmt: skip
MARGIN_S = 5  # between Gunicorn's graceful timeout running out and the kubelet's SIGKILL


def tool(name: str, hint: str) -> str:
    """The command's path, next to this interpreter or on PATH; the test fails (no skip) without it."""
    path = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    assert path, f"{name} is not installed: {hint}"
    return path


def kustomize(target: Path) -> subprocess.CompletedProcess:
    kubectl = tool("kubectl", "`make system-tools` installs it (Debian package kubernetes-client)")
    return subprocess.run([kubectl, "kustomize", str(target)], capture_output=True, text=True, timeout=60, check=False)


def render(overlay: str) -> list[dict]:
    """The overlay's objects as `kubectl kustomize` writes them."""
    done = kustomize(K8S / "overlays" / overlay)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {overlay: render(overlay) for overlay in OVERLAYS}


def one(docs: list[dict], kind: str) -> dict:
    [found] = [doc for doc in docs if doc["kind"] == kind]
    return found


def pod_spec(docs: list[dict]) -> dict:
    return one(docs, "Deployment")["spec"]["template"]["spec"]


def container(docs: list[dict]) -> dict:
    [found] = pod_spec(docs)["containers"]
    return found


def cpu_cores(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def memory_bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    return int(quantity[:-2]) * units[quantity[-2:]] if quantity[-2:] in units else int(quantity)


def container_env(docs: list[dict]) -> dict[str, str]:
    """The environment the kubelet would give the container (the optional Secret absent).

    A resourceFieldRef takes the limit divided by the divisor, rounded up; a configMapKeyRef the
    ConfigMap's key, or nothing when the key is missing and optional.
    """
    data = one(docs, "ConfigMap").get("data", {})
    env = {}
    for var in container(docs)["env"]:
        source = var.get("valueFrom", {})
        if "value" in var:
            env[var["name"]] = var["value"]
        elif "resourceFieldRef" in source:
            ref = source["resourceFieldRef"]
            section, resource = ref["resource"].split(".")
            assert resource == "cpu", var  # the only resource this test resolves
            cores = cpu_cores(container(docs)["resources"][section][resource]) / cpu_cores(ref.get("divisor", "1"))
            env[var["name"]] = str(math.ceil(cores))
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            assert ref["key"] in data or ref.get("optional"), var
            if ref["key"] in data:
                env[var["name"]] = data[ref["key"]]
        else:
            pytest.fail(f"an env source this test cannot resolve: {var}")
    return env


def emptydir_mounts(docs: list[dict]) -> dict[str, str]:
    """mountPath -> volume name, for every mount of an emptyDir volume."""
    empty = {volume["name"] for volume in pod_spec(docs)["volumes"] if "emptyDir" in volume}
    return {mount["mountPath"]: mount["name"] for mount in container(docs)["volumeMounts"] if mount["name"] in empty}


def under(path: str, folders: list[str]) -> bool:
    return any(path == folder or path.startswith(folder.rstrip("/") + "/") for folder in folders)


# --- rendering and kubernetes-validate ---------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubectl_kustomize_renders_each_overlay_into_the_service_objects(overlay):
    docs = render(overlay)

    assert sorted(doc["kind"] for doc in docs) == sorted(BUILT_IN_KINDS | OPERATOR_KINDS)


@pytest.fixture(scope="module")
def manifest_files(tmp_path_factory) -> dict[str, Path]:
    """Each overlay as `kubectl kustomize` wrote it, in a file."""
    folder = tmp_path_factory.mktemp("k8s")
    files = {overlay: folder / f"{overlay}.yaml" for overlay in OVERLAYS}
    for overlay, path in files.items():
        path.write_text(kustomize(K8S / "overlays" / overlay).stdout)
    return files


# kubernetes-validate's lines: "INFO <file> passed for resource <kind>/<name> against version <version>".
PASSED = re.compile(r"resource (\S+) against version (\S+)$")


def kubernetes_validate(path: Path, version: str) -> subprocess.CompletedProcess:
    command = tool("kubernetes-validate", "it is a dev package: pipenv install --dev")
    return subprocess.run([command, "--strict", "--kubernetes-version", version, str(path)],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubernetes_validate_strict_passes_every_built_in_object(manifest_files, rendered, overlay, version):
    done = kubernetes_validate(manifest_files[overlay], version)
    lines = done.stdout.splitlines()
    passed = {PASSED.search(line).groups() for line in lines if " passed " in line}
    warned = {re.search(r"kind (\S+) with", line)[1] for line in lines if line.startswith("WARN")}

    assert done.returncode == 0, done.stdout + done.stderr
    # Every built-in object checked against this very version (an unknown apiVersion only warns).
    expected = {(f"{doc['kind'].lower()}/{doc['metadata']['name']}", version) for doc in rendered[overlay]
                if doc["kind"] in BUILT_IN_KINDS}  # fmt: skip
    assert passed == expected
    assert warned == OPERATOR_KINDS  # no schema: checked by test_the_operator_objects_have_the_v1_structure
    assert [line for line in lines if not line.startswith(("INFO", "WARN"))] == []


def test_kubernetes_validate_strict_rejects_a_misspelt_field(rendered, tmp_path):
    docs = [yaml.safe_load(yaml.safe_dump(doc)) for doc in rendered["production"]]
    probe = container(docs).pop("readinessProbe")
    container(docs)["readinesProbe"] = probe
    path = tmp_path / "misspelt.yaml"
    path.write_text(yaml.safe_dump_all(docs))

    done = kubernetes_validate(path, KUBERNETES_VERSIONS[0])

    assert done.returncode == 1
    assert "readinesProbe" in done.stdout and "ERROR" in done.stdout


# --- the pod ---------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_ask_health_for_liveness_and_startup_and_ready_for_readiness_on_port_9696(rendered, overlay):
    main = container(rendered[overlay])
    ports = {port["name"]: port["containerPort"] for port in main["ports"]}

    paths = {probe: main[probe]["httpGet"]["path"] for probe in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert paths == {"startupProbe": "/health", "livenessProbe": "/health", "readinessProbe": "/ready"}
    assert {ports[main[probe]["httpGet"]["port"]] for probe in paths} == {9696}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_startup_probe_gives_a_model_download_five_minutes(rendered, overlay):
    startup = container(rendered[overlay])["startupProbe"]

    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_cpu_and_memory_have_requests_no_larger_than_limits(rendered, overlay):
    resources = container(rendered[overlay])["resources"]

    assert cpu_cores(resources["requests"]["cpu"]) <= cpu_cores(resources["limits"]["cpu"])
    assert memory_bytes(resources["requests"]["memory"]) <= memory_bytes(resources["limits"]["memory"])


def test_staging_pods_are_no_larger_than_production_pods(rendered):
    staging, production = (container(rendered[overlay])["resources"]["limits"] for overlay in OVERLAYS)

    assert cpu_cores(staging["cpu"]) < cpu_cores(production["cpu"])
    assert memory_bytes(staging["memory"]) <= memory_bytes(production["memory"])


@pytest.mark.parametrize(("overlay", "workers"), [("staging", "1"), ("production", "2")])
def test_web_concurrency_is_the_cpu_limit_through_the_downward_api(rendered, overlay, workers):
    [var] = [var for var in container(rendered[overlay])["env"] if var["name"] == "WEB_CONCURRENCY"]

    limit = {"containerName": CONTAINER, "resource": "limits.cpu", "divisor": "1"}
    assert var["valueFrom"]["resourceFieldRef"] == limit
    assert container_env(rendered[overlay])["WEB_CONCURRENCY"] == workers


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pod_runs_as_the_images_user_without_privileges_on_a_read_only_root(rendered, overlay):
    pod, main = pod_spec(rendered[overlay]), container(rendered[overlay])
    image_user = re.search(r"^USER (\d+):(\d+)$", (REPO / "Dockerfile").read_text(), re.MULTILINE).groups()

    assert (str(pod["securityContext"]["runAsUser"]), str(pod["securityContext"]["runAsGroup"])) == image_user
    assert pod["securityContext"]["runAsNonRoot"] is main["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    assert main["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["automountServiceAccountToken"] is False
    assert not {"hostNetwork", "hostPID", "hostIPC"} & pod.keys()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_folder_the_service_writes_is_an_emptydir(rendered, overlay):
    env, mounts = container_env(rendered[overlay]), emptydir_mounts(rendered[overlay])
    # Gunicorn's heartbeat files: gunicorn.conf.py's worker_tmp_dir.
    worker_tmp_dir = re.search(r'^worker_tmp_dir = "([^"]+)"', (REPO / "gunicorn.conf.py").read_text(), re.MULTILINE)[1]
    written = [env["MODEL_CACHE_DIR"], env["PROMETHEUS_MULTIPROC_DIR"], worker_tmp_dir, "/tmp"]

    assert [folder for folder in written if not under(folder, list(mounts))] == []
    assert len(mounts) == len(container(rendered[overlay])["volumeMounts"])  # every mount is an emptyDir
    assert set(mounts.values()) == {volume["name"] for volume in pod_spec(rendered[overlay])["volumes"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_metrics_folder_is_its_own_empty_folder(rendered, overlay):
    # gunicorn.conf.py drops the other processes' files from it at start: it must hold nothing else.
    env, mounts = container_env(rendered[overlay]), emptydir_mounts(rendered[overlay])
    metrics = env["PROMETHEUS_MULTIPROC_DIR"]

    assert metrics in mounts
    assert not under(env["MODEL_CACHE_DIR"], [metrics]) and not under(metrics, [env["MODEL_CACHE_DIR"]])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_grace_period_covers_the_pre_stop_pause_and_gunicorns_graceful_timeout(rendered, overlay):
    main = container(rendered[overlay])
    sleep, seconds = main["lifecycle"]["preStop"]["exec"]["command"]
    graceful = int(container_env(rendered[overlay])["GUNICORN_GRACEFUL_TIMEOUT"])

    assert sleep == "/bin/sleep"  # python:3.11-slim is Debian: coreutils' sleep
    assert int(seconds) >= 5
    assert pod_spec(rendered[overlay])["terminationGracePeriodSeconds"] >= int(seconds) + graceful + MARGIN_S


# --- the settings ----------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_variable_the_manifests_set_is_one_the_service_reads(rendered, overlay):
    sources = "\n".join(path.read_text() for path in SERVICE_SOURCES)
    names = {var["name"] for var in container(rendered[overlay])["env"]}
    names |= set(one(rendered[overlay], "ConfigMap").get("data", {}))

    assert sorted(name for name in names if f'"{name}"' not in sources) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_configmap_key_reaches_the_container(rendered, overlay):
    configmap = one(rendered[overlay], "ConfigMap")
    refs = [var["valueFrom"]["configMapKeyRef"] for var in container(rendered[overlay])["env"]
            if "configMapKeyRef" in var.get("valueFrom", {})]  # fmt: skip

    assert {ref["name"] for ref in refs} == {configmap["metadata"]["name"]}
    assert set(configmap.get("data", {})) <= {ref["key"] for ref in refs}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_model_settings_and_credentials_are_optional(rendered, overlay):
    main = container(rendered[overlay])
    refs = [var["valueFrom"]["configMapKeyRef"] for var in main["env"] if "configMapKeyRef" in var.get("valueFrom", {})]

    assert {ref["key"] for ref in refs} == {"MODEL_URI", "MLFLOW_TRACKING_URI", "MODEL_POLL_SECONDS"}
    assert all(ref["optional"] is True for ref in refs)
    assert main["envFrom"] == [{"secretRef": {"name": "ride-duration-credentials", "optional": True}}]


def test_the_base_and_staging_set_no_model_so_the_embedded_run_is_served(rendered):
    base = kustomize(K8S / "base")
    assert base.returncode == 0, base.stderr
    [base_configmap] = [doc for doc in yaml.safe_load_all(base.stdout) if doc and doc["kind"] == "ConfigMap"]

    assert "data" not in base_configmap
    settings = ModelSettings.from_env(container_env(rendered["staging"]))
    assert settings.is_default_run


def test_production_serves_the_registry_alias_and_polls_it(rendered):
    env = container_env(rendered["production"])
    settings = ModelSettings.from_env(env)

    assert settings.kind is SourceKind.REGISTRY
    assert re.fullmatch(r"models:/[\w-]+@[\w-]+", settings.model_uri)
    assert settings.poll_seconds == int(env["MODEL_POLL_SECONDS"]) > 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_server_settings_pass_the_launchers_checks(rendered, overlay):
    assert problems(container_env(rendered[overlay])) == []


# --- scaling, disruption and the Service -------------------------------------------------------


def allowed_disruptions(pdb: dict, pods: int) -> int:
    """How many of `pods` healthy pods the budget lets be evicted at once (percentages round up)."""
    spec = pdb["spec"]
    key = "maxUnavailable" if "maxUnavailable" in spec else "minAvailable"
    value = spec[key]
    count = math.ceil(pods * int(value[:-1]) / 100) if isinstance(value, str) else value
    return max(0, count if key == "maxUnavailable" else pods - count)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_disruption_budget_lets_a_drain_proceed_but_never_empties_the_service(rendered, overlay):
    pdb, hpa = one(rendered[overlay], "PodDisruptionBudget"), one(rendered[overlay], "HorizontalPodAutoscaler")

    for pods in range(hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"] + 1):
        assert 1 <= allowed_disruptions(pdb, pods) < pods, pods
    assert pdb["spec"]["selector"] == one(rendered[overlay], "Deployment")["spec"]["selector"]


def test_production_keeps_at_least_three_pods_and_staging_at_most_three(rendered):
    staging, production = (one(rendered[overlay], "HorizontalPodAutoscaler")["spec"] for overlay in OVERLAYS)

    assert production["minReplicas"] >= 3
    assert staging["maxReplicas"] <= 3 <= production["maxReplicas"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_autoscaler_alone_sets_the_replica_count_from_cpu(rendered, overlay):
    deployment, hpa = one(rendered[overlay], "Deployment"), one(rendered[overlay], "HorizontalPodAutoscaler")

    assert "replicas" not in deployment["spec"]  # an apply would reset what the autoscaler chose
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": deployment["metadata"]["name"]}  # fmt: skip
    assert [metric["resource"]["name"] for metric in hpa["spec"]["metrics"]] == ["cpu"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_service_sends_port_80_to_the_pods_http_port(rendered, overlay):
    service = one(rendered[overlay], "Service")
    pod_labels = one(rendered[overlay], "Deployment")["spec"]["template"]["metadata"]["labels"]

    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert service["spec"]["selector"].items() <= pod_labels.items()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_has_its_own_namespace_names_labels_and_image_tag(rendered, overlay):
    docs = rendered[overlay]
    image = container(docs)["image"]

    assert {doc["metadata"]["namespace"] for doc in docs} == {f"ride-duration-{overlay}"}
    assert all(doc["metadata"]["name"].startswith(f"{overlay}-ride-duration") for doc in docs)
    assert {doc["metadata"]["labels"]["app.kubernetes.io/instance"] for doc in docs} == {f"ride-duration-{overlay}"}
    assert one(docs, "Deployment")["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] == (
        f"ride-duration-{overlay}"
    )
    assert re.fullmatch(r"ride-duration:[\w.-]+", image) and not image.endswith(":latest")


# --- the Prometheus Operator's objects ---------------------------------------------------------

DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}


def strict(properties: dict, required: tuple[str, ...] = ()) -> dict:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


def operator_object(spec: dict) -> dict:
    fields = {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"type": "string"},
        "metadata": {"type": "object", "required": ["name", "namespace"]},
        "spec": spec,
    }
    return strict(fields, required=tuple(fields))


# The fields of monitoring.coreos.com/v1 these manifests use, as the operator's CRDs define them.
SERVICE_MONITOR = operator_object(strict({
    "jobLabel": {"type": "string"},
    "selector": strict({"matchLabels": STRINGS}, required=("matchLabels",)),
    "endpoints": {"type": "array", "minItems": 1, "items": strict({
        "port": {"type": "string"}, "path": {"type": "string", "pattern": "^/"},
        "interval": {"type": "string", "pattern": DURATION}, "scrapeTimeout": {"type": "string", "pattern": DURATION},
    }, required=("port",))},
}, required=("selector", "endpoints")))  # fmt: skip
PROMETHEUS_RULE = operator_object(strict({
    "groups": {"type": "array", "minItems": 1, "items": strict({
        "name": {"type": "string", "minLength": 1},
        "rules": {"type": "array", "items": strict({
            "alert": {"type": "string"}, "record": {"type": "string"}, "expr": {"type": ["string", "integer"]},
            "for": {"type": "string", "pattern": DURATION}, "labels": STRINGS, "annotations": STRINGS,
        }, required=("expr",))},
    }, required=("name",))},
}))  # fmt: skip


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_operator_objects_have_the_v1_structure(rendered, overlay):
    jsonschema.validate(one(rendered[overlay], "ServiceMonitor"), SERVICE_MONITOR)
    jsonschema.validate(one(rendered[overlay], "PrometheusRule"), PROMETHEUS_RULE)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_service_monitor_scrapes_metrics_as_the_job_the_alerts_expect(rendered, overlay):
    monitor, service = one(rendered[overlay], "ServiceMonitor"), one(rendered[overlay], "Service")
    [endpoint] = monitor["spec"]["endpoints"]
    job = re.search(r'up\{job="([^"]+)"\}', k8s_rules.ALERTS.read_text())[1]

    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    # The Prometheus Operator names the job after the Service's jobLabel label, else the Service name.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == job


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_prometheus_rule_holds_exactly_the_groups_of_alerts_yml(rendered, overlay):
    alerts = yaml.safe_load(k8s_rules.ALERTS.read_text())

    assert one(rendered[overlay], "PrometheusRule")["spec"] == {"groups": alerts["groups"]}


def test_the_committed_prometheus_rule_is_what_the_generator_writes():
    assert k8s_rules.PROMETHEUS_RULE.read_text() == k8s_rules.render(), "run python -m deploy.k8s_rules"


def test_the_prometheus_rule_passes_promtool(rendered, tmp_path):
    promtool = tool("promtool", "`make system-tools` installs it (Debian package prometheus)")
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(one(rendered["production"], "PrometheusRule")["spec"]))

    done = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60,
                          check=False)  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
