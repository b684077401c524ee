import re
from pathlib import Path

import pytest

from web_service.errors import SettingsError
from web_service_mlflow.layout import LOCAL_STORE
from web_service_mlflow.settings import ModelSettings, SourceKind, default_run_id

RUN = "0123456789abcdef0123456789abcdef"


def kind_of(**environ: str) -> SourceKind:
    return ModelSettings.from_env(environ).kind


def test_nothing_set_serves_the_embedded_run_whatever_else_is_set():
    chosen = ModelSettings.from_env({"MLFLOW_TRACKING_URI": "http://mlflow:5000", "MODEL_ARTIFACT_ROOT": "s3://b/1"})

    assert (chosen.kind, chosen.run_id, chosen.artifact_root) == (
        SourceKind.LOCAL,
        default_run_id(LOCAL_STORE),
        str(LOCAL_STORE),
    )
    assert chosen.is_default_run


def test_precedence_registry_then_artifact_root_then_tracking_then_repo_store():
    tracking = {"MLFLOW_TRACKING_URI": "http://mlflow:5000"}

    assert kind_of(MODEL_URI="models:/ride@production", **tracking) is SourceKind.REGISTRY
    assert kind_of(RUN_ID=RUN, MODEL_ARTIFACT_ROOT="s3://bucket/1", **tracking) is SourceKind.S3
    assert kind_of(RUN_ID=RUN, MODEL_ARTIFACT_ROOT="/models", **tracking) is SourceKind.LOCAL
    assert kind_of(RUN_ID=RUN, **tracking) is SourceKind.TRACKING
    assert kind_of(RUN_ID=RUN) is SourceKind.LOCAL


def test_run_id_and_model_uri_together_are_refused():
    with pytest.raises(SettingsError, match="set RUN_ID or MODEL_URI, not both"):
        ModelSettings.from_env({"RUN_ID": RUN, "MODEL_URI": "models:/m/1", "MLFLOW_TRACKING_URI": "http://x"})


def test_model_uri_needs_a_tracking_uri():
    with pytest.raises(SettingsError, match="MODEL_URI=models:/m@prod needs MLFLOW_TRACKING_URI"):
        ModelSettings.from_env({"MODEL_URI": "models:/m@prod"})


def test_a_run_id_that_is_not_one_fails_naming_the_variable():
    with pytest.raises(
        SettingsError, match=r"RUN_ID must be an MLflow run ID \(32 lowercase hex digits\), got 'latest'"
    ):
        ModelSettings.from_env({"RUN_ID": "latest"})


def test_an_artifact_root_of_another_cloud_is_refused():
    with pytest.raises(
        SettingsError, match="MODEL_ARTIFACT_ROOT must be s3://bucket/prefix or a folder, got 'gs://b/1'"
    ):
        ModelSettings.from_env({"RUN_ID": RUN, "MODEL_ARTIFACT_ROOT": "gs://b/1"})


def test_cache_dir_and_load_timeout_come_from_the_environment():
    chosen = ModelSettings.from_env({"MODEL_CACHE_DIR": "/var/cache/models", "MODEL_LOAD_TIMEOUT": "5"})

    assert (chosen.cache_dir, chosen.load_timeout_s) == (Path("/var/cache/models"), 5)


def test_cache_dir_defaults_under_the_users_cache():
    assert ModelSettings.from_env({"XDG_CACHE_HOME": "/xdg"}).cache_dir == Path("/xdg/ride-duration/models")


def test_drift_profile_is_read_at_start_and_one_that_cannot_be_read_names_the_variable(tmp_path):
    (tmp_path / "profile.json").write_text("[]")

    with pytest.raises(SettingsError) as raised:
        ModelSettings.from_env({"DRIFT_PROFILE": str(tmp_path / "profile.json")})

    assert raised.value.message == (
        f"DRIFT_PROFILE={tmp_path}/profile.json: not a reference profile of format 1 (format: list); set "
        "DRIFT_PROFILE to a profile.json made by python -m web_service_mlflow.monitor.profile, or unset it to use "
        "the run's own reference/profile.json"
    )
    assert ModelSettings.from_env({}).drift_profile is None


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"CANARY_PERCENT": "10"}, "CANARY_PERCENT=10 is set but no canary is: set CANARY_MODEL_URI"),
        ({"CANARY_RUN_ID": RUN}, "a canary is set: set CANARY_PERCENT too"),
        ({"CANARY_RUN_ID": RUN, "CANARY_PERCENT": "ten"}, "CANARY_PERCENT must be a number from 0 to 100, got 'ten'"),
        ({"CANARY_RUN_ID": RUN, "CANARY_PERCENT": "101"}, "CANARY_PERCENT must be a number from 0 to 100, got '101'"),
        ({"SHADOW_RUN_ID": RUN, "SHADOW_MODEL_URI": "models:/m/1"}, "set SHADOW_MODEL_URI or SHADOW_RUN_ID, not both"),
        ({"MODEL_POLL_SECONDS": "-1"}, "MODEL_POLL_SECONDS must be a whole number >= 0, got '-1'"),
    ],
)
def test_canary_shadow_and_poll_settings_that_cannot_work_are_refused_naming_the_variable(environ, message):
    from web_service_mlflow.loader import load_service

    with pytest.raises(SettingsError, match=re.escape(message)):
        load_service(environ)


def test_a_canary_or_shadow_is_named_as_model_uri_or_run_id_would_name_it():
    from web_service_mlflow.settings import role_environ

    environ = {"RUN_ID": RUN, "DRIFT_PROFILE": "p.json", "MLFLOW_TRACKING_URI": "http://t",
               "SHADOW_MODEL_URI": "models:/m@a"}  # fmt: skip

    assert role_environ(environ, "SHADOW") == {"MLFLOW_TRACKING_URI": "http://t", "SHADOW_MODEL_URI": "models:/m@a",
                                               "MODEL_URI": "models:/m@a"}  # fmt: skip
    assert role_environ(environ, "CANARY") is None
    assert ModelSettings.from_env({}).poll_seconds == 30
