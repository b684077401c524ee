"""Find a run's model straight in an artifact store, S3 or a folder, with no tracking server.

The layouts, under a root that is either one experiment's folder or the folder above them:
- `<experiment>/<RUN_ID>/artifacts/<path>/MLmodel`: MLflow 1.x and 2.x, and this project's training;
- `<experiment>/models/m-<id>/artifacts/MLmodel`: MLflow 3 logged models. Only their MLmodel file
  says which run they belong to, so finding a run's logged models costs one listing of
  `<experiment>/models/` plus one small read per logged model in the experiment (done 16 at a
  time). The resolution is kept in the model cache with the artifacts, so it is paid once per run.

Experiment folders are recognised by their numeric names (MLflow's experiment IDs).
"""

from __future__ import annotations

import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

import yaml

from web_service.errors import ModelLoadError
from web_service.redact import redact_uri
from web_service_mlflow.layout import PREPROCESSOR_ARTIFACT, REFERENCE_ARTIFACT
from web_service_mlflow.runmodels import RunModel, choose_model

RUN_ID_NAME = re.compile(r"[0-9a-f]{32}")
MLMODEL = "MLmodel"
PARALLEL_READS = 16


class ArtifactStore(Protocol):
    """Listing and reading under one root; keys are relative to it, folders end without '/'."""

    description: str

    def subfolders(self, prefix: str) -> list[str]: ...

    def files(self, prefix: str) -> list[str]: ...

    def read_text(self, key: str) -> str | None: ...

    def fetch(self, prefix: str, dest: Path) -> None: ...


@dataclass(frozen=True)
class Found:
    """The chosen model's folder and its run's preprocessor and reference folders, as store keys."""

    run_id: str | None
    model: RunModel
    preprocessor: str | None
    reference: str | None = None


def find_run_model(store: ArtifactStore, run_id: str, wanted: str | None, where: str) -> Found:
    """The run's one model (or the one `wanted` names), looking in both layouts."""
    experiments = experiment_prefixes(store)
    run_prefix, files = None, []
    for experiment in experiments:
        files = store.files(f"{experiment}{run_id}/artifacts/")
        if files:
            run_prefix = f"{experiment}{run_id}"
            break
    models = _artifact_models(store, run_prefix, files)
    # The run's own experiment when its folder is here; else every one (an MLflow 3 run may have none).
    scan = [run_prefix[: -len(run_id)]] if run_prefix else experiments
    models += logged_models(store, scan, run_id)
    if not models and run_prefix is None:
        raise ModelLoadError(
            f"{where}: no model: nothing under [<experiment id>/]{run_id}/artifacts/ and no MLflow 3 logged model "
            "of this run under [<experiment id>/]models/; check RUN_ID and MODEL_ARTIFACT_ROOT"
        )
    chosen = choose_model(models, wanted, where)
    return Found(run_id, chosen, *_run_folders(run_prefix, files))


def find_logged_model(store: ArtifactStore, model_id: str, where: str) -> Found:
    """`models:/m-<id>`: the logged model's folder, and its source run's preprocessor if any."""
    for experiment in experiment_prefixes(store):
        location = f"{experiment}models/{model_id}/artifacts"
        text = store.read_text(f"{location}/{MLMODEL}")
        if text is not None:
            mlmodel = _parse(text)
            run_id = mlmodel.get("run_id")
            files = store.files(f"{experiment}{run_id}/artifacts/") if run_id else []
            model = RunModel(_logged_name(store, experiment, model_id), location, model_id, _flavor(mlmodel))
            return Found(run_id, model, *_run_folders(f"{experiment}{run_id}" if run_id else None, files))
    raise ModelLoadError(
        f"{where}: no logged model {model_id} (looked for [<experiment id>/]models/{model_id}/artifacts/{MLMODEL}); "
        "check MODEL_URI and MODEL_ARTIFACT_ROOT"
    )


def experiment_prefixes(store: ArtifactStore) -> list[str]:
    """The root itself when it is an experiment's folder, and the experiment folders under it."""
    children = store.subfolders("")
    own = [""] if "models" in children or any(RUN_ID_NAME.fullmatch(child) for child in children) else []
    return own + [f"{child}/" for child in children if child.isdigit()]


def logged_models(store: ArtifactStore, experiments: list[str], run_id: str) -> list[RunModel]:
    """MLflow 3 logged models whose MLmodel names `run_id` as their source run."""
    locations = [
        (experiment, name)
        for experiment in experiments
        for name in store.subfolders(f"{experiment}models/")
        if name.startswith("m-")
    ]
    with ThreadPoolExecutor(PARALLEL_READS) as pool:
        texts = list(
            pool.map(lambda item: store.read_text(f"{item[0]}models/{item[1]}/artifacts/{MLMODEL}"), locations)
        )
    found = []
    for (experiment, model_id), text in zip(locations, texts, strict=True):
        mlmodel = _parse(text) if text else {}
        if mlmodel.get("run_id") == run_id:
            name = _logged_name(store, experiment, model_id)
            found.append(RunModel(name, f"{experiment}models/{model_id}/artifacts", model_id, _flavor(mlmodel)))
    return found


def _artifact_models(store: ArtifactStore, run_prefix: str | None, files: list[str]) -> list[RunModel]:
    if run_prefix is None:
        return []
    base = f"{run_prefix}/artifacts/"
    models = []
    for key in files:
        if key.endswith(f"/{MLMODEL}"):
            location = key[: -len(MLMODEL) - 1]
            models.append(RunModel(location[len(base) :], location, None, _flavor(_parse(store.read_text(key)))))
    return models


def _run_folders(run_prefix: str | None, files: list[str]) -> tuple[str | None, str | None]:
    """The run's `preprocessor` and `reference` artifact folders, those its files show."""

    def present(name: str) -> str | None:
        folder = f"{run_prefix}/artifacts/{name}"
        return folder if run_prefix and any(key.startswith(f"{folder}/") for key in files) else None

    return present(PREPROCESSOR_ARTIFACT), present(REFERENCE_ARTIFACT)


def _logged_name(store: ArtifactStore, experiment: str, model_id: str) -> str | None:
    # A file store keeps the logged model's name in meta.yaml; S3 behind a tracking server does not.
    text = store.read_text(f"{experiment}models/{model_id}/meta.yaml")
    return str(_parse(text).get("name") or "") or None if text else None


def _flavor(mlmodel: dict) -> str | None:
    flavors = [name for name in (mlmodel.get("flavors") or {}) if name != "python_function"]
    return flavors[0] if flavors else None


def _parse(text: str | None) -> dict:
    try:
        parsed = yaml.safe_load(text or "")
    except yaml.YAMLError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


# --- the stores ---------------------------------------------------------------------------------


class FolderStore:
    """A folder on this machine: a local `mlruns`, a mounted volume."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = f"local store {root}"

    def subfolders(self, prefix: str) -> list[str]:
        folder = self.root / prefix
        return sorted(child.name for child in folder.iterdir() if child.is_dir()) if folder.is_dir() else []

    def files(self, prefix: str) -> list[str]:
        folder = self.root / prefix
        if not folder.is_dir():
            return []
        return sorted(str(path.relative_to(self.root)) for path in folder.rglob("*") if path.is_file())

    def read_text(self, key: str) -> str | None:
        try:
            return (self.root / key).read_text()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def path(self, key: str) -> Path:
        return self.root / key

    def fetch(self, prefix: str, dest: Path) -> None:
        shutil.copytree(self.root / prefix, dest)


class S3Store:
    """`s3://bucket/prefix` read with boto3: no tracking server involved."""

    def __init__(self, root: str, client_factory) -> None:
        parsed = urlparse(root)
        self.bucket, self.prefix = parsed.netloc, parsed.path.strip("/")
        self.description = f"S3 {redact_uri(root.rstrip('/'))}"
        self._client_factory, self._client = client_factory, None

    @property
    def client(self):
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def subfolders(self, prefix: str) -> list[str]:
        base = self._key(prefix.rstrip("/") + "/" if prefix else "")
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base, Delimiter="/")
        return [
            common["Prefix"][len(base) :].rstrip("/") for page in pages for common in page.get("CommonPrefixes", [])
        ]

    def files(self, prefix: str) -> list[str]:
        start = len(self._key(""))
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix))
        return [item["Key"][start:] for page in pages for item in page.get("Contents", [])]

    def read_text(self, key: str) -> str | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read().decode()
        except Exception as error:
            if getattr(error, "response", {}).get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise

    def fetch(self, prefix: str, dest: Path) -> None:
        base = prefix.rstrip("/") + "/"
        for key in self.files(base):
            target = dest / key[len(base) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            self.client.download_file(self.bucket, self._key(key), str(target))
