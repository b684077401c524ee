"""The launcher: Gunicorn's settings checked first, or a command given to the image run as given."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from dataclasses import astuple

import pytest

from tests.conftest import REPO
from web_service.serve import (
    EXIT_STARTUP_FAILED,
    ServerSettings,
    command,
    own_metrics_folder,
    problems,
    server_settings,
)


@pytest.mark.parametrize(
    "args",
    [[], ["web_service_mlflow.predict:app"], ["--workers", "2", "web_service.predict:app"], ["-c", "x.py"],
     ["no-such-program-here", "--flag"]],
)  # fmt: skip
def test_gunicorn_arguments_and_apps_are_not_taken_for_commands(args) -> None:
    assert command(args) is None


def test_a_program_on_the_path_is_a_command() -> None:
    assert command(["python3", "-m", "web_service_mlflow.batch"]) is not None


def test_a_command_replaces_the_launcher_with_its_arguments_and_exit_code() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "web_service.serve", "python3", "-c", "import sys; print(sys.argv[1:]); sys.exit(7)",
         "a b"], cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 7
    assert done.stdout.strip() == "['a b']"


# --- the server settings: the launcher checks exactly what gunicorn.conf.py reads --------------------

WRONG = {"WEB_CONCURRENCY": "abc", "GUNICORN_TIMEOUT": "0", "PORT": "99999", "GUNICORN_PRELOAD": "maybe",
         "LOG_LEVEL": "verbose"}  # fmt: skip
WRONG_LINES = [
    "PORT must be a whole number from 1 to 65535, got '99999'",
    "WEB_CONCURRENCY must be a whole number >= 1, got 'abc'",
    "GUNICORN_TIMEOUT must be a whole number >= 1, got '0'",
    "GUNICORN_PRELOAD must be true or false, got 'maybe'",
    "LOG_LEVEL must be one of debug, info, warning, error, critical, got 'verbose'",
]


SERVER_VARIABLES = {"BIND", "PORT", "WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_TIMEOUT", "GUNICORN_PRELOAD",
                    "GUNICORN_GRACEFUL_TIMEOUT", "GUNICORN_KEEPALIVE", "GUNICORN_ACCESSLOG", "LOG_LEVEL",
                    "GUNICORN_CONTROL_SOCKET", "PROMETHEUS_MULTIPROC_DIR"}  # fmt: skip


def gunicorn_conf(monkeypatch, **variables: str) -> dict:
    """The settings gunicorn.conf.py makes from this environment, as Gunicorn reads the file."""
    for name in [name for name in os.environ if name in SERVER_VARIABLES]:
        monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(REPO / "gunicorn.conf.py"))


def test_the_launcher_finds_every_wrong_server_setting_in_one_line_each():
    assert problems(WRONG) == WRONG_LINES
    assert problems({"WEB_CONCURRENCY": " ", "PORT": "", "BIND": "0.0.0.0:1", "LOG_LEVEL": "DEBUG"}) == []


def test_gunicorn_conf_stops_on_the_same_lines_with_the_launchers_exit_code(monkeypatch, capsys):
    with pytest.raises(SystemExit) as stopped:
        gunicorn_conf(monkeypatch, **WRONG)

    assert stopped.value.code == EXIT_STARTUP_FAILED
    assert capsys.readouterr().err.splitlines() == [f"cannot start: {line}" for line in WRONG_LINES]


@pytest.mark.parametrize("raw", ["0", "abc", "+2", "2.0"])
def test_a_worker_count_gunicorn_conf_refuses_is_one_the_launcher_refuses(monkeypatch, capsys, raw):
    with pytest.raises(SystemExit):
        gunicorn_conf(monkeypatch, WEB_CONCURRENCY=raw)

    assert capsys.readouterr().err == f"cannot start: {problems({'WEB_CONCURRENCY': raw})[0]}\n"


def test_gunicorn_conf_takes_its_settings_from_the_launchers_reads(monkeypatch, tmp_path):
    variables = {"PORT": "8080", "WEB_CONCURRENCY": "3", "GUNICORN_THREADS": "2", "GUNICORN_TIMEOUT": "9",
                 "GUNICORN_GRACEFUL_TIMEOUT": "8", "GUNICORN_KEEPALIVE": "7", "GUNICORN_PRELOAD": "no",
                 "GUNICORN_ACCESSLOG": " - ", "LOG_LEVEL": "WARNING", "GUNICORN_CONTROL_SOCKET": "yes",
                 "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}  # fmt: skip
    conf = gunicorn_conf(monkeypatch, **variables)
    expected = server_settings(variables)

    assert (conf["bind"], conf["workers"], conf["threads"], conf["timeout"], conf["graceful_timeout"],
            conf["keepalive"], conf["preload_app"], conf["accesslog"], conf["loglevel"],
            not conf["control_socket_disable"]) == astuple(expected)  # fmt: skip
    assert expected == ServerSettings("0.0.0.0:8080", 3, 2, 9, 8, 7, False, "-", "warning", True)
    assert conf["worker_class"] == "web_service.server.worker.ThreadedWorker"
    assert (conf["metrics_folder"], conf["raw_env"]) == (str(tmp_path), [])


def test_gunicorn_conf_hands_its_own_metrics_folder_to_gunicorn_not_to_the_environment(monkeypatch):
    conf = gunicorn_conf(monkeypatch)

    assert conf["raw_env"] == [f"PROMETHEUS_MULTIPROC_DIR={own_metrics_folder()}"]
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    assert gunicorn_conf(monkeypatch)["raw_env"] == conf["raw_env"]  # read again on SIGHUP: the same folder
    assert (conf["bind"], conf["workers"], conf["loglevel"]) == ("0.0.0.0:9696", os.cpu_count(), "info")


def test_the_app_refuses_the_log_level_gunicorn_conf_refuses(caplog):
    from web_service.startup import build_app

    def never(environ):
        raise AssertionError("loaded a model with a wrong LOG_LEVEL")

    with pytest.raises(SystemExit) as stopped:
        build_app(never, {"LOG_LEVEL": "verbose"})

    assert stopped.value.code == EXIT_STARTUP_FAILED
    assert caplog.messages == [f"cannot start: {problems({'LOG_LEVEL': 'verbose'})[0]}"]


def test_a_wrong_port_is_refused_under_bind_too():
    assert problems({"BIND": "127.0.0.1:8000", "PORT": "0"}) == ["PORT must be a whole number from 1 to 65535, got '0'"]
