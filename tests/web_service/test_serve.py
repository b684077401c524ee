"""The launcher: Gunicorn's settings checked first, or a command given to the image run as given."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO
from web_service.serve import command


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
