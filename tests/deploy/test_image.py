"""The production images, built and run for real: Docker if an engine answers, else buildah and podman.

The full image serves any run; the slim one (Dockerfile target `slim`) serves the run baked into it,
without scikit-learn, and refuses any other.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import uuid

import pytest
import requests

from deploy import container
from harness.processes import free_port
from tests.burst import burst_with_stop
from tests.conftest import REPO
from web_service_mlflow.layout import LOCAL_STORE
from web_service_mlflow.settings import default_run_id

pytestmark = pytest.mark.image
TAG = "localhost/ride-duration:test"
SLIM_TAG = "localhost/ride-duration:test-slim"
# Issue 16's targets: the full image was 1,068 MB with MLflow's server, pandas, pyarrow and matplotlib.
FULL_MAX_MB, SLIM_MAX_MB = 600, 300


@pytest.fixture(scope="module")
def engine() -> container.Engine:
    return container.find_engine()


@pytest.fixture(scope="module")
def image(engine) -> container.Built:
    built = container.build(TAG, engine=engine)
    print(f"\nimage: built {built.tag} from {built.base} in {built.seconds:.0f} s, {built.size_mb:.0f} MB",
          file=sys.stderr)  # fmt: skip
    return built


@pytest.fixture(scope="module")
def slim_image(engine) -> container.Built:
    built = container.build(SLIM_TAG, engine=engine, target="slim")
    print(f"\nslim image: built {built.tag} from {built.base} in {built.seconds:.0f} s, {built.size_mb:.0f} MB",
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


def run_detached(engine: container.Engine, tag: str):
    """The image run as `docker run -p PORT:9696 IMAGE` would, with no environment at all."""
    name, port = f"ride-duration-test-{uuid.uuid4().hex[:8]}", free_port()
    engine("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:9696", tag)
    running = Running(engine, name, port)
    try:
        running.wait_ready()
        yield running
    finally:
        engine("rm", "-f", name, check=False)


@pytest.fixture
def service(engine, image):
    yield from run_detached(engine, image.tag)


@pytest.fixture
def slim_service(engine, slim_image):
    yield from run_detached(engine, slim_image.tag)


def our_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if not line.startswith("time=")]  # podman's own warnings


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
    assert our_lines(done.stderr) == ["cannot start: WEB_CONCURRENCY must be a whole number >= 1, got 'four'"]


def test_the_image_holds_the_service_and_nothing_else_of_the_repo(engine, image):
    listing = engine("run", "--rm", "--entrypoint", "ls", image.tag, "-A", "/app").stdout.split()

    # __pycache__ holds gunicorn.conf.py's bytecode, compiled at build time.
    expected = ["__pycache__", "gunicorn.conf.py", "mlruns", "test.py", "web_service", "web_service_mlflow"]
    assert sorted(listing) == expected


# Every source file's bytecode, checked as the import system checks it (the mtime and size in the
# .pyc header): bytecode that does not match would be compiled again, in memory, at every start.
STALE_BYTECODE = """
import importlib.util, pathlib
sources = [p for top in ("web_service", "web_service_mlflow") for p in pathlib.Path(top).rglob("*.py")]
stale = []
for source in sources + [pathlib.Path("gunicorn.conf.py")]:
    cached = pathlib.Path(importlib.util.cache_from_source(str(source)))
    header = cached.read_bytes()[8:16] if cached.is_file() else b""
    stat = source.stat()
    expected = [(int(stat.st_mtime) & 0xFFFFFFFF), stat.st_size & 0xFFFFFFFF]
    if header != b"".join(value.to_bytes(4, "little") for value in expected):
        stale.append(str(source))
print(len(sources), stale)
"""


@pytest.mark.parametrize("which", ["full", "slim"])
def test_the_bytecode_compiled_at_build_time_matches_every_source_file(engine, image, slim_image, which):
    tag = image.tag if which == "full" else slim_image.tag

    done = engine("run", "--rm", "--entrypoint", "python3", tag, "-c", STALE_BYTECODE)

    count, stale = done.stdout.split(" ", 1)
    assert int(count) > 50 and stale.strip() == "[]"


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


def test_the_image_runs_a_command_it_is_given_and_batch_scoring_says_what_it_lacks(engine, image):
    # `docker run IMAGE python -m web_service_mlflow.batch ...`: the entrypoint runs a command it is given.
    # Batch scoring needs pyarrow and pandas, which serving does not: the image leaves them out.
    done = engine("run", "--rm", image.tag, "python", "-m", "web_service_mlflow.batch", "/data/trips.parquet",
                  "--output", "/data/scored.parquet", check=False, timeout=120)  # fmt: skip

    assert done.returncode == 1
    assert our_lines(done.stderr) == [
        "python -m web_service_mlflow.batch: needs pyarrow, which this environment lacks (the serving install "
        'leaves it out): pipenv install --categories "packages batch" (make install-dev installs every category)'
    ]


def test_the_image_leaves_out_the_spark_engine(engine, image):
    done = engine("run", "--rm", "--entrypoint", "python3", image.tag, "-c", "import pyspark", check=False)

    assert done.returncode == 1 and "No module named 'pyspark'" in done.stderr


@pytest.mark.parametrize("package", ["pandas", "pyarrow", "matplotlib", "sqlalchemy"])
def test_the_image_leaves_out_what_only_training_batch_scoring_and_reports_need(engine, image, package):
    done = engine("run", "--rm", "--entrypoint", "python3", image.tag, "-c", f"import {package}", check=False)

    assert done.returncode == 1 and f"No module named '{package}'" in done.stderr


def test_the_images_are_within_their_size_targets(image, slim_image):
    assert image.size_mb <= FULL_MAX_MB
    assert slim_image.size_mb <= SLIM_MAX_MB


# --- the slim image ------------------------------------------------------------------------------


def test_the_slim_image_answers_exactly_as_the_full_image(service, slim_service):
    rng = random.Random(16)
    rides = [{"PULocationID": rng.randint(1, 265), "DOLocationID": rng.randint(1, 265),
              "trip_distance": round(rng.expovariate(1 / 3), 2)} for _ in range(999)]  # fmt: skip
    rides.append({"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40})

    full = requests.post(f"{service.url}/predict", json=rides, timeout=30)
    slim = requests.post(f"{slim_service.url}/predict", json=rides, timeout=30)

    assert full.status_code == slim.status_code == 200
    assert slim.json() == full.json()
    one = requests.post(f"{slim_service.url}/predict", json=rides[-1], timeout=30).json()
    assert one == {"duration": 45.50965007660852, "model_version": default_run_id(LOCAL_STORE)}


def test_the_slim_image_serves_the_baked_compiled_form_and_says_so(slim_service):
    described = requests.get(f"{slim_service.url}/model", timeout=10).json()

    assert described["model_version"] == default_run_id(LOCAL_STORE)
    assert described["engine"]["name"] == "compiled tree_table"
    assert described["source"].startswith("baked into the image at build time")
    assert described["reference_profile"] is not None  # live drift keeps its baseline


@pytest.mark.parametrize("module", ["sklearn", "scipy", "mlflow", "skops", "treelite", "pandas"])
def test_the_slim_image_has_no_scikit_learn_nor_what_loading_a_run_needs(engine, slim_image, module):
    done = engine("run", "--rm", "--entrypoint", "python3", slim_image.tag, "-c", f"import {module}", check=False)

    assert done.returncode == 1 and f"No module named '{module}'" in done.stderr


@pytest.mark.parametrize(
    ("variable", "value", "refusal"),
    [
        ("RUN_ID", "0" * 32, "RUN_ID=00000000000000000000000000000000: this image serves only the run baked into "
         "it at build time, {run}; another run needs scikit-learn: use the full image, or bake that run into one"),
        ("MODEL_URI", "models:/ride-duration@production", "MODEL_URI is set: this image serves only the run baked "
         "into it at build time, {run}; another model needs scikit-learn: use the full image"),
        ("SHADOW_RUN_ID", "0" * 32, "SHADOW_RUN_ID is set: this image serves only the run baked into it at build "
         "time, {run}; another model needs scikit-learn: use the full image"),
    ],
)  # fmt: skip
def test_the_slim_image_refuses_another_model_at_start_with_one_line(engine, slim_image, variable, value, refusal):
    done = engine("run", "--rm", "-e", f"{variable}={value}", slim_image.tag, check=False, timeout=60)

    assert done.returncode == 3
    refused = [line for line in our_lines(done.stderr) if "cannot start" in line]
    assert len(refused) == 1
    assert refused[0].endswith(f"cannot start: {refusal.format(run=default_run_id(LOCAL_STORE))}")
    assert "Traceback" not in done.stderr


def test_the_slim_image_holds_the_baked_run_and_no_store(engine, slim_image):
    listing = engine("run", "--rm", "--entrypoint", "ls", slim_image.tag, "-A", "/app").stdout.split()

    expected = ["__pycache__", "baked", "gunicorn.conf.py", "test.py", "web_service", "web_service_mlflow"]
    assert sorted(listing) == expected


def test_the_slim_image_runs_as_the_full_one_does(engine, image, slim_image):
    full, slim = engine.inspect(image.tag)["Config"], engine.inspect(slim_image.tag)["Config"]

    for key in ("User", "ExposedPorts", "Entrypoint", "StopSignal"):
        assert slim.get(key) == full.get(key), key
    assert slim["Cmd"] == ["web_service_mlflow.predict_baked:app"]


def test_the_healthcheck_command_passes_in_a_ready_slim_container(slim_service):
    done = slim_service.engine("exec", slim_service.name, "python3", "-m", "web_service.healthcheck", check=False)

    assert done.returncode == 0, done.stderr
