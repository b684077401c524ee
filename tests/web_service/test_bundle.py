import hashlib
import json
import pickle

import pytest

from tests.conftest import make_rides
from web_service.bundle import load_bundle
from web_service.errors import ModelLoadError, SettingsError
from web_service.features import prepare_features
from web_service.settings import AppSettings, FileModelSettings, env_int


def test_course_tuple_file_serves_the_pipelines_predictions(tmp_path, linear_pipeline):
    vectorizer, model = linear_pipeline.named_steps.values()
    path = tmp_path / "lin_reg.bin"
    path.write_bytes(pickle.dumps((vectorizer, model)))
    rides = make_rides(50, seed=8)

    predictor = load_bundle(path)

    assert predictor.predict(rides) == linear_pipeline.predict([prepare_features(r) for r in rides]).tolist()
    assert predictor.model_version == f"lin_reg.bin:{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"


def test_a_pickled_pipeline_serves_too(tmp_path, linear_pipeline):
    path = tmp_path / "pipeline.bin"
    path.write_bytes(pickle.dumps(linear_pipeline))

    assert load_bundle(path).predict_one({"PULocationID": 1, "DOLocationID": 2, "trip_distance": 3.0}) > 0


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(ModelLoadError, match=f"cannot read MODEL_PATH={tmp_path}/nope.bin: No such file"):
        load_bundle(tmp_path / "nope.bin")


def test_a_file_that_is_not_a_pickle_is_a_load_error(tmp_path):
    path = tmp_path / "garbage.bin"
    path.write_bytes(b"\x00garbage")

    with pytest.raises(ModelLoadError, match=f"MODEL_PATH={path}: the model does not deserialize as pickle"):
        load_bundle(path)


def test_a_pickle_of_something_else_says_what_it_holds(tmp_path):
    path = tmp_path / "dict.bin"
    path.write_bytes(pickle.dumps({"model": 1}))

    with pytest.raises(ModelLoadError, match="holds a dict, expected a \\(DictVectorizer, model\\) tuple"):
        load_bundle(path)


def test_model_path_is_required_with_an_example():
    with pytest.raises(SettingsError, match="MODEL_PATH is not set: .* for example MODEL_PATH=lin_reg.bin"):
        FileModelSettings.from_env({})


@pytest.mark.parametrize("raw", ["lots", "0", "-5", "1.5"])
def test_a_bad_number_fails_naming_the_variable(raw):
    with pytest.raises(SettingsError, match=f"MAX_BODY_BYTES must be a whole number >= 1, got '{raw}'"):
        AppSettings.from_env({"MAX_BODY_BYTES": raw})


def test_blank_number_means_the_default():
    assert env_int({"X": " "}, "X", 7) == 7


def test_drift_profile_gives_a_model_file_its_reference_and_a_bad_one_stops_the_start(tmp_path, linear_pipeline):
    from web_service.drift import COLUMNS, build_profile, read_profile

    path, profile_path = tmp_path / "pipeline.bin", tmp_path / "profile.json"
    path.write_bytes(pickle.dumps(linear_pipeline))
    profile_path.write_text(json.dumps(build_profile({name: [1.0, 2.0, 3.0] for name in COLUMNS}).to_json()))
    settings = FileModelSettings.from_env({"MODEL_PATH": str(path), "DRIFT_PROFILE": str(profile_path)})

    predictor = load_bundle(settings.model_path, profile=settings.drift_profile)  # as web_service.predict loads

    assert predictor.profile == read_profile(profile_path)
    assert FileModelSettings.from_env({"MODEL_PATH": str(path)}).drift_profile is None
    with pytest.raises(SettingsError, match=f"^DRIFT_PROFILE={tmp_path}/none.json: cannot read it \\(No such file"):
        FileModelSettings.from_env({"MODEL_PATH": str(path), "DRIFT_PROFILE": str(tmp_path / "none.json")})
