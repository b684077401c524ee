"""Load a downloaded run's model folder, reading MLflow's sklearn flavour without importing MLflow.

MLflow takes seconds to import; what a served model needs from it is one YAML file and one
deserializer call. Supported: the sklearn flavour saved with skops (MLflow's default), pickle or
cloudpickle; a model that is a Pipeline starting with a DictVectorizer, or a bare regressor
beside the run's ``preprocessor/preprocessor.b`` DictVectorizer, as the course logged them.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import yaml

from web_service.errors import ModelLoadError

PREPROCESSOR_FILE = "preprocessor.b"
FORMATS = ("skops", "pickle", "cloudpickle")


def load_run_model(model_dir: Path, preprocessor_dir: Path | None, where: str) -> Any:
    """Load `model_dir` (an MLflow model folder) as a Pipeline that takes feature dicts."""
    flavor = read_sklearn_flavor(model_dir, where)
    model = _deserialize(model_dir / flavor["pickled_model"], flavor, where)
    return _as_dict_pipeline(model, preprocessor_dir, where)


def read_mlmodel(model_dir: Path, where: str) -> dict[str, Any]:
    """The model folder's MLmodel file, parsed."""
    try:
        return yaml.safe_load((model_dir / "MLmodel").read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ModelLoadError(f"{where}: cannot read the MLmodel file ({error})") from error


def training_record(model_dir: Path, where: str) -> dict[str, Any] | None:
    """Params and metrics that web_service_mlflow.train wrote into the MLmodel metadata, if any."""
    return (read_mlmodel(model_dir, where).get("metadata") or {}).get("training")


def read_sklearn_flavor(model_dir: Path, where: str) -> dict[str, Any]:
    """The MLmodel file's sklearn section, or a load error saying why there is none."""
    flavors = read_mlmodel(model_dir, where).get("flavors") or {}
    if "sklearn" not in flavors:
        raise ModelLoadError(
            f"{where}: unsupported model flavour {sorted(flavors)}; this service serves MLflow's "
            "sklearn flavour (log the model with mlflow.sklearn)"
        )
    flavor = flavors["sklearn"]
    if flavor.get("serialization_format", "pickle") not in FORMATS:
        raise ModelLoadError(
            f"{where}: unsupported sklearn serialization {flavor['serialization_format']!r}, "
            f"expected one of {', '.join(FORMATS)}"
        )
    return flavor


def _deserialize(path: Path, flavor: dict[str, Any], where: str) -> Any:
    serialization = flavor.get("serialization_format", "pickle")
    try:
        if serialization == "skops":
            import skops.io

            return skops.io.load(path, trusted=flavor.get("skops_trusted_types") or [])
        if serialization == "cloudpickle":
            import cloudpickle

            return cloudpickle.loads(path.read_bytes())
        return pickle.loads(path.read_bytes())  # noqa: S301 - the operator chose this run
    except Exception as error:  # a corrupt artifact fails deep in the deserializer, with anything
        raise ModelLoadError(
            f"{where}: the model artifact {path.name} does not deserialize as {serialization} "
            f"({type(error).__name__}: {error})"
        ) from error


def _as_dict_pipeline(model: Any, preprocessor_dir: Path | None, where: str) -> Any:
    # scikit-learn is imported only when a model has to be deserialized: a verified compiled
    # form in the cache is served without it (web_service_mlflow.compiled_store).
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline) and isinstance(model.steps[0][1], DictVectorizer):
        return model
    if not callable(getattr(model, "predict", None)):
        raise ModelLoadError(f"{where}: the model is a {type(model).__name__}, which cannot predict")
    vectorizer = _load_preprocessor(preprocessor_dir, where, type(model).__name__)
    return Pipeline([("dictvectorizer", vectorizer), ("model", model)])


def _load_preprocessor(preprocessor_dir: Path | None, where: str, model_class: str) -> Any:
    from sklearn.feature_extraction import DictVectorizer

    path = (preprocessor_dir or Path("/nonexistent")) / PREPROCESSOR_FILE
    if not path.is_file():
        raise ModelLoadError(
            f"{where}: the model is a bare {model_class} and the run has no "
            f"preprocessor/{PREPROCESSOR_FILE} DictVectorizer to turn rides into its features"
        )
    try:
        vectorizer = pickle.loads(path.read_bytes())  # noqa: S301 - the operator chose this run
    except Exception as error:
        raise ModelLoadError(f"{where}: preprocessor/{PREPROCESSOR_FILE} does not deserialize ({error})") from error
    if not isinstance(vectorizer, DictVectorizer):
        raise ModelLoadError(
            f"{where}: preprocessor/{PREPROCESSOR_FILE} holds a {type(vectorizer).__name__}, expected a DictVectorizer"
        )
    return vectorizer
