"""The production image, built and run for real: Docker if an engine answers, else buildah and podman."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pandas as pd
import pytest
import requests

from deploy import container
from tests.burst import burst_with_stop
from tests.conftest import REPO, write_trips
from tests.processes import free_port
from web_service_mlflow.layout import LOCAL_STORE
from web_service_mlflow.settings import default_run_id

pytestmark = pytest.mark.image
TAG = "localhost/ride-duration:test"


@pytest.fixture(scope="module")
def engine() -> container.Engine:
    return container.find_engine()


@pytest.fixture(scope="module")
def image(engine) -> container.Built:
    built = container.build(TAG, engine=engine)
    print(f"\nimage: built {built.tag} from {built.base} in {built.seconds:.0f} s, {built.size_mb:.0f} MB",
          file=sys.stderr)  # fmt: skip
    return built


class Running:
    def __init__(self, engine: container.Engine, name: str, port: int) -> None:
        self.engine, self.name, self.port = engine, name, port
        self.url = f"http://127.0.0.1:{port}"

    def logs(self) -> str:
        done = self.engine("logs", self.name, check=False)
        return done.stdout + done.stderr

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        pytest.fail(f"the container never became ready:\n{self.logs()}")


@pytest.fixture
def service(engine, image):
    """The image run as `docker run -p PORT:9696 IMAGE` would, with no environment at all."""
    name, port = f"ride-duration-test-{uuid.uuid4().hex[:8]}", free_port()
    engine("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:9696", image.tag)
    running = Running(engine, name, port)
    try:
        running.wait_ready()
        yield running
    finally:
        engine("rm", "-f", name, check=False)


def test_the_image_answers_test_py_with_the_embedded_run(service):
    done = subprocess.run([sys.executable, "test.py", f"{service.url}/predict"], cwd=REPO, capture_output=True,
                          text=True, timeout=30, check=False)  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"duration": 45.50965007660852, "model_version": default_run_id(LOCAL_STORE)}


def test_the_healthcheck_command_passes_in_a_ready_container(service):
    done = service.engine("exec", service.name, "python3", "-m", "web_service.healthcheck", check=False)

    assert done.returncode == 0, done.stderr


def test_the_image_runs_gunicorn_as_a_non_root_user_with_a_readiness_healthcheck(engine, image):
    inspected = engine.inspect(image.tag)
    config = inspected["Config"]

    assert config["User"] == "10001:10001"
    assert "9696/tcp" in config["ExposedPorts"]
    healthcheck = config.get("Healthcheck") or inspected["Healthcheck"]  # where Docker, where podman keeps it
    assert healthcheck["Test"] == ["CMD", "python3", "-m", "web_service.healthcheck"]
    assert config["Entrypoint"] == ["python3", "-m", "web_service.serve"]
    assert config["Cmd"] == ["web_service_mlflow.predict:app"]


def test_a_container_with_a_worker_count_that_is_not_a_number_stops_with_one_line(engine, image):
    # Plain `gunicorn` as the entrypoint ended here in a ValueError traceback from its settings module.
    done = engine("run", "--rm", "-e", "WEB_CONCURRENCY=four", image.tag, check=False, timeout=60)

    assert done.returncode == 3
    ours = [line for line in done.stderr.splitlines() if not line.startswith("time=")]  # podman's own warnings
    assert ours == ["cannot start: WEB_CONCURRENCY must be a whole number >= 1, got 'four'"]


def test_the_image_holds_the_service_and_nothing_else_of_the_repo(engine, image):
    listing = engine("run", "--rm", "--entrypoint", "ls", image.tag, "-A", "/app").stdout.split()

    # __pycache__ holds gunicorn.conf.py's bytecode, compiled at build time.
    expected = ["__pycache__", "gunicorn.conf.py", "mlruns", "test.py", "web_service", "web_service_mlflow"]
    assert sorted(listing) == expected


def test_the_default_run_is_compiled_and_verified_at_build_time(engine, image):
    cache = "/home/app/.cache/ride-duration/models/compiled"
    entries = engine("run", "--rm", "--entrypoint", "ls", image.tag, cache).stdout.split()

    assert len(entries) == 1  # so a container serving the default run starts without scikit-learn


def test_sigterm_during_a_burst_loses_no_request(service):
    def stop() -> None:  # `docker stop`: SIGTERM to gunicorn, PID 1, then wait up to 35 s
        service.engine("stop", "--time", "35", service.name, timeout=60)

    burst = burst_with_stop("127.0.0.1", service.port, stop, clients=32)

    print(f"\nburst: {burst.answered} answered, {len(burst.lost)} lost", file=sys.stderr)
    assert burst.lost == []
    assert burst.answered > 32
    state = service.engine.inspect(service.name)["State"]
    assert state["ExitCode"] == 0, service.logs()
    assert "Shutting down: Master" in service.logs()


def test_the_image_runs_batch_scoring_as_a_command(engine, image, tmp_path):
    # `docker run IMAGE python -m web_service_mlflow.batch ...`: the entrypoint runs a command it is given.
    write_trips(tmp_path / "green_tripdata_2021-01.parquet", rows=500)
    tmp_path.chmod(0o777)  # the container's user (uid 10001) writes the output here
    done = engine("run", "--rm", "-v", f"{tmp_path}:/data", image.tag, "python", "-m", "web_service_mlflow.batch",
                  "/data/green_tripdata_2021-01.parquet", "--output", "/data/scored.parquet", check=False,
                  timeout=120)  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("scored 500 rides, rejected 0, from 1 file in ")
    scored = pd.read_parquet(tmp_path / "scored.parquet")
    assert len(scored) == 500 and set(scored["model_version"]) == {default_run_id(LOCAL_STORE)}


def test_the_image_leaves_out_the_spark_engine(engine, image):
    done = engine("run", "--rm", "--entrypoint", "python3", image.tag, "-c", "import pyspark", check=False)

    assert done.returncode == 1 and "No module named 'pyspark'" in done.stderr
