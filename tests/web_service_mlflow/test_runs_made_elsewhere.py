"""Runs logged by MLflow 1, 2 and 3 (committed fixtures) are found in their folders and answer exactly."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from harness.fixtures import bits, expected, probe_rides, store
from tests.web_service_mlflow.test_loader import loader_warnings
from web_service.drift import read_profile
from web_service.errors import ModelLoadError, SettingsError
from web_service.loading import admit
from web_service.startup import build_app
from web_service.trust import granting
from web_service.views import is_ready
from web_service_mlflow.flavor import load_run_model
from web_service_mlflow.loader import load_from_env, load_predictor
from web_service_mlflow.settings import ModelSettings
from web_service_mlflow.sources import StoreSource, Wanted
from web_service_mlflow.stores import FolderStore

# fixture folder with its expected.json -> the MLflow store it lives in
RUNS = {
    "mlflow1-sklearn-1.0.2": "mlflow1-sklearn-1.0.2",
    "mlflow1-xgboost-1.5": "mlflow1-xgboost-1.5",
    "mlflow2-sklearn-1.2.2/forest": "mlflow2-sklearn-1.2.2",
    "mlflow2-sklearn-1.2.2/boosting": "mlflow2-sklearn-1.2.2",
    "mlflow3/skops": "mlflow3",
    "mlflow3/cloudpickle": "mlflow3",
}
# Every fixture but the skops one holds a pickle: its model, or the course's preprocessor.b.
PICKLED = {"ALLOW_PICKLE": "true"}
XGBOOST_3 = expected("mlflow3/xgboost")


def load(tmp_path, **environ: str):
    """As web_service_mlflow.predict loads: under the trust the settings grant."""
    settings = ModelSettings.from_env({"MODEL_CACHE_DIR": str(tmp_path / "cache")} | environ)
    with granting(settings.trust):
        return load_predictor(settings)


def answers(predictor) -> np.ndarray:
    return bits(predictor.predict(list(probe_rides())))


@pytest.mark.parametrize("fixture", sorted(RUNS))
def test_a_run_is_found_by_its_id_alone_and_answers_what_its_release_answered(tmp_path, fixture):
    wanted = expected(fixture)

    trust = {} if fixture == "mlflow3/skops" else PICKLED

    predictor = load(tmp_path, RUN_ID=wanted.run_id, MODEL_ARTIFACT_ROOT=str(store(RUNS[fixture])), **trust)

    assert np.array_equal(answers(predictor), bits(wanted.predictions))
    assert predictor.model_version == wanted.run_id
    assert predictor.engine.name.startswith("compiled")


def test_the_root_may_be_the_experiments_own_folder(tmp_path):
    wanted = expected("mlflow3/skops")
    [experiment] = [folder for folder in store("mlflow3").iterdir() if folder.name.isdigit() and folder.name != "0"]

    predictor = load(tmp_path, RUN_ID=wanted.run_id, MODEL_ARTIFACT_ROOT=str(experiment))

    assert np.array_equal(answers(predictor), bits(wanted.predictions))


def test_a_run_with_two_logged_models_is_refused_with_both_listed(tmp_path):
    with pytest.raises(ModelLoadError) as raised:
        load(tmp_path, RUN_ID=XGBOOST_3.run_id, MODEL_ARTIFACT_ROOT=str(store("mlflow3")))

    ubj, as_json = XGBOOST_3.record["models"]["model"], XGBOOST_3.record["models"]["model-json"]
    listed = sorted([f'{ubj} "model" (xgboost, logged model)', f'{as_json} "model-json" (xgboost, logged model)'])
    assert raised.value.message == (
        f"local store {store('mlflow3')}, run {XGBOOST_3.run_id}: the run holds 2 models: {', '.join(listed)}; "
        "set MODEL_ARTIFACT_PATH to the one to serve (or MODEL_URI=runs:/<RUN_ID>/<path>)"
    )


@pytest.mark.parametrize("named", ["model", "model-json", "model ID"])
def test_model_artifact_path_picks_one_by_name_or_model_id(tmp_path, named):
    path = XGBOOST_3.record["models"]["model"] if named == "model ID" else named

    predictor = load(tmp_path, RUN_ID=XGBOOST_3.run_id, MODEL_ARTIFACT_PATH=path,
                     MODEL_ARTIFACT_ROOT=str(store("mlflow3")), **PICKLED)  # fmt: skip

    assert np.array_equal(answers(predictor), bits(XGBOOST_3.predictions))
    assert predictor.model_version == f"{XGBOOST_3.run_id}/{path}"


def test_model_uri_names_a_runs_model_by_path_or_a_logged_model_by_id(tmp_path):
    model_id = XGBOOST_3.record["models"]["model-json"]
    root = {"MODEL_ARTIFACT_ROOT": str(store("mlflow3"))} | PICKLED

    by_path = load(tmp_path, MODEL_URI=f"runs:/{XGBOOST_3.run_id}/model-json", **root)
    by_id = load(tmp_path, MODEL_URI=f"models:/{model_id}", **root)

    assert np.array_equal(answers(by_path), bits(XGBOOST_3.predictions))
    assert np.array_equal(answers(by_id), bits(XGBOOST_3.predictions))
    assert by_id.model_version == f"{XGBOOST_3.run_id} (models:/{model_id})"
    assert by_id.metadata["logged_model_id"] == model_id


def test_a_path_the_run_does_not_hold_lists_what_it_holds(tmp_path):
    wanted = expected("mlflow1-xgboost-1.5")

    with pytest.raises(ModelLoadError) as raised:
        load(tmp_path, RUN_ID=wanted.run_id, MODEL_ARTIFACT_PATH="model",
             MODEL_ARTIFACT_ROOT=str(store("mlflow1-xgboost-1.5")))  # fmt: skip

    assert raised.value.message.endswith(
        f"run {wanted.run_id}: the run has no model 'model'; it holds models_mlflow (xgboost)"
    )


def test_an_unknown_logged_model_says_where_it_looked(tmp_path):
    with pytest.raises(ModelLoadError, match=r"no logged model m-0{32} \(looked for \[<experiment id>/\]models/"):
        load(tmp_path, MODEL_URI=f"models:/m-{'0' * 32}", MODEL_ARTIFACT_ROOT=str(store("mlflow3")))


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"MODEL_ARTIFACT_PATH": "model"}, "MODEL_ARTIFACT_PATH=model names one of a run's models: set RUN_ID"),
        ({"MODEL_URI": f"runs:/{'a' * 32}/model", "MODEL_ARTIFACT_PATH": "other"}, "name two different models"),
        ({"MODEL_URI": "s3://bucket/model"}, "MODEL_URI must be models:/<name>@<alias>, models:/<name>/<version>"),
    ],
)
def test_settings_that_name_a_model_ambiguously_are_refused(environ, message):
    with pytest.raises(SettingsError, match=message):
        ModelSettings.from_env(environ)


def test_runs_uri_and_logged_model_uri_need_no_tracking_server():
    runs = ModelSettings.from_env({"MODEL_URI": f"runs:/{'a' * 32}/models_mlflow"})
    logged = ModelSettings.from_env({"MODEL_URI": f"models:/m-{'b' * 32}", "MODEL_ARTIFACT_ROOT": "s3://bucket/1"})

    assert (runs.run_id, runs.artifact_path, runs.model_uri, runs.is_default_run) == ("a" * 32, "models_mlflow",
                                                                                       None, False)  # fmt: skip
    assert (logged.model_id, logged.kind.value, logged.run_id) == (f"m-{'b' * 32}", "s3", None)


def test_a_skops_forest_saved_with_n_jobs_minus_1_predicts_on_one_thread():
    # On several threads a forest adds its trees in any order: its last bits vary from call to call,
    # and the compiled form would match it only sometimes.
    skops = expected("mlflow3/skops")
    [folder] = store("mlflow3").glob(f"*/models/{skops.record['models']['model']}/artifacts")
    pipeline, provenance = load_run_model(folder, None, "skops run")
    assert pipeline.named_steps["model"].n_jobs == -1  # as saved

    model, engine, _ = admit(pipeline, provenance, "skops run")

    assert pipeline.named_steps["model"].n_jobs == 1
    assert engine.describe()["model_made_with"]["mended"] == ["RandomForestRegressor.n_jobs=-1 -> 1"]
    assert engine.name == "compiled tree_table"


@pytest.mark.parametrize(
    ("fixture", "what"),
    [
        ("mlflow1-sklearn-1.0.2", "the model artifact model.pkl is a cloudpickle file"),
        ("mlflow2-sklearn-1.2.2/boosting", "the model artifact model.pkl is a pickle file"),
        ("mlflow1-xgboost-1.5", "preprocessor/preprocessor.b is a pickle file"),  # the booster itself is data
    ],
)
def test_a_run_that_needs_a_pickle_is_refused_without_allow_pickle(tmp_path, fixture, what):
    wanted = expected(fixture)
    root = store(RUNS[fixture])

    with pytest.raises(ModelLoadError) as raised:
        load(tmp_path, RUN_ID=wanted.run_id, MODEL_ARTIFACT_ROOT=str(root))

    assert raised.value.message == (
        f"local store {root}, run {wanted.run_id}: {what}, and loading one runs any code it holds; "
        "ALLOW_PICKLE=true allows it, only if you trust whoever can write it"
    )


def test_a_run_made_elsewhere_has_no_profile_and_starts_with_drift_off_saying_how_to_make_one(tmp_path, caplog):
    wanted = expected("mlflow2-sklearn-1.2.2/forest")
    environ = {"RUN_ID": wanted.run_id, "MODEL_ARTIFACT_ROOT": str(store("mlflow2-sklearn-1.2.2")),
               "MODEL_CACHE_DIR": str(tmp_path / "cache")} | PICKLED  # fmt: skip

    app = build_app(load_from_env, environ)

    assert is_ready(app)
    assert app.test_client().get("/model").get_json()["reference_profile"] is None
    [line] = loader_warnings(caplog)
    assert line.startswith(f"run {wanted.run_id} has no reference profile (reference/profile.json); live drift is off")
    assert f"python -m web_service_mlflow.monitor.profile --run-id {wanted.run_id} --reference" in line


def test_a_logged_models_profile_is_found_through_its_source_run(tmp_path, trained_run):
    skops = expected("mlflow3/skops")
    root = tmp_path / "mlruns"
    shutil.copytree(store("mlflow3"), root)
    [run_folder] = root.glob(f"*/{skops.run_id}")
    (run_folder / "artifacts" / "reference").mkdir(parents=True)
    [profile] = trained_run.store.glob(f"*/{trained_run.run_id}/artifacts/reference/profile.json")
    shutil.copy(profile, run_folder / "artifacts" / "reference" / "profile.json")
    model_uri = f"models:/{skops.record['models']['model']}"

    in_place = load(tmp_path, MODEL_URI=model_uri, MODEL_ARTIFACT_ROOT=str(root))
    source = StoreSource(FolderStore(root), Wanted(model_id=skops.record["models"]["model"]))
    source.download(source.resolve(), tmp_path / "fetched")  # as from S3: copied, not read in place

    assert in_place.profile is not None and in_place.profile == read_profile(profile)
    assert read_profile(tmp_path / "fetched" / "reference" / "profile.json") == in_place.profile
