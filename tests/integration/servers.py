"""Real S3 (SeaweedFS) and real `mlflow server` processes on free loopback ports.

Each is a context manager: the test or fixture that starts one stops it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.processes import free_port

BUCKET = "mlflow"
S3_KEYS = {"AWS_ACCESS_KEY_ID": "integration-key", "AWS_SECRET_ACCESS_KEY": "integration-secret"}
BIN = Path(sys.executable).parent


@dataclass
class Process:
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


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


def _wait(check, server: Process, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{what} exited with {server.process.returncode}:\n{server.output()}")
        try:
            if check():
                return
        except Exception:  # not up yet: refused, reset, or half-started
            pass
        time.sleep(0.25)
    server.stop()
    raise RuntimeError(f"{what} not ready after {timeout} s:\n{server.output()}")


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
        _wait(
            lambda: BUCKET in [b["Name"] for b in server.client().list_buckets()["Buckets"]],
            server,
            "SeaweedFS",
            60,
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
    _wait(lambda: requests.get(f"{server.url}/health", timeout=2).ok, server, "mlflow server", timeout)
