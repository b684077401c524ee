import pickle

import mlflow.sklearn
import pytest
from sklearn.ensemble import RandomForestRegressor

from tests.conftest import make_rides
from tests.tampered import model_folder, sklearn_run, touching_pickle, touching_skops
from web_service.errors import ModelLoadError
from web_service.features import prepare_features, prepare_features_frame
from web_service.trust import Trust, granting
from web_service_mlflow.flavor import load_run_model
from web_service_mlflow.train import SKOPS_TRUSTED_TYPES

RIDES = make_rides(50, seed=31)
# Stating requirements spares MLflow loading each model in a subprocess to infer them.
NO_INFERENCE = ["scikit-learn"]


@pytest.fixture(scope="module")
def forest_pipeline(trips):
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.pipeline import Pipeline

    durations = (trips["lpep_dropoff_datetime"] - trips["lpep_pickup_datetime"]).dt.total_seconds() / 60
    pipeline = Pipeline(
        [("dictvectorizer", DictVectorizer()), ("model", RandomForestRegressor(n_estimators=5, random_state=0))]
    )
    return pipeline.fit(prepare_features_frame(trips), durations)


def expected(pipeline) -> list[float]:
    return pipeline.predict([prepare_features(ride) for ride in RIDES]).tolist()


@pytest.mark.parametrize("serialization", ["skops", "pickle", "cloudpickle"])
def test_every_sklearn_serialization_loads_without_mlflow(tmp_path, forest_pipeline, serialization):
    trusted = {"skops_trusted_types": SKOPS_TRUSTED_TYPES} if serialization == "skops" else {}
    mlflow.sklearn.save_model(
        forest_pipeline,
        tmp_path / "model",
        serialization_format=serialization,
        pip_requirements=NO_INFERENCE,
        **trusted,
    )

    loaded, provenance = load_run_model(tmp_path / "model", None, "test run", Trust(allow_pickle=True))

    assert provenance.format == serialization
    assert loaded.predict([prepare_features(ride) for ride in RIDES]).tolist() == expected(forest_pipeline)


def test_a_bare_regressor_is_joined_to_the_runs_preprocessor(tmp_path, forest_pipeline):
    vectorizer, forest = forest_pipeline.named_steps.values()
    mlflow.sklearn.save_model(forest, tmp_path / "model", serialization_format="pickle", pip_requirements=NO_INFERENCE)
    (tmp_path / "preprocessor").mkdir()
    (tmp_path / "preprocessor" / "preprocessor.b").write_bytes(pickle.dumps(vectorizer))

    loaded, _ = load_run_model(tmp_path / "model", tmp_path / "preprocessor", "test run", Trust(allow_pickle=True))

    assert loaded.predict([prepare_features(ride) for ride in RIDES]).tolist() == expected(forest_pipeline)


def test_a_bare_regressor_without_preprocessor_says_what_is_missing(tmp_path, forest_pipeline):
    mlflow.sklearn.save_model(
        forest_pipeline.named_steps["model"],
        tmp_path / "model",
        serialization_format="pickle",
        pip_requirements=NO_INFERENCE,
    )

    with pytest.raises(
        ModelLoadError, match="the model is a bare RandomForestRegressor and the run has no preprocessor/preprocessor.b"
    ):
        load_run_model(tmp_path / "model", tmp_path / "preprocessor", "test run", Trust(allow_pickle=True))


def test_a_folder_without_mlmodel_is_a_load_error(tmp_path):
    (tmp_path / "model").mkdir()

    with pytest.raises(ModelLoadError, match="test run: cannot read the MLmodel file"):
        load_run_model(tmp_path / "model", None, "test run")


def test_an_unknown_serialization_is_refused(tmp_path, forest_pipeline):
    mlflow.sklearn.save_model(
        forest_pipeline, tmp_path / "model", serialization_format="pickle", pip_requirements=NO_INFERENCE
    )
    mlmodel = tmp_path / "model" / "MLmodel"
    mlmodel.write_text(mlmodel.read_text().replace("serialization_format: pickle", "serialization_format: joblib"))

    with pytest.raises(
        ModelLoadError, match="unsupported sklearn serialization 'joblib', expected one of skops, pickle, cloudpickle"
    ):
        load_run_model(tmp_path / "model", None, "test run")


# --- what the service agrees to deserialize (web_service.trust) ------------------------------------


def test_a_skops_model_loads_with_the_services_own_trust_whatever_its_mlmodel_lists(tmp_path, forest_pipeline):
    mlflow.sklearn.save_model(forest_pipeline, tmp_path / "model", serialization_format="skops",
                              pip_requirements=NO_INFERENCE, skops_trusted_types=SKOPS_TRUSTED_TYPES)  # fmt: skip
    mlmodel = tmp_path / "model" / "MLmodel"
    mlmodel.write_text(mlmodel.read_text().replace("skops_trusted_types:\n    - sklearn.tree._tree.Tree\n", ""))

    loaded, _ = load_run_model(tmp_path / "model", None, "test run")

    assert loaded.predict([prepare_features(ride) for ride in RIDES]).tolist() == expected(forest_pipeline)


def test_a_skops_file_that_runs_a_command_is_refused_though_its_mlmodel_trusts_it(tmp_path):
    marker = tmp_path / "ran"
    sklearn_run(tmp_path / "store", "skops", touching_skops(marker), skops_trusted_types=["os.system"])

    with pytest.raises(ModelLoadError) as raised:
        load_run_model(model_folder(tmp_path / "store"), None, "test run")

    assert raised.value.message == (
        "test run: the model artifact model.skops holds types this service does not serve: os.system; "
        "SKOPS_TRUSTED_TYPES=os.system allows them, only if you trust whoever can write it"
    )
    assert not marker.exists()


@pytest.mark.parametrize("serialization", ["pickle", "cloudpickle"])
def test_a_pickle_is_refused_before_it_is_unpickled_unless_allow_pickle(tmp_path, serialization):
    marker = tmp_path / "ran"
    sklearn_run(tmp_path / "store", serialization, touching_pickle(marker))

    with pytest.raises(ModelLoadError) as raised:
        load_run_model(model_folder(tmp_path / "store"), None, "test run")

    assert raised.value.message == (
        f"test run: the model artifact model.pkl is a {serialization} file, and loading one runs any code it holds; "
        "ALLOW_PICKLE=true allows it, only if you trust whoever can write it"
    )
    assert not marker.exists()


def test_the_runs_preprocessor_pickle_needs_allow_pickle_too(tmp_path, forest_pipeline):
    vectorizer, forest = forest_pipeline.named_steps.values()
    mlflow.sklearn.save_model(forest, tmp_path / "model", serialization_format="skops", pip_requirements=NO_INFERENCE,
                              skops_trusted_types=SKOPS_TRUSTED_TYPES)  # fmt: skip
    (tmp_path / "preprocessor").mkdir()
    (tmp_path / "preprocessor" / "preprocessor.b").write_bytes(pickle.dumps(vectorizer))

    with pytest.raises(ModelLoadError, match=r"^test run: preprocessor/preprocessor.b is a pickle file, and loading"):
        load_run_model(tmp_path / "model", tmp_path / "preprocessor", "test run")
    with granting(Trust(allow_pickle=True)):  # as web_service_mlflow.predict grants ALLOW_PICKLE=true
        loaded, _ = load_run_model(tmp_path / "model", tmp_path / "preprocessor", "test run")

    assert loaded.predict([prepare_features(ride) for ride in RIDES]).tolist() == expected(forest_pipeline)


def test_skops_trusted_types_lets_a_model_the_service_does_not_know_load(tmp_path, forest_pipeline):
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import make_pipeline

    knn = make_pipeline(forest_pipeline.named_steps["dictvectorizer"], KNeighborsRegressor(n_neighbors=3))
    knn.fit([prepare_features(ride) for ride in RIDES], range(len(RIDES)))
    sparse = "scipy.sparse._csr.csr_matrix"  # the neighbours it keeps, which skops itself does not trust
    mlflow.sklearn.save_model(knn, tmp_path / "model", serialization_format="skops", pip_requirements=NO_INFERENCE,
                              skops_trusted_types=[sparse])  # fmt: skip
    named = (sparse, "sklearn.neighbors._regression.KNeighborsRegressor")

    with pytest.raises(ModelLoadError) as raised:
        load_run_model(tmp_path / "model", None, "test run")
    loaded, _ = load_run_model(tmp_path / "model", None, "test run", Trust(skops_types=named))

    assert raised.value.message.endswith(
        f"holds types this service does not serve: {', '.join(named)}; SKOPS_TRUSTED_TYPES={','.join(named)} allows "
        "them, only if you trust whoever can write it"
    )

    assert isinstance(loaded.named_steps["kneighborsregressor"], KNeighborsRegressor)


def test_a_skops_tree_whose_nodes_point_outside_it_is_refused(tmp_path, forest_pipeline):
    import skops.io

    tampered = skops.io.loads(skops.io.dumps(forest_pipeline), trusted=SKOPS_TRUSTED_TYPES)
    tree = tampered.named_steps["model"].estimators_[2].tree_
    state = tree.__getstate__()
    state["nodes"]["left_child"][0] = tree.node_count + 5
    tree.__setstate__(state)
    mlflow.sklearn.save_model(tampered, tmp_path / "model", serialization_format="skops", pip_requirements=NO_INFERENCE,
                              skops_trusted_types=SKOPS_TRUSTED_TYPES)  # fmt: skip

    with pytest.raises(ModelLoadError) as raised:
        load_run_model(tmp_path / "model", None, "test run")

    assert raised.value.message == (
        "test run: the model artifact model.skops holds a DecisionTreeRegressor whose tree nodes point outside "
        "the tree; scikit-learn would read out of bounds"
    )
