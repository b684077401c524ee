"""From a model file's bytes to what serves: deserialized, mended, checked, compiled, reported.

Every way a model arrives (a MODEL_PATH pickle, an MLflow run's sklearn or xgboost flavour) ends
here, so that each is held to the same rules:
- a pickle from an older scikit-learn is mended on load (`web_service.unpickle`), and if it still
  cannot be read, the one line says which release made it and which is installed;
- a model whose features `prepare_features` does not make is refused (`web_service.modelcheck`);
- the compiled form serves only if it equals the pipeline bit for bit (`web_service.engine.fastpath`);
- one line says which release made the model and whether it was verified.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from web_service import unpickle
from web_service.engine import fastpath
from web_service.engine.fastpath import Engine, Probe
from web_service.errors import ModelLoadError
from web_service.modelcheck import check_features

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Provenance:
    """Which library and release made a model, in which format, and what loading it had to mend."""

    library: str  # "scikit-learn" or "xgboost"
    made_with: str | None  # the release that saved it, when the file or MLmodel says
    format: str  # "pickle", "cloudpickle", "skops", "xgboost legacy binary", ...
    mended: tuple[str, ...] = field(default_factory=tuple)

    @property
    def installed(self) -> str:
        """The release that serves it here; xgboost models are read by treelite, not xgboost."""
        name = "treelite" if self.library == "xgboost" else self.library
        return f"{name} {_version(name)}"

    @property
    def foreign(self) -> bool:
        """Made by another release (or another library) than the one serving it."""
        return self.library != "scikit-learn" or self.made_with != _version("scikit-learn")

    def describe(self) -> dict[str, Any]:
        found = {"library": self.library, "version": self.made_with, "format": self.format,
                 "served_with": self.installed}  # fmt: skip
        return found | ({"mended": list(self.mended)} if self.mended else {})


def unpickle_model(
    raw: bytes, where: str, what: str = "the model", fmt: str = "pickle", recorded_version: str | None = None
) -> tuple[Any, Provenance]:
    """Unpickle a scikit-learn model of any release from 0.24 on; refuse it in one line if impossible."""
    try:
        done = unpickle.loads(raw)
    except Exception as error:  # unpickling can raise almost anything
        made_with = recorded_version or unpickle.pickled_sklearn_version(raw)
        installed = _version("scikit-learn")
        origin = (
            f"it was made by scikit-learn {made_with}, and {installed} is installed"
            if made_with
            else f"it records no scikit-learn release (installed: {installed})"
        )
        raise ModelLoadError(
            f"{where}: {what} does not deserialize as {fmt} ({type(error).__name__}: {error}); {origin}"
        ) from error
    made_with = done.made_with or recorded_version or _version("scikit-learn")
    return done.obj, Provenance("scikit-learn", made_with, fmt, tuple(done.mended))


def admit(pipeline: Any, provenance: Provenance, where: str) -> tuple[Any, Engine, Probe | None]:
    """Check the model's features, pick its engine, and say in one line what it was made with."""
    # Whatever the format (skops too): a forest saved with n_jobs=-1 predicts with 1, reproducibly.
    if mended := unpickle.mend(pipeline):
        provenance = replace(provenance, mended=(*provenance.mended, *mended))
    check_features(pipeline, where)
    model, engine, probe = fastpath.choose(pipeline, where)
    engine = Engine(engine.name, engine.detail, provenance.describe())
    if provenance.foreign:
        report(where, provenance, engine)
    elif mended:
        logger.info("%s: mended on load: %s", where, ", ".join(mended))
    return model, engine, probe


def report(where: str, provenance: Provenance, engine: Engine) -> None:
    """One line: who made the model, what serves it, and whether that was verified."""
    made = f"{provenance.library} {provenance.made_with or '(release unknown)'} ({provenance.format})"
    mended = f"; mended on load: {', '.join(provenance.mended)}" if provenance.mended else ""
    if engine.compiled:
        logger.info("%s: model made with %s, served with %s%s; verified: %s", where, made, provenance.installed,
                    mended, engine.detail)  # fmt: skip
    else:
        logger.warning("%s: model made with %s, served with %s%s; not verified (%s), %s answers as loaded",
                       where, made, provenance.installed, mended, engine.detail, engine.name)  # fmt: skip


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "(not installed)"
