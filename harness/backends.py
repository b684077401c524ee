"""Real S3 (SeaweedFS) and real `mlflow server` processes on free loopback ports.

Each is a context manager: whoever starts one stops it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from harness.processes import free_port, stop, wait_answering

BUCKET = "mlflow"
S3_KEYS = {"AWS_ACCESS_KEY_ID": "integration-key", "AWS_SECRET_ACCESS_KEY": "integration-secret"}
BIN = Path(sys.executable).parent


@dataclass
class Process:
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        stop(self.process, timeout=20)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_answering(self, answers, name: str, timeout: float) -> None:
        """Wait until `answers()` is true; stop the process and fail with its log if it never is."""
        try:
            wait_answering(self.process, answers, name, self.output, timeout, every=0.25)
        except Exception:
            self.stop()
            raise


@dataclass
class S3Server(Process):
    endpoint: str

    @property
    def env(self) -> dict[str, str]:
        """What a client needs to reach it, as MLflow and boto3 read it."""
        return S3_KEYS | {"MLFLOW_S3_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": "us-east-1"}

    def client(self, **overrides):
        import boto3

        keys = {
            "aws_access_key_id": S3_KEYS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": S3_KEYS["AWS_SECRET_ACCESS_KEY"],
        }
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", **(keys | overrides))


@dataclass
class TrackingServer(Process):
    url: str


def _start(command: list[str], log: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    with log.open("w") as sink:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT)


@contextmanager
def s3_server(workdir: Path) -> Iterator[S3Server]:
    """SeaweedFS `weed mini` with one bucket and one key pair, on loopback only."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [
        str(BIN / "weed"), "mini", f"-dir={workdir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-master.telemetry=false", "-webdav=false", "-admin.ui=false", f"-s3.port={port}",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
    ]  # fmt: skip
    env = os.environ | S3_KEYS | {"S3_BUCKET": BUCKET}
    server = S3Server(
        _start(command, workdir / "weed.log", env, workdir), workdir / "weed.log", f"http://127.0.0.1:{port}"
    )
    try:
        server.wait_answering(
            lambda: BUCKET in [b["Name"] for b in server.client().list_buckets()["Buckets"]], "SeaweedFS", 60
        )
        yield server
    finally:
        server.stop()


def tracking_command(workdir: Path, port: int) -> list[str]:
    return [
        str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
        "--artifacts-destination", f"s3://{BUCKET}/", "--serve-artifacts",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip


@contextmanager
def tracking_server(
    workdir: Path, s3: S3Server, port: int | None = None, wait: bool = True
) -> Iterator[TrackingServer]:
    """`mlflow server` with a sqlite backend in `workdir` and artifacts proxied to S3."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    env = os.environ | s3.env | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = workdir / f"mlflow-{port}.log"
    server = TrackingServer(_start(tracking_command(workdir, port), log, env, workdir), log, f"http://127.0.0.1:{port}")
    try:
        if wait:
            wait_tracking(server)
        yield server
    finally:
        server.stop()


def wait_tracking(server: TrackingServer, timeout: float = 120) -> None:
    server.wait_answering(lambda: requests.get(f"{server.url}/health", timeout=2).ok, "mlflow server", timeout)
