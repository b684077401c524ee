"""Load a downloaded run's model folder, reading MLflow's flavours without importing MLflow.

MLflow takes seconds to import; what a served model needs from it is one YAML file and one
deserializer call. Supported:
- the sklearn flavour saved with skops (MLflow's default since 3.14), pickle or cloudpickle, by
  any scikit-learn from 0.24 on (`web_service.unpickle` mends older pickles);
- the xgboost flavour, a Booster saved by xgboost 1.x in the legacy binary format or as JSON or
  UBJSON by later releases, read by treelite (no xgboost needed).
The model is a Pipeline that starts with a DictVectorizer, or a bare regressor or booster beside
the run's ``preprocessor/preprocessor.b`` DictVectorizer, as the course logged them.
What may be deserialized is the service's to say, not the run's (`web_service.trust`): skops
files only of the types it serves, pickles only with ALLOW_PICKLE.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from web_service.errors import ModelLoadError
from web_service.loading import Provenance, unpickle_model
from web_service.trust import Trust, check_trees, granted, skops_types

PREPROCESSOR_FILE = "preprocessor.b"
SKLEARN_FORMATS = ("skops", "pickle", "cloudpickle")
SUPPORTED_FLAVORS = ("sklearn", "xgboost")


def load_run_model(
    model_dir: Path, preprocessor_dir: Path | None, where: str, trust: Trust | None = None
) -> tuple[Any, Provenance]:
    """Load `model_dir` (an MLflow model folder) as a pipeline that takes feature dicts.

    `trust` says what may be deserialized; by default what the entry module granted (web_service.trust).
    """
    trust = trust or granted()
    flavors = read_mlmodel(model_dir, where).get("flavors") or {}
    if "sklearn" in flavors:
        return _load_sklearn(model_dir, _sklearn_flavor(flavors["sklearn"], where), preprocessor_dir, where, trust)
    if "xgboost" in flavors:
        return _load_xgboost(model_dir, flavors["xgboost"], preprocessor_dir, where, trust)
    raise ModelLoadError(
        f"{where}: unsupported model flavour {sorted(flavors)}; this service serves MLflow's "
        "sklearn and xgboost flavours (log the model with mlflow.sklearn or mlflow.xgboost)"
    )


def read_mlmodel(model_dir: Path, where: str) -> dict[str, Any]:
    """The model folder's MLmodel file, parsed."""
    try:
        return yaml.safe_load((model_dir / "MLmodel").read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ModelLoadError(f"{where}: cannot read the MLmodel file ({error})") from error


def training_record(model_dir: Path, where: str) -> dict[str, Any] | None:
    """Params and metrics that web_service_mlflow.train wrote into the MLmodel metadata, if any."""
    return (read_mlmodel(model_dir, where).get("metadata") or {}).get("training")


def _sklearn_flavor(flavor: dict[str, Any], where: str) -> dict[str, Any]:
    if flavor.get("serialization_format", "pickle") not in SKLEARN_FORMATS:
        raise ModelLoadError(
            f"{where}: unsupported sklearn serialization {flavor['serialization_format']!r}, "
            f"expected one of {', '.join(SKLEARN_FORMATS)}"
        )
    return flavor


def _load_sklearn(
    model_dir: Path, flavor: dict[str, Any], preprocessor_dir: Path | None, where: str, trust: Trust
) -> tuple[Any, Provenance]:
    path = model_dir / flavor["pickled_model"]
    fmt, recorded = flavor.get("serialization_format", "pickle"), flavor.get("sklearn_version")
    what = f"the model artifact {path.name}"
    if fmt == "skops":
        model, provenance = _load_skops(path, flavor, where, what, trust), Provenance("scikit-learn", recorded, fmt)
    else:
        trust.check_pickle(where, what, fmt)
        model, provenance = unpickle_model(_read(path, where), where, what, fmt, recorded)
    return _as_dict_pipeline(model, preprocessor_dir, where, trust), provenance


def _load_skops(path: Path, flavor: dict[str, Any], where: str, what: str, trust: Trust) -> Any:
    # The types come from the service and SKOPS_TRUSTED_TYPES, never from MLmodel's skops_trusted_types:
    # whoever wrote the model file wrote that list too.
    try:
        found = skops_types(path)
    except Exception as error:  # not a zip, no schema, not JSON
        raise _not_skops(flavor, where, what, error) from error
    trusted = trust.check_skops(found, where, what)
    try:
        import skops.io

        model = skops.io.load(path, trusted=trusted)
    except Exception as error:  # a corrupt artifact fails deep in the deserializer, with anything
        raise _not_skops(flavor, where, what, error) from error
    check_trees(model, where, what)
    return model


def _not_skops(flavor: dict[str, Any], where: str, what: str, error: Exception) -> ModelLoadError:
    from importlib.metadata import version

    return ModelLoadError(
        f"{where}: {what} does not deserialize as skops ({type(error).__name__}: {error}); it was made by "
        f"scikit-learn {flavor.get('sklearn_version', '(unknown)')}, and {version('scikit-learn')} is installed"
    )


def _load_xgboost(
    model_dir: Path, flavor: dict[str, Any], preprocessor_dir: Path | None, where: str, trust: Trust
) -> tuple[Any, Provenance]:
    from web_service.engine.boosters import BoosterError, BoosterPipeline, read_booster

    path = model_dir / str(flavor.get("data", "model.xgb"))
    try:
        booster = read_booster(path, flavor.get("model_format"))
    except (BoosterError, OSError) as error:
        raise ModelLoadError(
            f"{where}: the xgboost model (made by xgboost {flavor.get('xgb_version', '(unknown)')}) cannot be "
            f"served: {error}"
        ) from error
    vectorizer = _load_preprocessor(preprocessor_dir, where, "xgboost Booster", trust)
    provenance = Provenance("xgboost", flavor.get("xgb_version"), f"xgboost {booster.params['format']}")
    return BoosterPipeline(vectorizer, booster), provenance


def _read(path: Path, where: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ModelLoadError(f"{where}: cannot read {path.name} ({error.strerror})") from error


def _as_dict_pipeline(model: Any, preprocessor_dir: Path | None, where: str, trust: Trust) -> Any:
    # scikit-learn is imported only when a model has to be deserialized: a verified compiled
    # form in the cache is served without it (web_service.engine.compiled_store).
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline) and isinstance(model.steps[0][1], DictVectorizer):
        return model
    if not callable(getattr(model, "predict", None)):
        raise ModelLoadError(f"{where}: the model is a {type(model).__name__}, which cannot predict")
    vectorizer = _load_preprocessor(preprocessor_dir, where, type(model).__name__, trust)
    return Pipeline([("dictvectorizer", vectorizer), ("model", model)])


def _load_preprocessor(preprocessor_dir: Path | None, where: str, model_class: str, trust: Trust) -> Any:
    from sklearn.feature_extraction import DictVectorizer

    path = (preprocessor_dir or Path("/nonexistent")) / PREPROCESSOR_FILE
    if not path.is_file():
        raise ModelLoadError(
            f"{where}: the model is a bare {model_class} and the run has no "
            f"preprocessor/{PREPROCESSOR_FILE} DictVectorizer to turn rides into its features"
        )
    trust.check_pickle(where, f"preprocessor/{PREPROCESSOR_FILE}", "pickle")
    vectorizer, _ = unpickle_model(_read(path, where), where, f"preprocessor/{PREPROCESSOR_FILE}")
    if not isinstance(vectorizer, DictVectorizer):
        raise ModelLoadError(
            f"{where}: preprocessor/{PREPROCESSOR_FILE} holds a {type(vectorizer).__name__}, expected a DictVectorizer"
        )
    return vectorizer
