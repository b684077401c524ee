"""Release the service to Elastic Beanstalk: one application version, deployed, smoke-tested, rolled back.

    python -m deploy.release create-version   # make eb-version:  upload the bundle, create EB_VERSION_LABEL
    python -m deploy.release deploy           # make eb-deploy:   EB_ENVIRONMENT to that version, Ready and Green
    python -m deploy.release smoke            # make smoke:       GET /ready, then test.py's ride on /predict
    python -m deploy.release rollback         # make eb-rollback: back to the version the environment ran before

Settings are options or, as CI passes them, variables: EB_APPLICATION, EB_ENVIRONMENT, EB_BUCKET,
EB_VERSION_LABEL (default git-<first 12 hex digits of HEAD>, refused on a tree with uncommitted
changes), AWS_REGION (or AWS_DEFAULT_REGION), SMOKE_URL (default the environment's CNAME).
Credentials come from the standard AWS chain.

`deploy` records, before it changes anything, which version the environment ran
(dist/release/<environment>.json); `rollback` deploys that one again. Exit codes: 0 done, 1 the
step failed (one line on stderr: what failed and what to do), 2 a setting is missing or wrong.
docs/continuous-deployment.md has the whole pipeline.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from deploy.beanstalk import DEFAULT_OUT, REPO

RECORDS = REPO / "dist" / "release"
TEST_PY = REPO / "test.py"
EXIT_FAILED, EXIT_SETTINGS = 1, 2
LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
Sleep = Callable[[float], None]
Clock = Callable[[], float]


class ReleaseError(Exception):
    """A step failed: the message says what failed and what to do (exit code 1)."""


class SettingError(Exception):
    """A setting is missing or wrong: the message names the variable (exit code 2)."""


@dataclass(frozen=True)
class Timing:
    """How long to wait for something, and how often to look: tests pass their own sleep and clock."""

    timeout: float
    interval: float = 10.0
    sleep: Sleep = time.sleep
    clock: Clock = time.monotonic

    def waiting(self) -> Callable[[], bool]:
        """A function that waits one interval and says True, or says False once the time is up."""
        deadline = self.clock() + self.timeout

        def wait_more() -> bool:
            if self.clock() >= deadline:
                return False
            self.sleep(self.interval)
            return True

        return wait_more


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def call(what: str, method: Callable[..., dict[str, Any]], **params: Any) -> dict[str, Any]:
    """One AWS call; any failure becomes a ReleaseError saying what could not be done and why."""
    try:
        return method(**params)
    except (ClientError, BotoCoreError) as error:
        raise failure(what, error) from None


def failure(what: str, error: ClientError | BotoCoreError) -> ReleaseError:
    if isinstance(error, NoCredentialsError):
        return ReleaseError(
            f"cannot {what}: no AWS credentials; set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(in CI: AWS_ROLE_ARN or the two keys as secrets, docs/continuous-deployment.md)"
        )
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        return ReleaseError(f"cannot {what}: {info.get('Code')}: {one_line(info.get('Message', ''))}")
    return ReleaseError(f"cannot {what}: {one_line(error)}")


# -- the application version ---------------------------------------------------------------------


def bundle_key(application: str, label: str) -> str:
    return f"{application}/{label}.zip"


def upload_bundle(s3, bundle: Path, bucket: str, key: str) -> str:
    """Put the bundle at s3://bucket/key unless that object already is this bundle; say which."""
    if not bundle.is_file():
        raise ReleaseError(f"no bundle at {bundle}: build it with make eb-bundle")
    body = bundle.read_bytes()
    digest = hashlib.sha256(body).hexdigest()
    stored = stored_digest(s3, bucket, key)
    if stored == digest:
        return f"s3://{bucket}/{key} already holds this bundle (sha256 {digest[:12]})"
    if stored is not None:
        raise ReleaseError(
            f"s3://{bucket}/{key} holds another bundle (sha256 {stored[:12]}, this one {digest[:12]}): "
            "a version label names one build; name this one with another EB_VERSION_LABEL"
        )
    call(
        f"upload {bundle} to s3://{bucket}/{key}",
        s3.put_object,
        Bucket=bucket,
        Key=key,
        Body=body,
        Metadata={"sha256": digest},
    )
    return f"uploaded {bundle} to s3://{bucket}/{key} (sha256 {digest[:12]}, {len(body) / 1e6:.1f} MB)"


def stored_digest(s3, bucket: str, key: str) -> str | None:
    """The sha256 an earlier upload stored with the object, '' for an object without one, None if absent."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            return None
        raise failure(f"read s3://{bucket}/{key}", error) from None
    except BotoCoreError as error:
        raise failure(f"read s3://{bucket}/{key}", error) from None
    return head.get("Metadata", {}).get("sha256", "")


def find_version(eb, application: str, label: str) -> dict[str, Any] | None:
    found = call(
        f"look up version {label} of {application}",
        eb.describe_application_versions,
        ApplicationName=application,
        VersionLabels=[label],
    )["ApplicationVersions"]
    return found[0] if found else None


def create_version(eb, s3, application: str, label: str, bundle: Path, bucket: str, timing: Timing) -> list[str]:
    """Upload the bundle and make it version `label`, processed (checked) by Elastic Beanstalk; say what was done."""
    key = bundle_key(application, label)
    existing = find_version(eb, application, label)
    if existing is not None:
        source = existing.get("SourceBundle", {})
        if (source.get("S3Bucket"), source.get("S3Key")) != (bucket, key):
            raise ReleaseError(
                f"version {label} of {application} already exists from s3://{source.get('S3Bucket')}/"
                f"{source.get('S3Key')}, not s3://{bucket}/{key}: name this build with another EB_VERSION_LABEL"
            )
    done = [upload_bundle(s3, bundle, bucket, key)]
    if existing is None:
        call(
            f"create version {label} of {application}",
            eb.create_application_version,
            ApplicationName=application,
            VersionLabel=label,
            Process=True,
            Description=f"{bundle.name} from {key}"[:200],
            SourceBundle={"S3Bucket": bucket, "S3Key": key},
        )
        done.append(f"created version {label} of {application}")
    wait_processed(eb, application, label, timing)
    return done + [f"version {label} is processed"]


def wait_processed(eb, application: str, label: str, timing: Timing) -> None:
    """Wait until Elastic Beanstalk has checked the version's bundle (PROCESSED); fail if it refused it."""
    wait_more = timing.waiting()
    while True:
        version = find_version(eb, application, label)
        status = version["Status"] if version else "missing"
        if status == "PROCESSED":
            return
        if status in {"FAILED", "missing"}:
            raise ReleaseError(
                f"version {label} of {application} is {status}: Elastic Beanstalk could not use the bundle; "
                f"see the application's events (aws elasticbeanstalk describe-events --application-name {application})"
            )
        if not wait_more():
            raise ReleaseError(f"version {label} of {application} still {status} after {timing.timeout:.0f} s")


# -- environments --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Environment:
    """What Elastic Beanstalk says of an environment, as far as a release needs it."""

    name: str
    status: str  # Launching, Updating, Ready, Terminating, Terminated
    health: str  # Green, Yellow, Red, Grey
    version: str | None  # None: the environment runs no application version yet
    cname: str | None

    @property
    def url(self) -> str | None:
        return f"http://{self.cname}" if self.cname else None

    def __str__(self) -> str:
        return f"{self.name} is {self.status} and {self.health}, running {self.version or 'no version'}"


def describe_environment(eb, application: str, name: str) -> Environment:
    found = call(
        f"describe environment {name}",
        eb.describe_environments,
        ApplicationName=application,
        EnvironmentNames=[name],
        IncludeDeleted=False,
    )["Environments"]
    if not found:
        raise ReleaseError(
            f"no environment {name} in application {application}: create it first "
            "(docs/continuous-deployment.md, 'One-time set-up'), or correct EB_ENVIRONMENT"
        )
    env = found[0]
    return Environment(name, env["Status"], env.get("Health", "Grey"), env.get("VersionLabel"), env.get("CNAME"))


def latest_error(eb, application: str, name: str, since: datetime) -> str:
    """The newest ERROR (or worse) event of the environment since `since`, as '; last error: ...'."""
    try:
        events = eb.describe_events(
            ApplicationName=application, EnvironmentName=name, StartTime=since, Severity="ERROR", MaxRecords=5
        )["Events"]
    except (ClientError, BotoCoreError):  # the events only explain; the failure is reported anyway
        return ""
    return f"; last error: {one_line(events[0]['Message'])}" if events else ""


def wait_deployed(eb, application: str, name: str, label: str, since: datetime, timing: Timing) -> Environment:
    """Wait until the environment is Ready and Green on `label`; fail when it settles on another version."""
    wait_more, left_ready = timing.waiting(), False
    while True:
        now = describe_environment(eb, application, name)
        left_ready = left_ready or now.status != "Ready" or now.version == label
        if now.status == "Ready" and now.version == label and now.health == "Green":
            return now
        if now.status == "Ready" and now.version != label and left_ready:
            raise ReleaseError(
                f"the deployment of {label} failed: {now}{latest_error(eb, application, name, since)}; "
                f"see its events (eb events {name})"
            )
        if now.status.startswith("Terminat"):
            raise ReleaseError(f"{now}: it is going away; deploy to another environment")
        if not wait_more():
            raise ReleaseError(
                f"{label} not Ready and Green after {timing.timeout:.0f} s: {now}"
                f"{latest_error(eb, application, name, since)}; see its health (eb health {name})"
            )


@dataclass(frozen=True)
class Record:
    """What `deploy` changed: the environment, the version it ran before (None: none), the one deployed."""

    environment: str
    previous: str | None
    deployed: str

    @staticmethod
    def path(records: Path, environment: str) -> Path:
        return records / f"{environment}.json"

    def save(self, records: Path) -> Path:
        path = self.path(records, self.environment)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, records: Path, environment: str) -> Record | None:
        path = cls.path(records, environment)
        if not path.is_file():
            return None
        try:
            return cls(**json.loads(path.read_text()))
        except (ValueError, TypeError) as error:
            raise ReleaseError(
                f"{path} is not a deploy record ({one_line(error)}): name the version, EB_ROLLBACK_TO"
            ) from None


def deploy(eb, application: str, name: str, label: str, records: Path, timing: Timing) -> tuple[Record, Environment]:
    """Record what the environment runs, deploy `label` to it, and wait until it is Ready and Green."""
    if find_version(eb, application, label) is None:
        raise ReleaseError(f"no version {label} in application {application}: create it first (make eb-version)")
    before = describe_environment(eb, application, name)
    if before.status != "Ready":
        raise ReleaseError(f"{before}: another change is under way; wait until it is Ready, then run again")
    record = Record(name, before.version, label)
    record.save(records)
    return record, update_and_wait(eb, application, name, label, timing)


def update_and_wait(eb, application: str, name: str, label: str, timing: Timing) -> Environment:
    since = datetime.now(UTC) - timedelta(minutes=1)  # a minute's grace for this machine's clock
    call(
        f"deploy {label} to {name}",
        eb.update_environment,
        ApplicationName=application,
        EnvironmentName=name,
        VersionLabel=label,
    )
    return wait_deployed(eb, application, name, label, since, timing)


# -- rolling back --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rollback:
    """What to do: deploy `to`, or nothing (`to` None) for the reason given."""

    to: str | None
    reason: str


def rollback_target(record: Record | None, now: Environment) -> Rollback:
    """The rule: go back to the version the environment ran before this run's deploy, if it changed it.

    No record: this run deployed nothing here. The environment already on the previous version
    (Elastic Beanstalk put it back itself, or the same version was deployed twice): nothing to do.
    On the version deployed: back to the previous one, unless it had none. On any third version
    someone else deployed since: refuse rather than undo their deploy.
    """
    if record is None:
        return Rollback(None, f"nothing to roll back: no deploy to {now.name} was recorded; {now}")
    if now.version == record.previous:
        return Rollback(None, f"nothing to roll back: {now}, the version it ran before {record.deployed}")
    if now.version != record.deployed:
        raise ReleaseError(
            f"cannot roll back {now.name}: it runs {now.version or 'no version'}, neither {record.deployed} "
            f"(deployed) nor {record.previous or 'no version'} (before); someone else deployed since: "
            "choose the version yourself with make eb-rollback EB_ROLLBACK_TO=<label>"
        )
    if record.previous is None:
        raise ReleaseError(
            f"cannot roll back {now.name}: it ran no version before {record.deployed}; deploy a known-good "
            "version with make eb-rollback EB_ROLLBACK_TO=<label>, or terminate the environment"
        )
    return Rollback(record.previous, f"rolling {now.name} back from {record.deployed} to {record.previous}")


def rollback(
    eb, application: str, name: str, records: Path, timing: Timing, to: str | None = None
) -> tuple[Rollback, Environment]:
    """Wait out any change under way, then deploy the previous version (or `to`) and wait for Ready and Green."""
    now = wait_settled(eb, application, name, timing)
    if to:
        decision = Rollback(to, f"rolling {name} back from {now.version or 'no version'} to {to}, as asked")
    else:
        decision = rollback_target(Record.load(records, name), now)
    if decision.to is None or decision.to == now.version:
        return decision, now
    print(decision.reason, file=sys.stderr)
    return decision, update_and_wait(eb, application, name, decision.to, timing)


def wait_settled(eb, application: str, name: str, timing: Timing) -> Environment:
    """The environment once no change is under way (Ready): a failed deploy may still be updating."""
    wait_more = timing.waiting()
    while (now := describe_environment(eb, application, name)).status != "Ready":
        if now.status.startswith("Terminat"):
            raise ReleaseError(f"{now}: nothing to roll back to there")
        if not wait_more():
            raise ReleaseError(f"{now} after {timing.timeout:.0f} s: roll back once it is Ready (make eb-rollback)")
    return now


# -- smoke test ----------------------------------------------------------------------------------


def ready_problem(base_url: str, timeout: float = 5) -> str | None:
    """None if GET <base_url>/ready answers 200 with status ready; else what it answered instead."""
    url = f"{base_url}/ready"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status, body = response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return f"GET {url} answered {error.code}: {one_line(error.read().decode(errors='replace'))[:200]}"
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        return f"cannot reach {url}: {one_line(getattr(error, 'reason', error))}"
    return (
        None if is_ready_answer(status, body) else f"GET {url} answered {status} but not ready: {one_line(body)[:200]}"
    )


def is_ready_answer(status: int, body: str) -> bool:
    """What /ready answers once the model is loaded and self-checked: 200 and {"status": "ready", ...}."""
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    return status == 200 and isinstance(answer, dict) and answer.get("status") == "ready"


def smoke(base_url: str, timing: Timing) -> str:
    """/ready until it is ready (or the time is up), then test.py's ride on /predict; return its answer."""
    base_url = base_url.rstrip("/")
    wait_more = timing.waiting()
    while (problem := ready_problem(base_url)) is not None:
        if not wait_more():
            raise ReleaseError(f"not ready after {timing.timeout:.0f} s: {problem}")
    predict = f"{base_url}/predict"
    done = subprocess.run([sys.executable, str(TEST_PY), predict], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise ReleaseError(
            f"python test.py {predict} exited {done.returncode}: {one_line(done.stderr or done.stdout)[:300]}"
        )
    return done.stdout.strip()


# -- settings and the command line ---------------------------------------------------------------


class Setting(NamedTuple):
    variable: str
    meaning: str


SETTINGS = {  # option: the variable that sets it, and what it is
    "application": Setting("EB_APPLICATION", "the Elastic Beanstalk application"),
    "environment": Setting("EB_ENVIRONMENT", "the Elastic Beanstalk environment"),
    "bucket": Setting("EB_BUCKET", "the S3 bucket for source bundles"),
    "label": Setting("EB_VERSION_LABEL", "the application version label"),
    "region": Setting("AWS_REGION", "the AWS region"),
    "url": Setting("SMOKE_URL", "the service's base URL"),
    "to": Setting("EB_ROLLBACK_TO", "the version label to roll back to"),
}
STEPS = {  # step: (its options, what it does)
    "create-version": (("application", "bucket", "label", "region"), "upload the bundle, create the version"),
    "deploy": (("application", "environment", "label", "region"), "deploy the version, wait for Ready and Green"),
    "smoke": (("url", "application", "environment", "region"), "GET /ready, then test.py's ride on /predict"),
    "rollback": (("application", "environment", "region", "to"), "back to the version run before the deploy"),
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = top.add_subparsers(dest="step", required=True)
    for step, (options, about) in STEPS.items():
        sub = steps.add_parser(step, help=about)
        for option in options:
            variable, what = SETTINGS[option]
            sub.add_argument(f"--{option}", help=f"{what} (default ${variable})")
        sub.add_argument("--timeout", type=float, help="seconds to wait (default 300 for smoke, else 1200)")
    steps.choices["create-version"].add_argument("--bundle", type=Path, default=DEFAULT_OUT)
    return top


def with_environment(args: argparse.Namespace, environ: Mapping[str, str]) -> argparse.Namespace:
    """Fill each option not given from its variable (AWS_DEFAULT_REGION too, as boto3 reads it)."""
    for option in STEPS[args.step][0]:
        if not getattr(args, option):
            fallback = environ.get("AWS_DEFAULT_REGION", "") if option == "region" else ""
            setattr(args, option, (environ.get(SETTINGS[option].variable, "") or fallback).strip() or None)
    args.github_output = environ.get("GITHUB_OUTPUT")
    return args


def need(args: argparse.Namespace, option: str) -> str:
    """A setting the step cannot do without; a missing one stops it naming the variable."""
    value = getattr(args, option)
    if not value:
        variable, what = SETTINGS[option]
        raise SettingError(f"{what} is not named: set {variable} (or --{option})")
    return value


def version_label(args: argparse.Namespace) -> str:
    """EB_VERSION_LABEL, or git-<12 hex digits of HEAD> when the tracked files are as committed."""
    label = args.label or label_from_git(REPO)
    if not LABEL.match(label):
        raise SettingError(f"EB_VERSION_LABEL {label!r} is not a version label: 1 to 100 of A-Z a-z 0-9 . _ -")
    return label


def label_from_git(repo: Path) -> str:
    git = ["git", "-C", str(repo)]
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    if head.returncode != 0:
        raise SettingError(f"no version label: {repo} is not a git checkout; set EB_VERSION_LABEL")
    changed = subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True
    ).stdout
    if changed.strip():
        raise SettingError(
            f"no version label: the working tree differs from commit {head.stdout.strip()[:12]}, so the bundle "
            "would not be that commit; commit first, or set EB_VERSION_LABEL"
        )
    return f"git-{head.stdout.strip()[:12]}"


def github_output(args: argparse.Namespace, **values: str) -> None:
    """Hand values to the workflow's later steps and jobs through $GITHUB_OUTPUT (a no-op elsewhere)."""
    if args.github_output:
        with open(args.github_output, "a") as out:
            out.writelines(f"{key.replace('_', '-')}={value}\n" for key, value in values.items())


def aws_client(service: str, region: str):
    import boto3

    return boto3.client(service, region_name=region)


def beanstalk(args: argparse.Namespace):
    return aws_client("elasticbeanstalk", need(args, "region"))


def waiting(args: argparse.Namespace, default: float) -> Timing:
    return Timing(args.timeout or default)


def step_create_version(args: argparse.Namespace) -> str:
    application, bucket, label = need(args, "application"), need(args, "bucket"), version_label(args)
    eb, s3 = beanstalk(args), aws_client("s3", args.region)
    done = create_version(eb, s3, application, label, args.bundle, bucket, waiting(args, 1200))
    github_output(args, label=label)
    return "\n".join(done)


def step_deploy(args: argparse.Namespace) -> str:
    application, name, label = need(args, "application"), need(args, "environment"), version_label(args)
    record, now = deploy(beanstalk(args), application, name, label, RECORDS, waiting(args, 1200))
    github_output(args, url=now.url or "", previous_label=record.previous or "")
    return f"{now} at {now.url} (before: {record.previous or 'no version'})"


def step_smoke(args: argparse.Namespace) -> str:
    url = args.url
    if not url:
        application, name = need(args, "application"), need(args, "environment")
        url = describe_environment(beanstalk(args), application, name).url
        if url is None:
            raise ReleaseError(f"{name} has no CNAME yet: set SMOKE_URL to its address")
    return smoke(url, Timing(args.timeout or 300, interval=5))


def step_rollback(args: argparse.Namespace) -> str:
    application, name = need(args, "application"), need(args, "environment")
    decision, now = rollback(beanstalk(args), application, name, RECORDS, waiting(args, 1200), to=args.to)
    return f"{decision.reason}: {now}" if decision.to else decision.reason


RUN = {"create-version": step_create_version, "deploy": step_deploy, "smoke": step_smoke, "rollback": step_rollback}


def main(argv: list[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    args = with_environment(parser().parse_args(argv), environ)
    try:
        print(RUN[args.step](args))
    except SettingError as error:
        print(f"cannot {args.step}: {error}", file=sys.stderr)
        return EXIT_SETTINGS
    except ReleaseError as error:
        print(f"{args.step} failed: {error}", file=sys.stderr)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
