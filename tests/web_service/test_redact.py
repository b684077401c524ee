"""Locations as they may be shown: URIs without their secrets, paths without the machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from web_service.predictor import Predictor
from web_service.redact import APP_ROOT, display_roots, redact, redact_uri, shown

ROOTS = {APP_ROOT: "", Path("/home/alice"): "~", Path("/home/alice/.cache/ride-duration/models"): "$MODEL_CACHE_DIR"}


@pytest.mark.parametrize(
    ("uri", "redacted"),
    [
        ("http://alice:s3cret@127.0.0.1:5000", "http://***@127.0.0.1:5000"),
        ("https://token-only@mlflow.internal/api", "https://***@mlflow.internal/api"),  # a user name may be a token
        ("http://alice:p@ss@host:5000/x@y", "http://***@host:5000/x@y"),  # an "@" nobody encoded, then one in the path
        ("postgresql://svc:pw@db/mlflow?sslmode=require", "postgresql://***@db/mlflow?sslmode=***"),
        ("https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA&X-Amz-Signature=f00d", "https://b.s3.amazonaws.com/k?X-Amz-Credential=***&X-Amz-Signature=***"),
        ("https://host/data.parquet?token", "https://host/data.parquet?***"),
        ("https://host/cb#access_token=abc", "https://host/cb#***"),
        ("http://mlflow.internal:5000", "http://mlflow.internal:5000"),
        ("s3://bucket/1", "s3://bucket/1"),
        ("sqlite:////var/lib/mlflow.db", "sqlite:////var/lib/mlflow.db"),
        ("models:/ride-duration@production", "models:/ride-duration@production"),  # not a URL: an alias
        ("/srv/models/lin_reg.bin", "/srv/models/lin_reg.bin"),
    ],
)  # fmt: skip
def test_a_uri_keeps_its_scheme_host_and_path_and_loses_what_can_be_a_secret(uri, redacted):
    assert redact_uri(uri) == redacted
    assert redact_uri(redacted) == redacted


def test_every_uri_in_a_librarys_error_message_is_redacted():
    mlflow = (
        "API request to http://alice:s3cret@127.0.0.1:9/api/2.0/mlflow/runs/get failed with exception "
        "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: /api/2.0/mlflow/runs/get"
    )
    boto = 'Could not connect to the endpoint URL: "http://key:s3cret@127.0.0.1:9/x?list-type=2"'

    assert redact(mlflow) == mlflow.replace("alice:s3cret@", "***@")
    assert redact(boto) == 'Could not connect to the endpoint URL: "http://***@127.0.0.1:9/x?list-type=***"'


@pytest.mark.parametrize(
    ("text", "public"),
    [
        (f"local store {APP_ROOT}/mlruns, run 97e7", "local store mlruns, run 97e7"),
        ("local store /srv/shared/mlruns/, run 97e7", "local store …/mlruns, run 97e7"),
        ("tracking server http://alice:s3cret@10.0.0.5, run 7, cached in /home/alice/.cache/ride-duration/models/7",
         "tracking server http://***@10.0.0.5, run 7, cached in $MODEL_CACHE_DIR/7"),
        ("cache /home/alice/.cache/ride-duration/models/97e7 (of S3 s3://bucket/1, run 97e7)",
         "cache $MODEL_CACHE_DIR/97e7 (of S3 s3://bucket/1, run 97e7)"),
        ("local store /home/alice/mlruns, run 97e7", "local store ~/mlruns, run 97e7"),
        ("local store /home/alice2/mlruns, run 97e7", "local store …/mlruns, run 97e7"),  # not under /home/alice
        (f"file:{APP_ROOT}/tests/fixtures/lin_reg.bin", "file:tests/fixtures/lin_reg.bin"),
        ("file:/srv/models/lin_reg.bin", "file:…/lin_reg.bin"),
        ("file:lin_reg.bin", "file:lin_reg.bin"),
        ("tracking server sqlite:////var/lib/mlflow.db, run 97e7", "tracking server sqlite:///…/mlflow.db, run 97e7"),
        ("tracking server sqlite:///mlflow.db, run 97e7", "tracking server sqlite:///mlflow.db, run 97e7"),
        ("/work/shared/data/green_tripdata_2021-01.parquet", "…/green_tripdata_2021-01.parquet"),
        ("https://user:pw@data.example/green.parquet", "https://***@data.example/green.parquet"),
        ("97e7/models/xgb (models:/ride/3)", "97e7/models/xgb (models:/ride/3)"),  # a run's artifact path
    ],
)  # fmt: skip
def test_what_the_open_endpoints_show_names_no_secret_and_no_machine_path(text, public):
    assert shown(text, ROOTS) == public


def test_the_roots_are_the_services_folder_the_home_and_an_absolute_model_cache_dir():
    assert display_roots({"HOME": "/home/app", "MODEL_CACHE_DIR": "/var/cache/models"}) == {
        APP_ROOT: "", Path("/home/app"): "~", Path("/var/cache/models"): "$MODEL_CACHE_DIR"
    }  # fmt: skip
    assert display_roots({"HOME": "/", "MODEL_CACHE_DIR": "cache"}) == {APP_ROOT: ""}  # "/" is no one's home


def test_a_predictor_published_shows_its_source_and_training_record_without_secrets_or_paths(linear_pipeline):
    training = {"params": {"train_data": "/home/alice/data/jan.parquet", "max_depth": 20,
                           "valid_data": "https://u:pw@data.example/feb.parquet?sig=abc"}}  # fmt: skip
    predictor = Predictor(linear_pipeline, "run-1", f"local store {APP_ROOT}/mlruns, run 1", {"training": training})

    predictor.publish(ROOTS)

    assert predictor.source == "local store mlruns, run 1"
    assert predictor.describe()["training"]["params"] == {
        "train_data": "~/data/jan.parquet", "max_depth": 20, "valid_data": "https://***@data.example/feb.parquet?sig=***"
    }  # fmt: skip
