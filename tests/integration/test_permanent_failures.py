"""Permanent failures stop start-up at once with one message naming source, run and cause."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from harness.gunicorn import run_until_exit
from harness.registry import REGISTERED_NAME
from web_service.errors import ModelLoadError
from web_service.settings import AppSettings
from web_service.startup import EXIT_STARTUP_FAILED
from web_service_mlflow.loader import load_predictor
from web_service_mlflow.settings import ModelSettings, SourceKind

pytestmark = pytest.mark.integration
UNKNOWN_RUN = "f" * 32


@pytest.fixture(autouse=True)
def s3_environment(monkeypatch, s3):
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)


def load(tmp_path: Path, kind: SourceKind, run_id=None, tracking=None, root="", model_uri=None):
    settings = ModelSettings(kind, run_id, model_uri, tracking, root, tmp_path / "cache", 0, False, AppSettings())
    with pytest.raises(ModelLoadError) as raised:
        load_predictor(settings)
    return raised.value.message


def run_with_model_folder(tracking, folder: Path | None) -> str:
    """A run whose `model` artifact is `folder` (or that has only a preprocessor when None)."""
    client = MlflowClient(tracking.url)
    experiment = client.get_experiment_by_name("Default").experiment_id
    run_id = client.create_run(experiment).info.run_id
    if folder is None:
        client.log_text(run_id, "not a model", "preprocessor/notes.txt")
    else:
        client.log_artifacts(run_id, str(folder), "model")
    client.set_terminated(run_id)
    return run_id


def run_with_tampered_model(registered, tracking, workdir: Path, tamper) -> str:
    """A new run holding a copy of a good model after `tamper(model_folder)` changed it."""
    import mlflow.artifacts

    first, _ = registered
    model = Path(mlflow.artifacts.download_artifacts(run_id=first.run_id, artifact_path="model",
                                                     dst_path=str(workdir), tracking_uri=tracking.url))  # fmt: skip
    tamper(model)
    return run_with_model_folder(tracking, model)


def other_flavour(model: Path) -> None:
    mlmodel = model / "MLmodel"
    mlmodel.write_text(mlmodel.read_text().replace("  sklearn:", "  lightgbm:"))


def truncated_skops(model: Path) -> None:
    (model / "model.skops").write_bytes(b"PK\x03\x04 truncated")


def test_unknown_run_on_the_tracking_server(tmp_path, tracking):
    message = load(tmp_path, SourceKind.TRACKING, UNKNOWN_RUN, tracking.url)

    assert message.startswith(f"tracking server {tracking.url}, run {UNKNOWN_RUN}: not found (Run ")


def test_unknown_run_in_s3(tmp_path, registered):
    message = load(tmp_path, SourceKind.S3, UNKNOWN_RUN, root="s3://mlflow")

    assert message == (
        f"S3 s3://mlflow, run {UNKNOWN_RUN}: no model: nothing under [<experiment id>/]{UNKNOWN_RUN}/artifacts/ "
        "and no MLflow 3 logged model of this run under [<experiment id>/]models/; check RUN_ID and MODEL_ARTIFACT_ROOT"
    )


def test_unknown_registered_model_or_alias(tmp_path, tracking, registered):
    for uri in (f"models:/{REGISTERED_NAME}@nowhere", "models:/no-such-model/1"):
        message = load(tmp_path, SourceKind.REGISTRY, tracking=tracking.url, model_uri=uri)

        assert message.startswith(f"model registry {tracking.url}, {uri}: ")
        assert "not found" in message.lower()


def test_a_run_without_a_model_artifact(tmp_path, tracking):
    run_id = run_with_model_folder(tracking, None)

    message = load(tmp_path, SourceKind.TRACKING, run_id, tracking.url)

    assert message == (
        f"tracking server {tracking.url}, run {run_id}: the run holds no model: no MLmodel under its artifacts "
        "and no MLflow 3 logged model whose source run it is; check RUN_ID, and that the model was logged to this run"
    )


def test_access_denied_by_s3_stops_gunicorn_with_one_line(tmp_path, s3, registered):
    first, _ = registered
    wrong = s3.env | {"AWS_SECRET_ACCESS_KEY": "wrong-secret"}

    done = run_until_exit("web_service_mlflow.predict:app", tmp_path / "denied.log", RUN_ID=first.run_id,
                          MODEL_ARTIFACT_ROOT=f"s3://mlflow/{first.experiment_id}", **wrong)  # fmt: skip

    assert done.returncode == EXIT_STARTUP_FAILED
    [line] = [line for line in done.stderr.splitlines() if "[ERROR]" in line]
    assert line.endswith(
        f"cannot start: S3 s3://mlflow/{first.experiment_id}, run {first.run_id}: access denied "
        "(SignatureDoesNotMatch); the credentials need s3:GetObject and s3:ListBucket"
    )
    assert "retrying" not in done.stderr


def test_an_unsupported_flavour(tmp_path, tracking, registered):
    run_id = run_with_tampered_model(registered, tracking, tmp_path / "download", other_flavour)

    message = load(tmp_path, SourceKind.TRACKING, run_id, tracking.url)

    assert message == (
        f"tracking server {tracking.url}, run {run_id}: unsupported model flavour ['lightgbm', 'python_function']; "
        "this service serves MLflow's sklearn and xgboost flavours "
        "(log the model with mlflow.sklearn or mlflow.xgboost)"
    )


def test_an_artifact_that_does_not_deserialize(tmp_path, tracking, registered):
    run_id = run_with_tampered_model(registered, tracking, tmp_path / "download", truncated_skops)

    message = load(tmp_path, SourceKind.TRACKING, run_id, tracking.url)

    assert message.startswith(f"tracking server {tracking.url}, run {run_id}: the model artifact model.skops "
                              "does not deserialize as skops (")  # fmt: skip
