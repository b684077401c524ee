"""Keep each model's verified compiled form in the cache, so a restart needs neither skops, scikit-learn nor treelite.

Entries live in `<MODEL_CACHE_DIR>/compiled/<key>/`, where the key hashes the model's files with
the versions of scikit-learn, numpy and treelite and the compiled format: a retrained model, an
upgraded library or a new engine gets a new key, and so a fresh comparison with the pipeline.
Each entry holds the probe rides and the pipeline's answers to them; every load checks the form
against those answers again before serving it. Both entry points use it: a run's model folder
(web_service_mlflow) and a MODEL_PATH pickle.

Compiling happens in a child process when the cache can be written: loading the model imports
scikit-learn (or treelite) and builds every tree, hundreds of MB that the Gunicorn master would
otherwise keep, and share with every worker it forks, for nothing once the table is built. The
child compiles and saves the verified form, and the master reads it back as a warm start would:
a cold start then holds the memory of a warm one. The child's log lines are replayed by the
master, so each is written once; a model that has no compiled form is loaded by the master itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import traceback
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

from web_service.cache import ModelCache
from web_service.engine import compiled, fastpath
from web_service.engine.fastpath import Engine
from web_service.errors import ModelLoadError
from web_service.loading import Provenance, admit

logger = logging.getLogger(__name__)
COMPILED_FOLDER = "compiled"
# What a model's files are read into when no verified form answers for them.
PipelineLoader = Callable[[], tuple[Any, Provenance]]


def load_model(files: Sequence[Path | None], where: str, cache_dir: Path, load: PipelineLoader) -> tuple[Any, Engine]:
    """The model in `files` as served: its verified compiled form when it has one, else `load()`'s pipeline."""
    cache = ModelCache(cache_dir / COMPILED_FOLDER)
    key = model_key(files)
    found = _verified(cache, key, where)
    if found is None and _writable(cache.root) and _compile_apart(cache, key, where, load):
        found = _verified(cache, key, where)
    if found is not None:
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


def _verified(cache: ModelCache, key: str, where: str) -> tuple[Any, Engine] | None:
    entry = cache.get(key)
    return fastpath.load_verified(entry, where) if entry is not None else None


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


# How a compiling child ends: its exit code.
SAVED, NO_FORM, REFUSED = 0, 10, 11


def _compile_apart(cache: ModelCache, key: str, where: str, load: PipelineLoader) -> bool:
    """Compile and save the verified form in a child process; True if it saved one.

    A model the child refuses (it cannot be loaded, its features are foreign) is refused here
    with the child's message; anything else unexpected leaves the master to do it itself.
    """
    if not hasattr(os, "fork"):
        return False
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(reader)
        _compile_and_exit(cache, key, where, load, writer)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        report = json.loads(pipe.read() or b"{}")
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code in (SAVED, REFUSED):  # the child's lines stand; otherwise the master writes its own
        for name, level, message in report.get("logs", []):
            logging.getLogger(name).log(level, "%s", message)
    if code == REFUSED:
        raise ModelLoadError(report["message"])
    if code not in (SAVED, NO_FORM):
        logger.warning("%s: compiling in a child process failed (exit %s); compiling here instead: %s",
                       where, code, report.get("error", ""))  # fmt: skip
    return code == SAVED


def _compile_and_exit(cache: ModelCache, key: str, where: str, load: PipelineLoader, writer: int) -> None:
    records: list[tuple[str, int, str]] = []
    root = logging.getLogger()
    root.handlers = [_Keep(records)]  # kept for the master to replay, not written twice
    report: dict[str, Any] = {"logs": records}
    code = 1
    try:
        pipeline, provenance = load()
        model, engine, probe = admit(pipeline, provenance, where)
        if probe is None:
            code = NO_FORM
        else:
            cache.put(key, lambda folder: fastpath.save_verified(model, probe, engine, folder))
            code = SAVED
    except ModelLoadError as error:
        code, report["message"] = REFUSED, error.message
    except BaseException:  # the master carries on without the child's help
        report["error"] = traceback.format_exc(limit=3).splitlines()[-1]
    finally:
        os.write(writer, json.dumps(report).encode())
        os._exit(code)


class _Keep(logging.Handler):
    def __init__(self, records: list[tuple[str, int, str]]) -> None:
        super().__init__()
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.levelno, record.getMessage()))


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
