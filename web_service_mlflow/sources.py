"""Where a model comes from: a tracking server, the model registry, S3, or a local folder.

Each source resolves what to serve into a run ID (and registry version), then downloads that
run's `model/` and `preprocessor/` artifacts into a folder. Failures come out as either
`TransientError` (worth retrying: the server is down, slow or overloaded) or `ModelLoadError`
(permanent: unknown run, no model, access denied), each naming the source and the run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from web_service.errors import ModelLoadError
from web_service_mlflow.layout import MODEL_ARTIFACT, PREPROCESSOR_ARTIFACT
from web_service_mlflow.retry import TransientError

MODEL_URI_PATTERN = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))")
# Our own retry loop decides how long to wait; MLflow's default is 7 retries with backoff.
MLFLOW_CLIENT_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}
TRANSIENT_MLFLOW_CODES = {
    "TEMPORARILY_UNAVAILABLE",
    "DEADLINE_EXCEEDED",
    "REQUEST_LIMIT_EXCEEDED",
    "RESOURCE_EXHAUSTED",
}
DENIED_MLFLOW_CODES = {"PERMISSION_DENIED", "UNAUTHENTICATED", "CUSTOMER_UNAUTHORIZED"}
DENIED_S3_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
}


@dataclass(frozen=True)
class ResolvedModel:
    """What a source resolved to: the run, and the registry version when there is one."""

    run_id: str
    registry_version: str | None = None  # "<name>/<version>"

    @property
    def model_version(self) -> str:
        """What /predict reports: the run ID, plus the registry version that named it."""
        if self.registry_version is None:
            return self.run_id
        return f"{self.run_id} (models:/{self.registry_version})"


class Source(Protocol):
    description: str

    def resolve(self) -> ResolvedModel: ...

    def download(self, model: ResolvedModel, dest: Path) -> None:
        """Fill `dest/model` (and `dest/preprocessor` when the run has one)."""


class TrackingSource:
    """`runs:/<RUN_ID>/model` through an MLflow tracking server (or any tracking URI)."""

    def __init__(self, tracking_uri: str, run_id: str) -> None:
        self.tracking_uri, self.run_id = tracking_uri, run_id
        self.description = f"tracking server {tracking_uri}, run {run_id}"

    def resolve(self) -> ResolvedModel:
        with failures(self.description):
            _client(self.tracking_uri).get_run(self.run_id)
        return ResolvedModel(self.run_id)

    def download(self, model: ResolvedModel, dest: Path) -> None:
        with failures(self.description):
            names = {item.path for item in _client(self.tracking_uri).list_artifacts(model.run_id)}
            if MODEL_ARTIFACT not in names:
                raise ModelLoadError(
                    f"{self.description}: the run has no '{MODEL_ARTIFACT}' artifact "
                    f"(it has {sorted(names)}); train with web_service_mlflow.train, which logs it there"
                )
            for name in (MODEL_ARTIFACT, PREPROCESSOR_ARTIFACT):
                if name in names:
                    _download_run_artifact(self.tracking_uri, model.run_id, name, dest)


class RegistrySource:
    """`models:/<name>@<alias>` or `models:/<name>/<version>` through the model registry."""

    def __init__(self, tracking_uri: str, model_uri: str) -> None:
        match = MODEL_URI_PATTERN.fullmatch(model_uri)
        if match is None:
            raise ModelLoadError(f"MODEL_URI={model_uri!r} is not models:/<name>@<alias> or models:/<name>/<version>")
        self.tracking_uri, self.model_uri = tracking_uri, model_uri
        self.name, self.alias, self.version = match["name"], match["alias"], match["version"]
        self.description = f"model registry {tracking_uri}, {model_uri}"
        self._source_uri: str | None = None

    def resolve(self) -> ResolvedModel:
        with failures(self.description):
            client = _client(self.tracking_uri)
            if self.alias:
                found = client.get_model_version_by_alias(self.name, self.alias)
            else:
                found = client.get_model_version(self.name, self.version)
        if not found.run_id:
            raise ModelLoadError(f"{self.description}: version {found.version} is not linked to a run")
        self._source_uri = found.source
        return ResolvedModel(found.run_id, f"{self.name}/{found.version}")

    def download(self, model: ResolvedModel, dest: Path) -> None:
        import mlflow.artifacts

        with failures(self.description):
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{model.registry_version}",
                dst_path=str(dest / MODEL_ARTIFACT),
                tracking_uri=self.tracking_uri,
            )
            names = {item.path for item in _client(self.tracking_uri).list_artifacts(model.run_id)}
            if PREPROCESSOR_ARTIFACT in names:
                _download_run_artifact(self.tracking_uri, model.run_id, PREPROCESSOR_ARTIFACT, dest)


class S3Source:
    """`<root>/<RUN_ID>/artifacts/...` straight from S3 with boto3: no tracking server at all.

    `root` is `s3://bucket/<prefix>/<experiment id>`, or the artifact root above the experiments,
    in which case the run's experiment is found by listing.
    """

    def __init__(self, root: str, run_id: str) -> None:
        parsed = urlparse(root)
        self.bucket, self.prefix = parsed.netloc, parsed.path.strip("/")
        self.root, self.run_id = root.rstrip("/"), run_id
        self.description = f"S3 {self.root}, run {run_id}"
        self._client = None

    def resolve(self) -> ResolvedModel:
        with failures(self.description):
            self._run_prefix()
        return ResolvedModel(self.run_id)

    def download(self, model: ResolvedModel, dest: Path) -> None:
        with failures(self.description):
            artifacts = f"{self._run_prefix()}/artifacts/"
            for name in (MODEL_ARTIFACT, PREPROCESSOR_ARTIFACT):
                for key in self._keys(f"{artifacts}{name}/"):
                    target = dest / key[len(artifacts) :]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    self.client.download_file(self.bucket, key, str(target))

    @property
    def client(self):
        if self._client is None:
            self._client = _s3_client()
        return self._client

    def _run_prefix(self) -> str:
        """`<prefix>/<RUN_ID>` or `<prefix>/<experiment>/<RUN_ID>`, whichever holds the model."""
        base = f"{self.prefix}/" if self.prefix else ""
        candidates = [f"{base}{self.run_id}"] + [f"{experiment}{self.run_id}" for experiment in self._subfolders(base)]
        for candidate in candidates:
            if self._exists(f"{candidate}/artifacts/{MODEL_ARTIFACT}/MLmodel"):
                return candidate
        raise ModelLoadError(
            f"{self.description}: no {MODEL_ARTIFACT}/MLmodel under {self.root}/{self.run_id}/artifacts "
            f"nor {self.root}/<experiment id>/{self.run_id}/artifacts; check RUN_ID and MODEL_ARTIFACT_ROOT"
        )

    def _exists(self, key: str) -> bool:
        return bool(self.client.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1).get("KeyCount"))

    def _subfolders(self, base: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base, Delimiter="/")
        return [common["Prefix"] for page in pages for common in page.get("CommonPrefixes", [])]

    def _keys(self, prefix: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


class LocalSource:
    """`<root>/[<experiment id>/]<RUN_ID>/artifacts/model` on this machine's disk."""

    def __init__(self, root: Path, run_id: str) -> None:
        self.root, self.run_id = root, run_id
        self.description = f"local store {root}, run {run_id}"

    def resolve(self) -> ResolvedModel:
        self.run_dir()
        return ResolvedModel(self.run_id)

    def run_dir(self) -> Path:
        """The run's `artifacts` folder."""
        pattern = f"{MODEL_ARTIFACT}/MLmodel"
        for candidate in [self.root / self.run_id, *sorted(self.root.glob(f"*/{self.run_id}"))]:
            if (candidate / "artifacts" / pattern).is_file():
                return candidate / "artifacts"
        raise ModelLoadError(
            f"{self.description}: no model (looked for {self.root}/[<experiment id>/]{self.run_id}"
            f"/artifacts/{pattern}); check RUN_ID, or set MODEL_ARTIFACT_ROOT or MLFLOW_TRACKING_URI "
            "to where the run lives"
        )


def _client(tracking_uri: str):
    for name, value in MLFLOW_CLIENT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _download_run_artifact(tracking_uri: str, run_id: str, name: str, dest: Path) -> None:
    import mlflow.artifacts

    mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=name, dst_path=str(dest), tracking_uri=tracking_uri
    )


def _s3_client():
    import boto3
    from botocore.config import Config

    # MLflow's variable first, as MLflow itself honours it; boto3 reads AWS_ENDPOINT_URL_S3 itself.
    endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None
    config = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 1, "mode": "standard"})
    # A session of its own reads the credential chain as the environment stands now.
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)


@contextmanager
def failures(where: str) -> Iterator[None]:
    """Turn MLflow, boto3 and network errors into TransientError or ModelLoadError naming `where`."""
    try:
        yield
    except (ModelLoadError, TransientError):
        raise
    except Exception as error:
        raise classify(error, where) from error


def classify(error: BaseException, where: str) -> Exception:
    """Decide whether a failure is worth retrying, and say what it was."""
    if _network_failure(error):
        return TransientError(f"{where}: cannot connect ({_short(error)})")
    s3 = _s3_error(error)
    if s3 is not None:
        code, status = s3
        if code in DENIED_S3_CODES or status in (401, 403):
            return ModelLoadError(
                f"{where}: access denied ({code}); the credentials need s3:GetObject and s3:ListBucket"
            )
        if status == 404 or code in {"NoSuchBucket", "NoSuchKey"}:
            return ModelLoadError(f"{where}: not found ({code})")
        if status >= 500 or status == 429 or code in {"SlowDown", "Throttling", "RequestTimeout"}:
            return TransientError(f"{where}: S3 answered {status} {code}")
        return ModelLoadError(f"{where}: S3 refused the request ({status} {code})")
    if type(error).__name__ == "NoCredentialsError":
        return ModelLoadError(f"{where}: no AWS credentials found (environment, profile or instance role)")
    code = getattr(error, "error_code", None)
    if code == "RESOURCE_DOES_NOT_EXIST":
        return ModelLoadError(f"{where}: not found ({_short(error)}); check RUN_ID / MODEL_URI and MLFLOW_TRACKING_URI")
    if code in DENIED_MLFLOW_CODES:
        return ModelLoadError(f"{where}: access denied ({_short(error)}); check MLFLOW_TRACKING_TOKEN or credentials")
    if code in TRANSIENT_MLFLOW_CODES or (code == "INTERNAL_ERROR" and "API request to" in str(error)):
        return TransientError(f"{where}: {_short(error)}")
    return ModelLoadError(f"{where}: {_short(error)}")


def _chain(error: BaseException):
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _network_failure(error: BaseException) -> bool:
    network_names = {
        "ConnectionError",
        "Timeout",
        "ConnectTimeout",
        "ReadTimeout",
        "RetryError",
        "MaxRetryError",
        "NewConnectionError",
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "ProtocolError",
    }
    return any(
        isinstance(item, (ConnectionError, TimeoutError)) or type(item).__name__ in network_names
        for item in _chain(error)
    )


def _s3_error(error: BaseException) -> tuple[str, int] | None:
    for item in _chain(error):
        response = getattr(item, "response", None)
        if isinstance(response, dict) and "Error" in response:
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            return str(response["Error"].get("Code", "")), int(status)
    return None


def _short(error: BaseException) -> str:
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    # A REST error reads "RESOURCE_DOES_NOT_EXIST: Run ... not found"; the code adds nothing.
    return re.sub(r"^[A-Z_]+: ", "", text.splitlines()[0])[:300]
