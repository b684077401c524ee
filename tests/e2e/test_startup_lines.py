"""Settings that cannot work stop the server at start with one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from harness.gunicorn import Server, gunicorn_command, run_until_exit, server_env
from harness.processes import as_user, free_port
from tests.conftest import REPO
from tests.privileges import NOBODY
from web_service.startup import EXIT_STARTUP_FAILED
from web_service_mlflow.layout import LOCAL_STORE, TRACKING_DB
from web_service_mlflow.settings import default_run_id

pytestmark = pytest.mark.e2e
MLFLOW_APP = "web_service_mlflow.predict:app"
RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40}


def error_lines(done: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in done.stderr, done.stderr
    return [line for line in done.stderr.splitlines() if "[ERROR]" in line]


def test_an_unusable_prediction_log_stops_the_server_with_one_line(tmp_path):
    done = run_until_exit(MLFLOW_APP, tmp_path / "fail.log", PREDICTION_LOG="/proc/nope/x.jsonl")

    assert done.returncode == EXIT_STARTUP_FAILED
    [line] = error_lines(done)
    assert line.endswith(
        "cannot start: PREDICTION_LOG=/proc/nope/x.jsonl: cannot open it for appending "
        "([Errno 2] No such file or directory: '/proc/nope'); "
        "name a file this user can create and write, or unset PREDICTION_LOG"
    )


def test_an_api_token_of_separators_alone_stops_the_server_with_one_line(tmp_path):
    done = run_until_exit(MLFLOW_APP, tmp_path / "fail.log", API_TOKEN=" , ")

    assert done.returncode == EXIT_STARTUP_FAILED
    [line] = error_lines(done)
    assert line.endswith(
        "cannot start: API_TOKEN holds no token, got ' , ': set one token, or several separated by commas "
        "(unset API_TOKEN to leave /predict open)"
    )


# --- MODEL_CACHE_DIR that cannot be written, with a source that downloads into it -------------------


@pytest.fixture
def tracking_db() -> Iterator[Path]:
    """The repo's tracking database, copied where any user can read it (its artifacts stay in mlruns/)."""
    folder = Path(tempfile.mkdtemp(prefix="ride-duration-tracking-"))
    try:
        folder.chmod(0o755)
        yield Path(shutil.copy(LOCAL_STORE / TRACKING_DB, folder))
    finally:
        shutil.rmtree(folder)


def start_from_tracking_store(tracking_db: Path, cache: Path, user: int | None = None) -> subprocess.CompletedProcess:
    env = server_env(free_port(), tracking_db, RUN_ID=default_run_id(LOCAL_STORE),
                     MLFLOW_TRACKING_URI=f"sqlite:///{tracking_db}", MODEL_CACHE_DIR=str(cache))  # fmt: skip
    command = [*as_user(user), *gunicorn_command(MLFLOW_APP)]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)


def cache_message(cache: Path, tracking_db: Path, cause: str) -> str:
    return (
        f"cannot start: MODEL_CACHE_DIR={cache}: cannot write the model cache ({cause}); the model from "
        f"tracking server sqlite:///{tracking_db}, run {default_run_id(LOCAL_STORE)} is downloaded there: "
        "set MODEL_CACHE_DIR to a folder this user can write"
    )


def test_a_cache_dir_under_a_file_stops_the_server_with_one_line(tracking_db):
    # Root writes into any folder whatever its mode: a path under a regular file fails for root too.
    cache = tracking_db.parent / "a-file" / "cache"
    cache.parent.write_text("")

    done = start_from_tracking_store(tracking_db, cache)

    assert done.returncode == EXIT_STARTUP_FAILED
    [line] = error_lines(done)
    assert line.endswith(cache_message(cache, tracking_db, f"[Errno 20] Not a directory: '{cache}'"))


def test_a_read_only_cache_dir_stops_an_unprivileged_server_with_one_line(tracking_db):
    # As root, the server runs as nobody, for whom root's folder is read-only; as anyone else, as itself.
    cache = tracking_db.parent / "cache"
    cache.mkdir(mode=0o555)
    user = NOBODY if os.geteuid() == 0 else None

    done = start_from_tracking_store(tracking_db, cache, user)

    assert done.returncode == EXIT_STARTUP_FAILED
    [line] = error_lines(done)
    lock = cache / f".{default_run_id(LOCAL_STORE)}.lock"
    assert line.endswith(cache_message(cache, tracking_db, f"[Errno 13] Permission denied: '{lock}'"))


# --- the launcher: Gunicorn's own WEB_CONCURRENCY, checked before Gunicorn reads it --------------------


def serve(tmp_path: Path, *args: str, **variables: str) -> subprocess.CompletedProcess:
    env = server_env(free_port(), tmp_path / "serve.log", **variables)
    return subprocess.run([sys.executable, "-m", "web_service.serve", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_plain_gunicorn_dies_with_a_traceback_on_a_web_concurrency_that_is_not_a_number(tmp_path):
    # Gunicorn's settings module runs int(WEB_CONCURRENCY) on import, before any config file: why the launcher exists.
    done = run_until_exit(MLFLOW_APP, tmp_path / "fail.log", WEB_CONCURRENCY="abc")

    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == "ValueError: invalid literal for int() with base 10: 'abc'"


def test_the_launcher_says_each_wrong_server_setting_in_one_line(tmp_path):
    done = serve(tmp_path, WEB_CONCURRENCY="abc", GUNICORN_TIMEOUT="0", PORT="99999", GUNICORN_PRELOAD="maybe")

    assert done.returncode == EXIT_STARTUP_FAILED
    assert done.stderr.splitlines() == [
        "cannot start: PORT must be a whole number from 1 to 65535, got '99999'",
        "cannot start: WEB_CONCURRENCY must be a whole number >= 1, got 'abc'",
        "cannot start: GUNICORN_TIMEOUT must be a whole number >= 1, got '0'",
        "cannot start: GUNICORN_PRELOAD must be true or false, got 'maybe'",
    ]


def test_the_launcher_serves_the_default_app_under_gunicorn_with_a_blank_web_concurrency(tmp_path):
    port = free_port()
    env = server_env(port, tmp_path / "serve.log", WEB_CONCURRENCY="")  # plain gunicorn: int("") fails
    with (tmp_path / "serve.log").open("w") as sink:
        process = subprocess.Popen([sys.executable, "-m", "web_service.serve"], cwd=REPO, env=env,
                                   stdout=sink, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        Server(f"http://127.0.0.1:{port}", process, tmp_path / "serve.log").wait_healthy()
        answer = requests.post(f"http://127.0.0.1:{port}/predict", json=RIDE, timeout=10)
    finally:
        process.terminate()
        process.wait(timeout=30)

    assert answer.json()["model_version"] == default_run_id(LOCAL_STORE)
    assert "Starting gunicorn" in (tmp_path / "serve.log").read_text()
    assert process.returncode == 0


def test_the_launcher_hands_its_arguments_to_gunicorn_with_the_repos_config(tmp_path):
    done = serve(tmp_path, "--check-config", MLFLOW_APP, WEB_CONCURRENCY=" 3 ")

    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
