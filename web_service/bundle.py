"""Load the course's pickled ``(DictVectorizer, model)`` file, with no MLflow at all."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from web_service.drift import Profile
from web_service.engine.compiled_store import load_model
from web_service.errors import ModelLoadError
from web_service.loading import Provenance, admit, unpickle_model
from web_service.predictor import Predictor
from web_service.trust import Trust


def load_bundle(path: Path, cache_dir: Path | None = None, allow_pickle: bool = True,
                profile: Profile | None = None) -> Predictor:  # fmt: skip
    """Read a pickled ``(DictVectorizer, model)`` tuple or fitted Pipeline from `path`.

    With `cache_dir`, the file's verified compiled form is kept there: the next start neither
    unpickles the file nor imports scikit-learn. Without `allow_pickle` (ALLOW_PICKLE=false) the
    file is refused before it is unpickled. `profile` is live drift's baseline (DRIFT_PROFILE).
    """
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ModelLoadError(
            f"cannot read MODEL_PATH={path}: {error.strerror}; "
            "point MODEL_PATH at a pickled (DictVectorizer, model) file"
        ) from error
    where = f"MODEL_PATH={path}"

    def load() -> tuple[Any, Provenance]:
        Trust(allow_pickle=allow_pickle).check_pickle(where, "the model file", "pickle")
        bundle, provenance = unpickle_model(raw, where)
        return _as_pipeline(bundle, path), provenance

    if cache_dir is None:
        model, engine, _ = admit(*load(), where=where)
    else:
        model, engine = load_model([path], where, cache_dir, load)
    version = f"{path.name}:{hashlib.sha256(raw).hexdigest()[:12]}"
    return Predictor(model, model_version=version, source=f"file:{path}", engine=engine, profile=profile)


def _as_pipeline(bundle: Any, path: Path) -> Any:
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.pipeline import Pipeline

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
