"""Where a model comes from: a tracking server, the model registry, S3, or a local folder.

Each source resolves what the settings name into one model (`ResolvedModel`: its run, registry
version or logged-model ID, and where its files are), then downloads that model's folder and its
run's `preprocessor/` and `reference/` artifacts into a folder. Failures come out as either
`TransientError` (worth retrying: the server is down, slow or overloaded) or `ModelLoadError`
(permanent: unknown run, no model, access denied), each naming the source and the run.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from web_service.environment import env_str, read
from web_service.errors import ModelLoadError
from web_service.redact import redact, redact_uri
from web_service_mlflow.layout import MODEL_ARTIFACT, PREPROCESSOR_ARTIFACT, REFERENCE_ARTIFACT
from web_service_mlflow.retry import TransientError
from web_service_mlflow.runmodels import RunModel, choose_model
from web_service_mlflow.stores import ArtifactStore, FolderStore, Found, find_logged_model, find_run_model

MODEL_URI_PATTERN = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))")
# Our own retry loop decides how long to wait; MLflow's default is 7 retries with backoff.
MLFLOW_CLIENT_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": 0, "MLFLOW_HTTP_REQUEST_TIMEOUT": 15}
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
class Wanted:
    """What the settings name: a run (and perhaps which of its models), or one logged model."""

    run_id: str | None = None
    artifact_path: str | None = None  # MODEL_ARTIFACT_PATH, or the path of runs:/<RUN_ID>/<path>
    model_id: str | None = None  # models:/m-<id>

    def cache_key(self) -> str | None:
        """The cache entry that answers for this without asking any server: artifacts never change."""
        if self.model_id:
            return self.model_id
        if self.run_id and self.artifact_path:
            return f"{self.run_id}-{_digest(self.artifact_path)}"
        return self.run_id


@dataclass(frozen=True)
class ResolvedModel:
    """What a source resolved to: the run, and the registry version or logged model when named so."""

    run_id: str | None
    registry_version: str | None = None  # "<name>/<version>"
    artifact_path: str | None = None  # the run's model the settings named, when they named one
    model_id: str | None = None  # the logged model MODEL_URI=models:/m-<id> named
    location: str | None = None  # where the model folder is, in the source's terms
    preprocessor: str | None = None  # where the run's preprocessor folder is, if it has one
    key: str | None = None  # its cache entry
    reference: str | None = None  # where the run's reference profile folder is, if it has one

    @property
    def model_version(self) -> str:
        """What /predict reports: the run ID, plus what named the model when more than the run did."""
        base = self.run_id or ""
        if self.artifact_path:
            base = f"{base}/{self.artifact_path}"
        named = self.registry_version or self.model_id
        if named is None:
            return base
        return f"{base} (models:/{named})" if base else f"models:/{named}"

    def describe(self) -> dict[str, str | None]:
        return {"run_id": self.run_id, "artifact_path": self.artifact_path, "model_id": self.model_id,
                "registry_version": self.registry_version, "location": self.location,
                "reference": self.reference}  # fmt: skip


class Source(Protocol):
    description: str

    def prepare(self) -> None:
        """Do the slow local work (importing MLflow) before MODEL_LOAD_TIMEOUT starts counting."""

    def resolve(self) -> ResolvedModel: ...

    def download(self, model: ResolvedModel, dest: Path) -> None:
        """Fill `dest/model` (and `dest/preprocessor`, `dest/reference` when the run has them)."""

    def download_reference(self, model: ResolvedModel, dest: Path) -> None:
        """Fill `dest/reference` alone: for a cache entry made before runs carried one."""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class _ThroughTrackingServer:
    """What a source that MLflow's client reads from a tracking server does once it has resolved."""

    tracking_uri: str
    description: str

    def prepare(self) -> None:
        _import_mlflow()

    def download(self, model: ResolvedModel, dest: Path) -> None:
        with failures(self.description):
            _download_model(self.tracking_uri, model, dest)

    def download_reference(self, model: ResolvedModel, dest: Path) -> None:
        with failures(self.description):
            _download_run_artifact(self.tracking_uri, model.run_id, model.reference, dest)


class TrackingSource(_ThroughTrackingServer):
    """`runs:/<RUN_ID>/<path>` (or `models:/m-<id>`) through an MLflow tracking server, MLflow resolving."""

    def __init__(self, tracking_uri: str, wanted: Wanted) -> None:
        self.tracking_uri, self.wanted = tracking_uri, wanted
        named = f"logged model {wanted.model_id}" if wanted.model_id else f"run {wanted.run_id}"
        self.description = f"tracking server {redact_uri(tracking_uri)}, {named}"

    def resolve(self) -> ResolvedModel:
        with failures(self.description):
            client = _client(self.tracking_uri)
            if self.wanted.model_id:
                logged = client.get_logged_model(self.wanted.model_id)
                run_id, model = logged.source_run_id, _logged(logged)
            else:
                run = client.get_run(self.wanted.run_id)
                run_id = run.info.run_id
                models = _artifact_models(client, run_id) + _logged_models(client, run)
                model = choose_model(models, self.wanted.artifact_path, self.description)
            preprocessor, reference = _run_folders(client, run_id)
        return ResolvedModel(run_id, None, self.wanted.artifact_path, self.wanted.model_id, model.location,
                             preprocessor, self.wanted.cache_key(), reference)  # fmt: skip


class RegistrySource(_ThroughTrackingServer):
    """`models:/<name>@<alias>` or `models:/<name>/<version>` through the model registry."""

    def __init__(self, tracking_uri: str, model_uri: str) -> None:
        match = MODEL_URI_PATTERN.fullmatch(model_uri)
        if match is None:
            raise ModelLoadError(
                f"MODEL_URI={redact_uri(model_uri)!r} is not models:/<name>@<alias> or models:/<name>/<version>"
            )
        self.tracking_uri, self.model_uri = tracking_uri, model_uri
        self.name, self.alias, self.version = match["name"], match["alias"], match["version"]
        self.description = f"model registry {redact_uri(tracking_uri)}, {redact_uri(model_uri)}"

    def resolve(self) -> ResolvedModel:
        with failures(self.description):
            client = _client(self.tracking_uri)
            if self.alias:
                found = client.get_model_version_by_alias(self.name, self.alias)
            else:
                found = client.get_model_version(self.name, self.version)
            if not found.run_id:
                raise ModelLoadError(f"{self.description}: version {found.version} is not linked to a run")
            preprocessor, reference = _run_folders(client, found.run_id)
        # A version never changes; one run may hold several registered models, so the key is the version's source.
        model_id = getattr(found, "model_id", None)
        key = model_id or f"{found.run_id}-{_digest(str(found.source))}"
        return ResolvedModel(found.run_id, f"{self.name}/{found.version}", None, None,
                             f"models:/{self.name}/{found.version}", preprocessor, key, reference)  # fmt: skip

    def aliased_version(self) -> str:
        """`<name>/<version>`: where the alias points now; one REST call (the hot swap's poll)."""
        with failures(self.description):
            found = _client(self.tracking_uri).get_model_version_by_alias(self.name, self.alias)
        return f"{self.name}/{found.version}"


class StoreSource:
    """A run's model straight from an artifact store (S3 or a folder): no tracking server at all.

    The root is `s3://bucket/<prefix>/<experiment id>` or a folder, or the root above the
    experiments, in which case the run's experiment is found by listing (web_service_mlflow.stores).
    """

    def __init__(self, store: ArtifactStore, wanted: Wanted) -> None:
        self.store, self.wanted = store, wanted
        named = f"logged model {wanted.model_id}" if wanted.model_id else f"run {wanted.run_id}"
        self.description = f"{store.description}, {named}"

    def prepare(self) -> None:
        """Nothing to import: boto3 is cheap, a folder is here."""

    def resolve(self) -> ResolvedModel:
        with failures(self.description):
            found = self._find()
        return ResolvedModel(found.run_id, None, self.wanted.artifact_path, self.wanted.model_id,
                             found.model.location, found.preprocessor, self.wanted.cache_key(),
                             found.reference)  # fmt: skip

    def _find(self) -> Found:
        if self.wanted.model_id:
            return find_logged_model(self.store, self.wanted.model_id, self.description)
        return find_run_model(self.store, self.wanted.run_id, self.wanted.artifact_path, self.description)

    def download(self, model: ResolvedModel, dest: Path) -> None:
        with failures(self.description):
            self.store.fetch(model.location, dest / MODEL_ARTIFACT)
            if model.preprocessor:
                self.store.fetch(model.preprocessor, dest / PREPROCESSOR_ARTIFACT)
        if model.reference:
            self.download_reference(model, dest)

    def download_reference(self, model: ResolvedModel, dest: Path) -> None:
        with failures(self.description):
            self.store.fetch(model.reference, dest / REFERENCE_ARTIFACT)

    def local_folders(self, model: ResolvedModel) -> tuple[Path, Path | None, Path | None] | None:
        """The model, preprocessor and reference folders in place, when the store is on this machine."""
        if not isinstance(self.store, FolderStore):
            return None
        preprocessor, reference = (
            self.store.path(key) if key else None for key in (model.preprocessor, model.reference)
        )
        return self.store.path(model.location), preprocessor, reference


# --- through a tracking server ------------------------------------------------------------------


def _artifact_models(client, run_id: str) -> list[RunModel]:
    """Folders among the run's artifacts that hold an MLmodel, two levels deep (`models/xgb`)."""
    models, level = [], [item.path for item in client.list_artifacts(run_id) if item.is_dir]
    for _ in range(2):
        deeper = []
        for folder in level:
            inside = client.list_artifacts(run_id, folder)
            if any(item.path.rsplit("/", 1)[-1] == "MLmodel" for item in inside):
                models.append(RunModel(folder, folder))
            else:
                deeper += [item.path for item in inside if item.is_dir]
        level = deeper
    return models


def _logged_models(client, run) -> list[RunModel]:
    """MLflow 3 logged models whose source run is `run`."""
    if not hasattr(client, "search_logged_models"):
        return []
    found, token = [], None
    while True:
        page = client.search_logged_models(experiment_ids=[run.info.experiment_id], page_token=token,
                                           filter_string=f"source_run_id = '{run.info.run_id}'")  # fmt: skip
        found += [_logged(logged) for logged in page]
        token = page.token
        if not token:
            return found


def _logged(logged) -> RunModel:
    return RunModel(logged.name, f"models:/{logged.model_id}", logged.model_id)


def _run_folders(client, run_id: str | None) -> tuple[str | None, str | None]:
    """The run's `preprocessor` and `reference` artifact folders, those it has: one listing."""
    top = {item.path for item in client.list_artifacts(run_id)} if run_id else set()
    return tuple(name if name in top else None for name in (PREPROCESSOR_ARTIFACT, REFERENCE_ARTIFACT))


def _download_model(tracking_uri: str, model: ResolvedModel, dest: Path) -> None:
    import mlflow.artifacts

    if model.location.startswith("models:/"):
        mlflow.artifacts.download_artifacts(artifact_uri=model.location, dst_path=str(dest / MODEL_ARTIFACT),
                                            tracking_uri=tracking_uri)  # fmt: skip
    else:  # a path among the run's artifacts: it lands under its own name, then becomes `model`
        with tempfile.TemporaryDirectory(dir=dest) as tmp:
            _download_run_artifact(tracking_uri, model.run_id, model.location, Path(tmp))
            shutil.move(Path(tmp) / model.location, dest / MODEL_ARTIFACT)
    for folder in (model.preprocessor, model.reference):
        if folder:
            _download_run_artifact(tracking_uri, model.run_id, folder, dest)


def _import_mlflow():
    # MLflow reads these settings only from the environment, through its variable objects, whose
    # defaults apply when a variable is unset: the service changes the defaults, not the environment.
    import mlflow.environment_variables as variables
    from mlflow import MlflowClient

    for name, value in MLFLOW_CLIENT_DEFAULTS.items():
        getattr(variables, name).default = value
    return MlflowClient


def _client(tracking_uri: str):
    return _import_mlflow()(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _download_run_artifact(tracking_uri: str, run_id: str, name: str, dest: Path) -> None:
    import mlflow.artifacts

    mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=name, dst_path=str(dest), tracking_uri=tracking_uri
    )


def s3_client():
    import boto3
    from botocore.config import Config

    # MLflow's variable first, as MLflow itself honours it; boto3 reads AWS_ENDPOINT_URL_S3 itself.
    endpoint = env_str(read(), "MLFLOW_S3_ENDPOINT_URL")
    config = Config(connect_timeout=5, read_timeout=30, retries={"total_max_attempts": 1, "mode": "standard"})
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
    # A REST error reads "RESOURCE_DOES_NOT_EXIST: Run ... not found"; the code adds nothing. Its URLs
    # carry the tracking URI's or the S3 endpoint's credentials, if they had any.
    return redact(re.sub(r"^[A-Z_]+: ", "", text.splitlines()[0]))[:300]
