"""deploy/release.py: the smoke test against real servers, the upload against real S3, the rollback rule.

Real parts are tested for real: the smoke test against Gunicorn serving the app (and Elastic
Beanstalk's nginx in front of a container that is not up), the S3 upload against SeaweedFS on
loopback. Only the Elastic Beanstalk API calls go through botocore's Stubber.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from contextlib import contextmanager
from datetime import UTC, datetime

import boto3
import pytest
import requests
from botocore.exceptions import NoCredentialsError
from botocore.stub import ANY, Stubber

from deploy import release
from deploy.release import Environment, Record, ReleaseError, SettingError, Timing
from harness.backends import s3_server
from harness.gunicorn import gunicorn
from harness.processes import free_port, wait_answering
from tests.conftest import REPO
from tests.deploy.test_nginx import nginx_conf

APP = "web_service_mlflow.predict:app"
STAGING = "ride-duration-staging"
CNAME = "ride-duration-staging.eu-west-1.elasticbeanstalk.com"
BUNDLE_BUCKET = "bundles"


# -- the smoke test, against real servers ----------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with gunicorn(APP, tmp_path_factory.mktemp("smoke") / "gunicorn.log") as server:
        yield server


def quick(timeout: float = 1) -> Timing:
    return Timing(timeout, interval=0.2)


@pytest.mark.e2e
def test_smoke_passes_on_a_ready_service_and_returns_test_py_answer(served):
    answer = json.loads(release.smoke(served.url, quick()))

    assert 1 <= answer["duration"] <= 60
    assert answer["model_version"] == requests.get(f"{served.url}/ready", timeout=5).json()["model_version"]


@pytest.mark.e2e
def test_smoke_fails_on_a_404_and_says_what_answered(served):
    with pytest.raises(ReleaseError, match=r"^not ready after 1 s: GET .*/nothing-here/ready answered 404: "):
        release.smoke(f"{served.url}/nothing-here", quick())


@pytest.mark.e2e
def test_smoke_fails_when_nothing_listens():
    url = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(ReleaseError, match=rf"^not ready after 1 s: cannot reach {url}/ready: "):
        release.smoke(url, quick())


@pytest.mark.e2e
def test_smoke_fails_when_ready_answers_but_predict_refuses(tmp_path):
    """/ready is open while API_TOKEN guards /predict: test.py's ride is refused, so the smoke test fails."""
    with gunicorn(APP, tmp_path / "token.log", API_TOKEN="smoke-secret") as server:
        assert release.ready_problem(server.url) is None
        with pytest.raises(ReleaseError) as failed:
            release.smoke(server.url, quick())

    assert str(failed.value).startswith(f"python test.py {server.url}/predict exited 1: ")
    assert '"code":"unauthorized"' in str(failed.value)


@pytest.mark.e2e
def test_smoke_waits_for_a_service_still_starting(tmp_path):
    with gunicorn(APP, tmp_path / "starting.log", wait=False) as server:
        assert release.ready_problem(server.url) is not None  # not listening yet
        answer = json.loads(release.smoke(server.url, Timing(90, interval=0.2)))

    assert answer["duration"] > 0


@contextmanager
def beanstalk_nginx(workdir, upstream: str):
    """Elastic Beanstalk's nginx (this repo's .platform settings) proxying to `upstream`."""
    nginx, port = shutil.which("nginx") or "/usr/sbin/nginx", free_port()
    (workdir / "nginx.conf").write_text(nginx_conf(workdir, port, upstream))
    process = subprocess.Popen([nginx, "-p", str(workdir), "-c", str(workdir / "nginx.conf")])
    url = f"http://127.0.0.1:{port}"
    try:
        # nginx answers, whatever its upstream says.
        wait_answering(process, lambda: "cannot reach" not in (release.ready_problem(url, timeout=2) or ""), "nginx",
                       lambda: (workdir / "error.log").read_text(errors="replace"), 20, every=0.1)  # fmt: skip
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.mark.e2e
def test_smoke_fails_when_the_container_behind_beanstalk_nginx_is_not_up(tmp_path):
    with beanstalk_nginx(tmp_path, f"http://127.0.0.1:{free_port()}") as url, pytest.raises(ReleaseError) as failed:
        release.smoke(url, quick())

    assert f"GET {url}/ready answered 502: " in str(failed.value)


@pytest.mark.parametrize(
    ("status", "body", "ready"),
    [
        (200, '{"status": "ready", "model_version": "x"}', True),
        (200, '{"status": "ok"}', False),  # /health's answer, not readiness
        (200, "<html>Welcome to nginx</html>", False),
        (200, '["ready"]', False),
        (503, '{"status": "ready"}', False),
    ],
)
def test_only_a_200_saying_ready_is_ready(status, body, ready):
    assert release.is_ready_answer(status, body) is ready


@pytest.mark.e2e
def test_the_smoke_command_exits_0_on_a_ready_service_and_1_with_one_line_otherwise(served):
    def smoke(url: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "deploy.release", "smoke", "--url", url, "--timeout", "1"]
        return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)

    passed, failed = smoke(served.url), smoke(f"http://127.0.0.1:{free_port()}")

    assert passed.returncode == 0, passed.stderr
    assert json.loads(passed.stdout)["duration"] > 0
    assert failed.returncode == release.EXIT_FAILED
    assert failed.stderr.startswith("smoke failed: not ready after 1 s: cannot reach ")
    assert failed.stderr.count("\n") == 1


# -- the bundle's upload, against real S3 ------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    with s3_server(tmp_path_factory.mktemp("s3")) as server:
        server.client().create_bucket(Bucket=BUNDLE_BUCKET)
        yield server


@pytest.fixture
def s3(s3_endpoint):
    return s3_endpoint.client()


def make_bundle(path, text: str = "FROM python:3.11-slim\n"):
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("Dockerfile", text)
    return path


@pytest.mark.integration
def test_the_bundle_is_uploaded_once_with_its_digest(s3, tmp_path):
    bundle = make_bundle(tmp_path / "eb.zip")

    first = release.upload_bundle(s3, bundle, BUNDLE_BUCKET, "app/once.zip")
    again = release.upload_bundle(s3, bundle, BUNDLE_BUCKET, "app/once.zip")

    assert first.startswith(f"uploaded {bundle} to s3://{BUNDLE_BUCKET}/app/once.zip")
    assert again.startswith(f"s3://{BUNDLE_BUCKET}/app/once.zip already holds this bundle")
    stored = s3.get_object(Bucket=BUNDLE_BUCKET, Key="app/once.zip")
    assert stored["Body"].read() == bundle.read_bytes()
    assert len(stored["Metadata"]["sha256"]) == 64


@pytest.mark.integration
def test_a_label_never_names_two_different_bundles(s3, tmp_path):
    release.upload_bundle(s3, make_bundle(tmp_path / "a.zip", "FROM a\n"), BUNDLE_BUCKET, "app/taken.zip")

    with pytest.raises(ReleaseError, match=r"^s3://bundles/app/taken.zip holds another bundle \(sha256 \w{12}, this"):
        release.upload_bundle(s3, make_bundle(tmp_path / "b.zip", "FROM b\n"), BUNDLE_BUCKET, "app/taken.zip")


@pytest.mark.integration
def test_a_refused_upload_is_one_line_saying_what_was_refused(s3_endpoint, tmp_path):
    s3 = s3_endpoint.client(aws_secret_access_key="not-the-secret")

    with pytest.raises(ReleaseError) as refused:
        release.upload_bundle(s3, make_bundle(tmp_path / "eb.zip"), BUNDLE_BUCKET, "app/x.zip")

    assert str(refused.value).startswith(f"cannot read s3://{BUNDLE_BUCKET}/app/x.zip: 403: ")
    assert "\n" not in str(refused.value)


def test_a_missing_bundle_says_how_to_build_it(tmp_path):
    with pytest.raises(ReleaseError, match=r"no bundle at .*: build it with make eb-bundle$"):
        release.upload_bundle(None, tmp_path / "absent.zip", BUNDLE_BUCKET, "app/x.zip")


# -- Elastic Beanstalk, through botocore's Stubber ----------------------------------------------------


class FakeClock:
    """Time that passes only when slept: waits of minutes take no time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def fake_timing(timeout: float = 60) -> Timing:
    clock = FakeClock()
    return Timing(timeout, interval=10, sleep=clock.sleep, clock=clock)


@pytest.fixture
def eb():
    """An Elastic Beanstalk client whose every call is stubbed: each test lists the answers, in order."""
    client = boto3.client(
        "elasticbeanstalk", region_name="eu-west-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    with Stubber(client) as stubber:
        client.stubber = stubber
        yield client
        stubber.assert_no_pending_responses()


def answers_environment(eb, status: str = "Ready", health: str = "Green", version: str | None = "v1") -> None:
    env = {"EnvironmentName": STAGING, "Status": status, "Health": health, "CNAME": CNAME}
    env |= {"VersionLabel": version} if version else {}
    expected = {"ApplicationName": "app", "EnvironmentNames": [STAGING], "IncludeDeleted": False}
    eb.stubber.add_response("describe_environments", {"Environments": [env]}, expected)


def answers_version(eb, label: str, status: str | None = "PROCESSED", key: str | None = None) -> None:
    source = {"S3Bucket": BUNDLE_BUCKET, "S3Key": key or f"app/{label}.zip"}
    found = [{"VersionLabel": label, "Status": status, "SourceBundle": source}]
    expected = {"ApplicationName": "app", "VersionLabels": [label]}
    eb.stubber.add_response("describe_application_versions", {"ApplicationVersions": found if status else []}, expected)


def expects_update(eb, label: str) -> None:
    expected = {"ApplicationName": "app", "EnvironmentName": STAGING, "VersionLabel": label}
    eb.stubber.add_response("update_environment", {"EnvironmentName": STAGING, "VersionLabel": label}, expected)


def answers_events(eb, *messages: str) -> None:
    events = [{"EventDate": datetime.now(UTC), "Message": message, "Severity": "ERROR"} for message in messages]
    expected = {"ApplicationName": "app", "EnvironmentName": STAGING, "StartTime": ANY, "Severity": "ERROR",
                "MaxRecords": 5}  # fmt: skip
    eb.stubber.add_response("describe_events", {"Events": events}, expected)


@pytest.mark.integration
def test_a_version_is_created_from_the_uploaded_bundle_and_waited_for(eb, s3, tmp_path):
    """No Elastic Beanstalk can run here: its calls are stubbed; the upload goes to real S3 (SeaweedFS)."""
    bundle = make_bundle(tmp_path / "eb.zip")
    answers_version(eb, "git-0123456789ab", status=None)
    eb.stubber.add_response("create_application_version", {}, {
        "ApplicationName": "app", "VersionLabel": "git-0123456789ab", "Process": True,
        "Description": "eb.zip from app/git-0123456789ab.zip",
        "SourceBundle": {"S3Bucket": BUNDLE_BUCKET, "S3Key": "app/git-0123456789ab.zip"},
    })  # fmt: skip
    answers_version(eb, "git-0123456789ab", status="PROCESSING", key="app/git-0123456789ab.zip")
    answers_version(eb, "git-0123456789ab", status="PROCESSED", key="app/git-0123456789ab.zip")

    done = release.create_version(eb, s3, "app", "git-0123456789ab", bundle, BUNDLE_BUCKET, fake_timing())

    assert done[1:] == ["created version git-0123456789ab of app", "version git-0123456789ab is processed"]
    assert s3.head_object(Bucket=BUNDLE_BUCKET, Key="app/git-0123456789ab.zip")["ContentLength"] > 0


@pytest.mark.integration
def test_a_version_made_by_an_earlier_run_of_the_same_commit_is_reused(eb, s3, tmp_path):
    """No Elastic Beanstalk can run here: its calls are stubbed; the upload goes to real S3 (SeaweedFS)."""
    bundle = make_bundle(tmp_path / "eb.zip")
    release.upload_bundle(s3, bundle, BUNDLE_BUCKET, "app/rerun.zip")
    answers_version(eb, "rerun", key="app/rerun.zip")
    answers_version(eb, "rerun", key="app/rerun.zip")

    done = release.create_version(eb, s3, "app", "rerun", bundle, BUNDLE_BUCKET, fake_timing())

    assert done[0].startswith("s3://bundles/app/rerun.zip already holds this bundle")
    assert done[1:] == ["version rerun is processed"]


def test_a_label_taken_by_another_bundle_location_is_refused(eb, tmp_path):
    """No Elastic Beanstalk can run here: its calls are stubbed."""
    answers_version(eb, "v2", key="elsewhere/v2.zip")

    with pytest.raises(ReleaseError, match=r"^version v2 of app already exists from s3://bundles/elsewhere/v2.zip, "):
        release.create_version(eb, None, "app", "v2", make_bundle(tmp_path / "eb.zip"), BUNDLE_BUCKET, fake_timing())


def test_a_bundle_elastic_beanstalk_refuses_fails_the_step(eb):
    """No Elastic Beanstalk can run here: its calls are stubbed."""
    answers_version(eb, "v2", status="FAILED")

    with pytest.raises(ReleaseError, match=r"^version v2 of app is FAILED: Elastic Beanstalk could not use the bundle"):
        release.wait_processed(eb, "app", "v2", fake_timing())


def test_deploy_records_the_version_before_then_waits_for_ready_and_green(eb, tmp_path):
    """No Elastic Beanstalk can run here: its calls are stubbed."""
    answers_version(eb, "v2")
    answers_environment(eb, version="v1")
    expects_update(eb, "v2")
    answers_environment(eb, "Updating", "Grey", "v2")
    answers_environment(eb, "Ready", "Yellow", "v2")  # health settles after the update
    answers_environment(eb, "Ready", "Green", "v2")

    record, now = release.deploy(eb, "app", STAGING, "v2", tmp_path, fake_timing())

    assert record == Record(STAGING, "v1", "v2") == Record.load(tmp_path, STAGING)
    assert (now.version, now.status, now.health, now.url) == ("v2", "Ready", "Green", f"http://{CNAME}")


def test_deploy_refuses_a_version_that_does_not_exist(eb, tmp_path):
    """No Elastic Beanstalk can run here: its calls are stubbed."""
    answers_version(eb, "v9", status=None)

    with pytest.raises(ReleaseError, match=r"^no version v9 in application app: create it first \(make eb-version\)$"):
        release.deploy(eb, "app", STAGING, "v9", tmp_path, fake_timing())
    assert Record.load(tmp_path, STAGING) is None


def test_deploy_refuses_an_environment_already_changing(eb, tmp_path):
    """No Elastic Beanstalk can run here: its calls are stubbed."""
    answers_version(eb, "v2")
    answers_environment(eb, "Updating", "Grey", "v1")

    with pytest.raises(ReleaseError, match=rf"^{STAGING} is Updating and Grey, running v1: another change is under"):
        release.deploy(eb, "app", STAGING, "v2", tmp_path, fake_timing())
    assert Record.load(tmp_path, STAGING) is None  # nothing changed, so nothing to roll back


def test_deploy_refuses_an_environment_that_does_not_exist(eb, tmp_path):
    """No Elastic Beanstalk can run here: its calls are stubbed."""
    answers_version(eb, "v2")
    eb.stubber.add_response("describe_environments", {"Environments": []})

    with pytest.raises(ReleaseError, match=rf"^no environment {STAGING} in application app: create it first"):
        release.deploy(eb, "app", STAGING, "v2", tmp_path, fake_timing())


def test_a_deploy_elastic_beanstalk_undid_fails_with_its_last_error(eb, tmp_path):
    """No Elastic Beanstalk can run here: its calls are stubbed."""
    answers_version(eb, "v2")
    answers_environment(eb, version="v1")
    expects_update(eb, "v2")
    answers_environment(eb, "Updating", "Grey", "v2")
    answers_environment(eb, "Ready", "Green", "v1")  # put back on v1 by Elastic Beanstalk
    answers_events(eb, "Failed to deploy application.", "older")

    with pytest.raises(ReleaseError) as failed:
        release.deploy(eb, "app", STAGING, "v2", tmp_path, fake_timing())

    assert str(failed.value) == (
        f"the deployment of v2 failed: {STAGING} is Ready and Green, running v1; last error: Failed to deploy "
        f"application.; see its events (eb events {STAGING})"
    )


def test_a_deploy_that_never_turns_green_fails_after_the_timeout(eb, tmp_path):
    """No Elastic Beanstalk can run here: its calls are stubbed."""
    answers_version(eb, "v2")
    answers_environment(eb, version="v1")
    expects_update(eb, "v2")
    for _ in range(4):  # at 0, 10, 20 and 30 s of a 30 s wait
        answers_environment(eb, "Ready", "Red", "v2")
    answers_events(eb)

    with pytest.raises(ReleaseError, match=rf"^v2 not Ready and Green after 30 s: {STAGING} is Ready and Red, running"):
        release.deploy(eb, "app", STAGING, "v2", tmp_path, fake_timing(30))


def environment(version: str | None) -> Environment:
    return Environment(STAGING, "Ready", "Red", version, CNAME)


@pytest.mark.parametrize(
    ("record", "now", "to", "reason"),
    [
        (Record(STAGING, "v1", "v2"), "v2", "v1", f"rolling {STAGING} back from v2 to v1"),
        (None, "v2", None, f"nothing to roll back: no deploy to {STAGING} was recorded"),
        (Record(STAGING, "v1", "v2"), "v1", None, f"nothing to roll back: {STAGING} is Ready and Red, running v1, the"),
        (Record(STAGING, "v2", "v2"), "v2", None, f"nothing to roll back: {STAGING} is Ready and Red, running v2, the"),
    ],
    ids=["back-to-previous", "nothing-deployed", "already-put-back", "same-version-twice"],
)
def test_the_rollback_goes_to_the_version_run_before_this_deploy(record, now, to, reason):
    decision = release.rollback_target(record, environment(now))

    assert decision.to == to
    assert decision.reason.startswith(reason)


def test_the_rollback_refuses_when_there_was_no_previous_version():
    with pytest.raises(ReleaseError, match=rf"^cannot roll back {STAGING}: it ran no version before v1; deploy a"):
        release.rollback_target(Record(STAGING, None, "v1"), environment("v1"))


def test_the_rollback_never_undoes_someone_elses_later_deploy():
    with pytest.raises(ReleaseError, match=rf"^cannot roll back {STAGING}: it runs v3, neither v2 \(deployed\) nor v1"):
        release.rollback_target(Record(STAGING, "v1", "v2"), environment("v3"))


def test_rollback_waits_for_the_failed_update_then_deploys_the_previous_version(eb, tmp_path):
    """No Elastic Beanstalk can run here: its calls are stubbed."""
    Record(STAGING, "v1", "v2").save(tmp_path)
    answers_environment(eb, "Updating", "Red", "v2")
    answers_environment(eb, "Ready", "Red", "v2")
    expects_update(eb, "v1")
    answers_environment(eb, "Updating", "Red", "v1")
    answers_environment(eb, "Ready", "Green", "v1")

    decision, now = release.rollback(eb, "app", STAGING, tmp_path, fake_timing())

    assert (decision.to, now.version, now.health) == ("v1", "v1", "Green")


def test_rollback_with_nothing_recorded_changes_nothing(eb, tmp_path):
    """No Elastic Beanstalk can run here: its calls are stubbed; no update_environment is stubbed."""
    answers_environment(eb, version="v1")

    decision, now = release.rollback(eb, "app", STAGING, tmp_path, fake_timing())

    assert decision.to is None and now.version == "v1"


def test_rollback_to_a_named_version_overrides_the_record(eb, tmp_path):
    """No Elastic Beanstalk can run here: its calls are stubbed."""
    Record(STAGING, None, "v2").save(tmp_path)
    answers_environment(eb, version="v2")
    expects_update(eb, "v0")
    answers_environment(eb, "Ready", "Green", "v0")

    decision, now = release.rollback(eb, "app", STAGING, tmp_path, fake_timing(), to="v0")

    assert (decision.to, now.version) == ("v0", "v0")


def test_a_corrupt_record_is_one_line_naming_it(tmp_path):
    Record.path(tmp_path, STAGING).write_text("{not json")

    with pytest.raises(ReleaseError, match=rf"^{tmp_path}/{STAGING}.json is not a deploy record \("):
        Record.load(tmp_path, STAGING)


# -- the command line: settings, exit codes, what it hands the workflow ----------------------------------


def test_a_missing_setting_exits_2_naming_the_variable(capsys):
    code = release.main(["deploy"], environ={"AWS_REGION": "eu-west-1"})

    assert code == release.EXIT_SETTINGS
    assert capsys.readouterr().err == (
        "cannot deploy: the Elastic Beanstalk application is not named: set EB_APPLICATION (or --application)\n"
    )


def test_a_label_elastic_beanstalk_would_refuse_exits_2(capsys):
    environ = {"AWS_REGION": "eu-west-1", "EB_APPLICATION": "app", "EB_ENVIRONMENT": STAGING,
               "EB_VERSION_LABEL": "feature/x"}  # fmt: skip

    assert release.main(["deploy"], environ=environ) == release.EXIT_SETTINGS
    assert "EB_VERSION_LABEL 'feature/x' is not a version label" in capsys.readouterr().err


def git(repo, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_the_default_label_is_the_commit_and_a_changed_tree_has_none(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    git(tmp_path, "add", "Dockerfile")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "one")

    assert release.label_from_git(tmp_path) == f"git-{git(tmp_path, 'rev-parse', 'HEAD')[:12]}"
    (tmp_path / "Dockerfile").write_text("FROM y\n")
    with pytest.raises(SettingError, match=r"the working tree differs from commit \w{12}, so the bundle would not"):
        release.label_from_git(tmp_path)


def test_deploy_hands_the_url_and_previous_version_to_the_workflow(eb, tmp_path, monkeypatch, capsys):
    """No Elastic Beanstalk can run here: its calls are stubbed."""
    monkeypatch.setattr(release, "aws_client", lambda service, region: eb)
    monkeypatch.setattr(release, "RECORDS", tmp_path / "records")
    answers_version(eb, "v2")
    answers_environment(eb, version="v1")
    expects_update(eb, "v2")
    answers_environment(eb, "Ready", "Green", "v2")
    outputs = tmp_path / "github_output"
    environ = {"AWS_DEFAULT_REGION": "eu-west-1", "EB_APPLICATION": "app", "EB_ENVIRONMENT": STAGING,
               "EB_VERSION_LABEL": "v2", "GITHUB_OUTPUT": str(outputs)}  # fmt: skip

    assert release.main(["deploy"], environ=environ) == 0
    assert outputs.read_text() == f"url=http://{CNAME}\nprevious-label=v1\n"
    assert capsys.readouterr().out == f"{STAGING} is Ready and Green, running v2 at http://{CNAME} (before: v1)\n"


def test_a_failed_aws_call_exits_1_with_one_line(eb, monkeypatch, capsys):
    """No Elastic Beanstalk can run here: its calls are stubbed."""
    monkeypatch.setattr(release, "aws_client", lambda service, region: eb)
    message = "User: arn:aws:iam::1:user/ci is not authorized to perform: elasticbeanstalk:DescribeEnvironments"
    eb.stubber.add_client_error("describe_environments", "AccessDenied", message)
    environ = {"AWS_REGION": "eu-west-1", "EB_APPLICATION": "app", "EB_ENVIRONMENT": STAGING}

    assert release.main(["rollback"], environ=environ) == release.EXIT_FAILED
    assert (
        capsys.readouterr().err == f"rollback failed: cannot describe environment {STAGING}: AccessDenied: {message}\n"
    )


def test_missing_credentials_say_where_credentials_come_from():
    error = release.failure("deploy v2 to staging", NoCredentialsError())

    assert str(error).startswith(
        "cannot deploy v2 to staging: no AWS credentials; set AWS_PROFILE, or AWS_ACCESS_KEY_ID"
    )


def test_the_bundle_default_is_what_make_eb_bundle_writes():
    makefile = (REPO / "Makefile").read_text()

    assert f"--out {release.DEFAULT_OUT.relative_to(REPO)}" in makefile
    assert f"--bundle {release.DEFAULT_OUT.relative_to(REPO)}" in makefile
