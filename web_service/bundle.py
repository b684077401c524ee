"""Load the course's pickled ``(DictVectorizer, model)`` file, with no MLflow at all."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

from sklearn.feature_extraction import DictVectorizer
from sklearn.pipeline import Pipeline

from web_service import fastpath
from web_service.errors import ModelLoadError
from web_service.predictor import Predictor


def load_bundle(path: Path) -> Predictor:
    """Read a pickled ``(DictVectorizer, model)`` tuple or fitted Pipeline from `path`."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ModelLoadError(
            f"cannot read MODEL_PATH={path}: {error.strerror}; "
            "point MODEL_PATH at a pickled (DictVectorizer, model) file"
        ) from error
    try:
        bundle = pickle.loads(raw)  # noqa: S301 - the operator chose this file
    except Exception as error:  # unpickling can raise almost anything
        raise ModelLoadError(
            f"MODEL_PATH={path} does not deserialize as a pickle "
            f"({type(error).__name__}: {error}); is it the right file?"
        ) from error
    version = f"{path.name}:{hashlib.sha256(raw).hexdigest()[:12]}"
    model, engine, _ = fastpath.choose(_as_pipeline(bundle, path), f"MODEL_PATH={path}")
    return Predictor(model, model_version=version, source=f"file:{path}", engine=engine)


def _as_pipeline(bundle: object, path: Path) -> Pipeline:
    if isinstance(bundle, Pipeline):
        return bundle
    if isinstance(bundle, tuple) and len(bundle) == 2 and isinstance(bundle[0], DictVectorizer):
        vectorizer, model = bundle
        if callable(getattr(model, "predict", None)):
            return Pipeline([("dictvectorizer", vectorizer), ("model", model)])
    raise ModelLoadError(
        f"MODEL_PATH={path} holds a {type(bundle).__name__}, expected a "
        "(DictVectorizer, model) tuple or a fitted scikit-learn Pipeline"
    )
