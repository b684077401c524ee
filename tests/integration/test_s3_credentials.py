"""Straight from S3: the endpoint and credentials come from where AWS users keep them."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.backends import BUCKET, S3_KEYS
from tests.conftest import make_rides
from web_service.settings import AppSettings
from web_service_mlflow.layout import LOCAL_STORE, run_artifacts
from web_service_mlflow.loader import load_predictor
from web_service_mlflow.settings import ModelSettings, SourceKind, default_run_id

pytestmark = pytest.mark.integration
RUN = default_run_id(LOCAL_STORE)
AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_PROFILE",
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)


@pytest.fixture(scope="module")
def uploaded(s3) -> str:
    """The embedded run, copied to s3://mlflow/7/<RUN>/artifacts as MLflow would lay it out."""
    artifacts = run_artifacts(LOCAL_STORE, RUN)
    client = s3.client()
    for path in artifacts.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), BUCKET, f"7/{RUN}/artifacts/{path.relative_to(artifacts)}")
    return f"s3://{BUCKET}/7"


@pytest.fixture
def clean_aws(monkeypatch, tmp_path):
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role to ask for here
    return monkeypatch


def load_from(root: str, tmp_path: Path):
    settings = ModelSettings(SourceKind.S3, RUN, None, None, root, tmp_path / "cache", 0, False, AppSettings())
    return load_predictor(settings)


def expected() -> list[float]:
    local = ModelSettings(SourceKind.LOCAL, RUN, None, None, str(LOCAL_STORE), Path("/unused"), 0, False, AppSettings())
    return load_predictor(local).predict(make_rides(20, seed=41))


def test_endpoint_from_aws_endpoint_url_s3_and_keys_from_the_environment(tmp_path, s3, uploaded, clean_aws):
    clean_aws.setenv("AWS_ENDPOINT_URL_S3", s3.endpoint)
    for name, value in S3_KEYS.items():
        clean_aws.setenv(name, value)

    assert load_from(uploaded, tmp_path).predict(make_rides(20, seed=41)) == expected()


def test_keys_from_a_named_profile(tmp_path, s3, uploaded, clean_aws):
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[models]\naws_access_key_id = {S3_KEYS['AWS_ACCESS_KEY_ID']}\n"
        f"aws_secret_access_key = {S3_KEYS['AWS_SECRET_ACCESS_KEY']}\n"
    )
    clean_aws.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    clean_aws.setenv("AWS_PROFILE", "models")
    clean_aws.setenv("MLFLOW_S3_ENDPOINT_URL", s3.endpoint)

    predictor = load_from(f"s3://{BUCKET}", tmp_path)  # a root above the experiments: found by listing

    assert predictor.predict(make_rides(20, seed=41)) == expected()


def test_no_credentials_anywhere_is_a_clear_permanent_failure(tmp_path, s3, uploaded, clean_aws):
    from web_service.errors import ModelLoadError

    clean_aws.setenv("MLFLOW_S3_ENDPOINT_URL", s3.endpoint)

    with pytest.raises(ModelLoadError) as raised:
        load_from(uploaded, tmp_path)

    assert raised.value.message == (
        f"S3 {uploaded}, run {RUN}: no AWS credentials found (environment, profile or instance role)"
    )
