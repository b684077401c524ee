"""The GitHub workflow cannot run here: hold it to what it promises, and to .ci/run."""

from __future__ import annotations

import yaml

from tests.conftest import REPO

WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"


def load() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_the_workflow_tests_with_the_same_command_as_ci():
    steps = load()["jobs"]["test"]["steps"]

    assert any(step.get("run") == "bash .ci/run" for step in steps)
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_the_workflow_uses_the_python_the_pipfile_requires():
    setup = next(
        step for step in load()["jobs"]["test"]["steps"] if step.get("uses", "").startswith("actions/setup-python")
    )

    assert f'python_version = "{setup["with"]["python-version"]}"' in (REPO / "Pipfile").read_text()


def test_the_image_is_pushed_only_from_main_after_the_tests_pass():
    image = load()["jobs"]["image"]
    commands = next(step["run"] for step in image["steps"] if "run" in step)

    assert image["needs"] == "test"
    assert "refs/heads/main" in image["if"] and "push" in image["if"]
    assert "docker build" in commands and "docker push" in commands


def test_every_step_is_an_action_or_a_command():
    for name, job in load()["jobs"].items():
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), (name, step)
