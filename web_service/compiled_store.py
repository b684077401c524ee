"""Keep each model's verified compiled form in the cache, so a restart needs neither skops, scikit-learn nor treelite.

Entries live in `<MODEL_CACHE_DIR>/compiled/<key>/`, where the key hashes the model's files with
the versions of scikit-learn, numpy and treelite and the compiled format: a retrained model, an
upgraded library or a new engine gets a new key, and so a fresh comparison with the pipeline.
Each entry holds the probe rides and the pipeline's answers to them; every load checks the form
against those answers again before serving it. Both entry points use it: a run's model folder
(web_service_mlflow) and a MODEL_PATH pickle.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

from web_service import compiled, fastpath
from web_service.cache import ModelCache
from web_service.fastpath import Engine
from web_service.loading import Provenance, admit

logger = logging.getLogger(__name__)
COMPILED_FOLDER = "compiled"
# What a model's files are read into when no verified form answers for them.
PipelineLoader = Callable[[], tuple[Any, Provenance]]


def load_model(files: Sequence[Path | None], where: str, cache_dir: Path, load: PipelineLoader) -> tuple[Any, Engine]:
    """The model in `files` as served: its verified compiled form when it has one, else `load()`'s pipeline."""
    cache = ModelCache(cache_dir / COMPILED_FOLDER)
    key = model_key(files)
    entry = cache.get(key)
    if entry is not None and (found := fastpath.load_verified(entry, where)) is not None:
        return found
    pipeline, provenance = load()
    model, engine, probe = admit(pipeline, provenance, where)
    if probe is not None:
        try:
            cache.put(key, lambda folder: fastpath.save_verified(model, probe, engine, folder))
        except OSError as error:  # a read-only cache costs the next start time, nothing else
            logger.warning("%s: cannot keep the compiled form in %s (%s); the next start compiles again",
                           where, cache.root, error)  # fmt: skip
    return model, engine


def model_key(files: Sequence[Path | None]) -> str:
    """A digest of everything the compiled form depends on: each file, or each file in each folder."""
    digest = hashlib.sha256(f"format {compiled.FORMAT_VERSION}".encode())
    for library in ("scikit-learn", "numpy", "treelite"):
        digest.update(f"{library} {version(library)}\n".encode())
    for source in files:
        if source is None or not source.exists():
            continue
        paths = sorted(source.rglob("*")) if source.is_dir() else [source]
        for path in paths:
            if path.is_file():
                digest.update(f"{path.relative_to(source.parent)}\n".encode())
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:32]
