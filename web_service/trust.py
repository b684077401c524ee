"""What the service agrees to deserialize: the types it serves, and pickles only when told to.

Whoever can write the artifact store writes the model files. Loading a pickle (pickle,
cloudpickle, the course's `preprocessor.b`) runs whatever code the file names, and skops loads
any type it is told to trust; that list used to come from the run's own MLmodel file, written
by the same hand. So:
- a skops file may hold only the types this service can serve (`SERVED_TYPES`), plus those an
  operator names in SKOPS_TRUSTED_TYPES; MLmodel's `skops_trusted_types` is ignored;
- a pickle is loaded only with ALLOW_PICKLE=true: the default for the embedded default run (it
  ships with the code) and for MODEL_PATH (the operator named the file), off otherwise.
Both are checked before a byte is deserialized.

An entry module reads the settings and grants them for the time of the load (`granting`);
outside of it nothing but the served types is trusted, and no pickle.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from web_service.errors import ModelLoadError, SettingsError
from web_service.settings import Environ, env_bool, env_str

# Every type a skops file of a model this service serves is made of: the pipeline and its
# DictVectorizer, the models web_service.engine.compiled knows (trees and their Tree, forests, gradient
# boosting with its losses and DummyRegressor init, linear models), and what they hold.
SERVED_TYPES = frozenset(
    {
        "builtins.dict", "builtins.list", "builtins.tuple", "builtins.str", "builtins.int", "builtins.float",
        "builtins.bool",
        "numpy.ndarray", "numpy.random.mtrand.RandomState",
        "numpy.bool", "numpy.bool_", "numpy.int8", "numpy.int16", "numpy.int32", "numpy.int64", "numpy.uint8",
        "numpy.uint16", "numpy.uint32", "numpy.uint64", "numpy.float16", "numpy.float32", "numpy.float64",
        "sklearn.pipeline.Pipeline",
        "sklearn.feature_extraction._dict_vectorizer.DictVectorizer",
        "sklearn.tree._classes.DecisionTreeRegressor", "sklearn.tree._classes.ExtraTreeRegressor",
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._forest.RandomForestRegressor", "sklearn.ensemble._forest.ExtraTreesRegressor",
        "sklearn.ensemble._gb.GradientBoostingRegressor", "sklearn.dummy.DummyRegressor",
        "sklearn._loss.loss.HalfSquaredError", "sklearn._loss.loss.AbsoluteError", "sklearn._loss.loss.HuberLoss",
        "sklearn._loss.loss.PinballLoss", "sklearn._loss._loss.CyHalfSquaredError",
        "sklearn._loss._loss.CyAbsoluteError", "sklearn._loss._loss.CyHuberLoss", "sklearn._loss._loss.CyPinballLoss",
        "sklearn._loss.link.IdentityLink", "sklearn._loss.link.Interval",
        "sklearn.linear_model._base.LinearRegression", "sklearn.linear_model._ridge.Ridge",
        "sklearn.linear_model._coordinate_descent.Lasso", "sklearn.linear_model._coordinate_descent.ElasticNet",
        "sklearn.linear_model._least_angle.LassoLars", "sklearn.linear_model._bayes.BayesianRidge",
        "sklearn.linear_model._huber.HuberRegressor",
    }
)  # fmt: skip
TYPE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")
TRUSTING = "only if you trust whoever can write it"


@dataclass(frozen=True)
class Trust:
    """What may be deserialized: pickles or not, and the skops types trusted beyond the served ones."""

    # ALLOW_PICKLE: load pickle and cloudpickle files, which can run any code they hold.
    allow_pickle: bool = False
    # SKOPS_TRUSTED_TYPES: module.Class names, comma-separated, a skops file may hold besides SERVED_TYPES.
    skops_types: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Environ, allow_pickle: bool) -> Trust:
        """ALLOW_PICKLE (default `allow_pickle`) and SKOPS_TRUSTED_TYPES."""
        names = tuple(name.strip() for name in (env_str(environ, "SKOPS_TRUSTED_TYPES") or "").split(","))
        for name in names:
            if name and not TYPE_NAME.fullmatch(name):
                raise SettingsError(f"SKOPS_TRUSTED_TYPES must list module.Class names, comma-separated; got {name!r}")
        return cls(env_bool(environ, "ALLOW_PICKLE", allow_pickle), tuple(name for name in names if name))

    def check_pickle(self, where: str, what: str, fmt: str) -> None:
        """Refuse, in one line, to load `what` (a pickle or cloudpickle file) unless ALLOW_PICKLE says so."""
        if not self.allow_pickle:
            raise ModelLoadError(
                f"{where}: {what} is a {fmt} file, and loading one runs any code it holds; "
                f"ALLOW_PICKLE=true allows it, {TRUSTING}"
            )

    def check_skops(self, found: set[str], where: str, what: str) -> list[str]:
        """The types a skops file holds (`skops_types`), once all are trusted; refuse in one line otherwise."""
        refused = sorted(found - SERVED_TYPES - set(self.skops_types))
        if refused:
            raise ModelLoadError(
                f"{where}: {what} holds types this service does not serve: {', '.join(refused)}; "
                f"SKOPS_TRUSTED_TYPES={','.join(refused)} allows them, {TRUSTING}"
            )
        return sorted(found)


def check_trees(model: Any, where: str, what: str) -> None:
    """Refuse trees whose nodes point outside themselves or back up: scikit-learn follows them unchecked.

    skops can vouch for a Tree's type, not for its node indices; a crafted file could make predict
    read out of bounds (a crash, or memory in an answer) or loop. scikit-learn numbers each node's
    children after the node itself, so a child's index lies between its parent's and the end.
    """
    for estimator in _tree_estimators(model):
        tree = estimator.tree_
        nodes, left, right, feature = np.arange(tree.node_count), tree.children_left, tree.children_right, tree.feature
        inner = left != -1
        sound = (
            len(left) == tree.node_count >= 1
            and tree.n_features == getattr(estimator, "n_features_in_", tree.n_features)
            and np.array_equal(inner, right != -1)
            and bool(np.all((left[inner] > nodes[inner]) & (left[inner] < tree.node_count)))
            and bool(np.all((right[inner] > nodes[inner]) & (right[inner] < tree.node_count)))
            and bool(np.all((feature[inner] >= 0) & (feature[inner] < tree.n_features)))
        )
        if not sound:
            raise ModelLoadError(f"{where}: {what} holds a {type(estimator).__name__} whose tree nodes point "
                                 "outside the tree; scikit-learn would read out of bounds")  # fmt: skip


def _tree_estimators(model: Any) -> Iterator[Any]:
    """Every fitted tree in a pipeline, forest or boosting ensemble."""
    for step in getattr(model, "steps", None) or [(None, model)]:
        estimator = step[1]
        members = getattr(estimator, "estimators_", None)
        for member in [estimator, *(np.ravel(members) if members is not None else [])]:
            if hasattr(member, "tree_"):
                yield member


def skops_types(path: Path) -> set[str]:
    """Every module.Class a skops file names, read from its schema without loading anything."""
    found: set[str] = set()

    def note(node: dict) -> dict:  # called for every JSON object, at any depth: every node skops builds
        if isinstance(node.get("__module__"), str) and isinstance(node.get("__class__"), str):
            found.add(f"{node['__module__']}.{node['__class__']}")
        return node

    with zipfile.ZipFile(path) as archive:
        json.loads(archive.read("schema.json"), object_hook=note)
    return found


_granted: ContextVar[Trust | None] = ContextVar("trust", default=None)


@contextmanager
def granting(trust: Trust) -> Iterator[None]:
    """Deserialize under `trust` inside the block: how an entry module hands its settings to the loaders."""
    token = _granted.set(trust)
    try:
        yield
    finally:
        _granted.reset(token)


def granted() -> Trust:
    """The trust granted here: the served skops types and no pickle, unless an entry granted more."""
    return _granted.get() or Trust()
