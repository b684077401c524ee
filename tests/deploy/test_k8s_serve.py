"""The staging pod's environment, given to the real service: `python -m web_service.serve`, as the image runs it.

No cluster or container here: each emptyDir becomes a world-writable temporary folder (the
variables that point into one are moved with it), HOME is a folder no one may write (the image's
home is on the read-only root), and as root the server runs as the image's uid 10001 without
capabilities. It binds a free loopback port instead of 0.0.0.0:9696. What this does not show: a
write outside those folders to a place the host lets this user write (the image run with
--read-only does; docs/kubernetes.md).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from harness.gunicorn import Server
from harness.processes import as_user, free_port
from tests.conftest import REPO
from tests.deploy.test_k8s import MARGIN_S, container_env, emptydir_mounts, render
from tests.privileges import needs_root

pytestmark = pytest.mark.e2e
IMAGE_UID = 10001


def moved(value: str, folders: dict[str, Path]) -> str:
    """`value` with a leading emptyDir mount path replaced by that volume's local folder."""
    for mount_path, folder in folders.items():
        if value == mount_path or value.startswith(mount_path + "/"):
            return str(folder) + value[len(mount_path) :]
    return value


@pytest.fixture(scope="module")
def pod() -> Iterator[tuple[dict[str, str], dict[str, Path]]]:
    """The staging container's environment and its emptyDirs, made local; removed afterwards."""
    docs = render("staging")
    root = Path(tempfile.mkdtemp(prefix="ride-duration-pod-"))
    root.chmod(0o755)
    folders = {}
    for mount_path, volume in emptydir_mounts(docs).items():
        folders[mount_path] = root / volume
        folders[mount_path].mkdir(mode=0o777)
        folders[mount_path].chmod(0o777)  # as an emptyDir: whatever the umask
    (root / "home").mkdir(mode=0o555)
    env = {name: moved(value, folders) for name, value in container_env(docs).items()}
    env |= {"PATH": os.environ["PATH"], "HOME": str(root / "home"), "TMPDIR": str(folders["/tmp"]),
            "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}  # fmt: skip
    try:
        yield env, folders
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def server(pod, tmp_path_factory) -> Iterator[Server]:
    env, _ = pod
    port = free_port()
    log = tmp_path_factory.mktemp("k8s-serve") / "server.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [*as_user(IMAGE_UID if os.geteuid() == 0 else None), sys.executable, "-m", "web_service.serve"],
            cwd=REPO, env=env | {"BIND": f"127.0.0.1:{port}"}, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    running = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        running.wait_healthy(timeout=180)
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def test_the_service_with_the_staging_pods_environment_answers_ready(server):
    answer = requests.get(f"{server.url}/ready", timeout=10)

    assert answer.status_code == 200, server.output()
    assert answer.json()["status"] == "ready"


@needs_root(f"(CAP_SETUID, CAP_SETGID) to run the server as the image's uid {IMAGE_UID}")
def test_it_runs_as_the_images_user(server):
    status = dict(line.split(":", 1) for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines())

    assert int(status["Uid"].split()[1]) == IMAGE_UID
    assert int(status["CapEff"], 16) == 0


def test_it_runs_one_gunicorn_worker_per_cpu_of_the_limit(server, pod):
    env, _ = pod

    assert server.wait_output("Booting worker").count("Booting worker") == int(env["WEB_CONCURRENCY"]) == 1


def test_it_keeps_its_model_cache_and_metrics_in_their_emptydirs(server, pod):
    env, _ = pod
    ride = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 4}
    requests.post(f"{server.url}/predict", json=ride, timeout=10)

    assert list(Path(env["MODEL_CACHE_DIR"]).iterdir()) != []  # the embedded forest's compiled form
    assert {path.suffix for path in Path(env["PROMETHEUS_MULTIPROC_DIR"]).iterdir()} == {".db"}
    assert "ride_duration_http_requests_total" in requests.get(f"{server.url}/metrics", timeout=10).text
    assert list(Path(env["HOME"]).iterdir()) == []


def test_sigterm_stops_it_within_the_grace_period_left_after_the_pre_stop_pause(server, pod):
    # Last: it stops the module's server. The kubelet sends SIGTERM once the preStop sleep is over.
    env, _ = pod
    server.process.send_signal(signal.SIGTERM)

    # The kubelet's bound (its SIGKILL comes after the grace period), far above the second or so an
    # idle server takes to stop: wait() fails the test past it.
    assert server.process.wait(timeout=int(env["GUNICORN_GRACEFUL_TIMEOUT"]) + MARGIN_S) == 0
