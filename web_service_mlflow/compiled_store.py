"""Keep each model's verified compiled form in the cache, so a restart needs neither skops, scikit-learn nor treelite.

Entries live in `<MODEL_CACHE_DIR>/compiled/<key>/`, where the key hashes the model's files with
the versions of scikit-learn, numpy and treelite and the compiled format: a retrained model, an upgraded
library or a new engine gets a new key, and so a fresh comparison with scikit-learn. Each entry
holds the probe rides and scikit-learn's answers to them; every load checks the form against
those answers again before serving it.
"""

from __future__ import annotations

import hashlib
import logging
from importlib.metadata import version
from pathlib import Path
from typing import Any

from web_service import compiled, fastpath
from web_service.fastpath import Engine
from web_service.loading import admit
from web_service_mlflow.cache import ModelCache
from web_service_mlflow.flavor import load_run_model

logger = logging.getLogger(__name__)
COMPILED_FOLDER = "compiled"


def load_model(model_dir: Path, preprocessor_dir: Path | None, where: str, cache_dir: Path) -> tuple[Any, Engine]:
    """The run's model as served: its verified compiled form when it has one, else scikit-learn."""
    cache = ModelCache(cache_dir / COMPILED_FOLDER)
    key = model_key(model_dir, preprocessor_dir)
    entry = cache.get(key)
    if entry is not None and (found := fastpath.load_verified(entry, where)) is not None:
        return found
    pipeline, provenance = load_run_model(model_dir, preprocessor_dir, where)
    model, engine, probe = admit(pipeline, where, provenance)
    if probe is not None:
        try:
            cache.put(key, lambda folder: fastpath.save_verified(model, probe, engine, folder))
        except OSError as error:  # a read-only cache costs the next start time, nothing else
            logger.warning("%s: cannot keep the compiled form in %s (%s); the next start compiles again",
                           where, cache.root, error)  # fmt: skip
    return model, engine


def model_key(model_dir: Path, preprocessor_dir: Path | None) -> str:
    """A digest of everything the compiled form depends on."""
    digest = hashlib.sha256(f"format {compiled.FORMAT_VERSION}".encode())
    for library in ("scikit-learn", "numpy", "treelite"):
        digest.update(f"{library} {version(library)}\n".encode())
    for folder in (model_dir, preprocessor_dir):
        for path in sorted(folder.rglob("*")) if folder and folder.is_dir() else []:
            if path.is_file():
                digest.update(f"{path.relative_to(folder.parent)}\n".encode())
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:32]
