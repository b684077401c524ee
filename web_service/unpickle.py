"""Unpickle scikit-learn models that older releases made, so that they predict exactly as they did.

Users bring pickles from scikit-learn 0.24 onwards. Three things stand between such a pickle and
today's scikit-learn, and each is mended here, on load:

- **Tree node arrays.** Before 1.3 a tree's nodes had no `missing_go_to_left` field, and today's
  `Tree.__setstate__` refuses them ("node array from the pickle has an incompatible dtype"). The
  field only says where a NaN goes; validated rides never hold NaN (the schema refuses it), so
  adding it changes no prediction. The committed fixtures hold this: their trees predict here
  what the release that made them predicted, bit for bit.
- **Attributes added later**: parameters (`LinearRegression.tol`,
  `DecisionTreeRegressor.monotonic_cst`, ...) and what constructors set (a forest's `estimator`,
  once `base_estimator`). Today's code reads them, old pickles lack them. They get what a freshly
  constructed estimator holds: defaults, which scikit-learn chooses to keep the old behaviour.
- **n_jobs.** A forest predicting on several threads adds its trees in whatever order they finish,
  so its last bits vary from run to run; the course fits with n_jobs=-1 and the pickle keeps it.
  Predicting with n_jobs=1 adds them in order, as the compiled form does.
- **Gradient boosting losses.** Before 1.4 a GradientBoostingRegressor kept its loss as an object
  of `sklearn.ensemble._gb_losses`, a module since removed. Prediction needs only the loss's link
  (the identity, for regression): the old object is read into a placeholder, and the estimator
  is given today's loss for its `loss` parameter (old names such as "ls" mapped to new ones).

scikit-learn warns once per estimator that versions differ (InconsistentVersionWarning); those
warnings are gathered into the `made_with` version, which the loader reports in one line.
"""

from __future__ import annotations

import inspect
import io
import pickle
import pickletools
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

VERSION_KEY = "_sklearn_version"
REMOVED_MODULES = ("sklearn.ensemble._gb_losses",)
# Loss names scikit-learn has renamed since 0.24.
OLD_LOSS_NAMES = {"ls": "squared_error", "lad": "absolute_error"}


@dataclass
class Unpickled:
    """A deserialized object, the scikit-learn release that pickled it, and what was mended."""

    obj: Any
    made_with: str | None  # scikit-learn version recorded in the pickle, if any
    mended: list[str] = field(default_factory=list)


def loads(raw: bytes) -> Unpickled:
    """Unpickle `raw` (pickle or cloudpickle), mending what older scikit-learn releases left out."""
    upgraded_trees = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        obj = _Unpickler(io.BytesIO(raw), upgraded_trees).load()
    made_with = {str(getattr(w.message, "original_sklearn_version", "")) for w in caught} - {""}
    mended = [f"{len(upgraded_trees)} tree node arrays given missing_go_to_left"] if upgraded_trees else []
    mended += mend(obj)
    version = sorted(made_with)[0] if made_with else pickled_sklearn_version(raw)
    return Unpickled(obj, version, mended)


def mend(obj: Any) -> list[str]:
    """Give every estimator in `obj` the parameters its class has gained since; predict with n_jobs=1."""
    mended: list[str] = []
    for estimator in estimators(obj):
        for name, default in _missing_attributes(estimator):
            setattr(estimator, name, default)
            mended.append(f"{type(estimator).__name__}.{name}={default!r}")
        mended += _mend_boosting_loss(estimator)
        n_jobs = getattr(estimator, "n_jobs", None)
        if n_jobs not in (None, 1) and hasattr(estimator, "estimators_"):
            estimator.n_jobs = 1
            mended.append(f"{type(estimator).__name__}.n_jobs={n_jobs!r} -> 1")
    # A forest's hundred trees each gain the same attribute: say it once, with how many.
    counts = Counter(mended)
    return [item if counts[item] == 1 else f"{item} (x{counts[item]})" for item in dict.fromkeys(mended)]


def estimators(obj: Any) -> list[Any]:
    """Every scikit-learn estimator reachable from `obj`: pipeline steps, forest members, ..."""
    from sklearn.base import BaseEstimator

    found, seen, stack = [], set(), [obj]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, BaseEstimator):
            found.append(item)
            stack.extend(vars(item).values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, np.ndarray) and item.dtype == object:
            stack.extend(item.ravel().tolist())
    return found


def _missing_attributes(estimator: Any) -> list[tuple[str, Any]]:
    """What a fresh estimator of the same class holds and this one lacks."""
    try:
        fresh = vars(type(estimator)())
    except Exception:  # a class with required arguments: its signature's defaults at least
        signature = inspect.signature(type(estimator).__init__)
        fresh = {
            name: parameter.default
            for name, parameter in signature.parameters.items()
            if parameter.default is not parameter.empty
        }
    return [(name, value) for name, value in fresh.items() if name not in vars(estimator)]


def _mend_boosting_loss(estimator: Any) -> list[str]:
    current = vars(estimator).get("_loss")
    if type(estimator).__name__ != "GradientBoostingRegressor" or hasattr(current, "link"):
        return []
    estimator.loss = OLD_LOSS_NAMES.get(estimator.loss, estimator.loss)
    estimator._loss = estimator._get_loss(sample_weight=None)  # private: tested by the 1.2.2 fixture
    vars(estimator).pop("loss_", None)
    return [f"GradientBoostingRegressor loss {estimator.loss!r} rebuilt"]


class RemovedObject:
    """Stands in for an object whose class scikit-learn has since removed; keeps its state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state


def pickled_sklearn_version(raw: bytes) -> str | None:
    """The scikit-learn version a pickle records, read without unpickling it (it may not unpickle)."""
    previous = None
    try:
        for _, argument, _ in pickletools.genops(raw):
            if isinstance(argument, str):
                if previous == VERSION_KEY:
                    return argument
                previous = argument
    except Exception:  # a truncated or foreign file: whatever was read before is all there is
        return None
    return None


class _Unpickler(pickle.Unpickler):
    """pickle's own unpickler, handing old tree node arrays to a Tree that upgrades them."""

    def __init__(self, file: io.BytesIO, upgraded: list[int]) -> None:
        super().__init__(file)
        self._upgraded = upgraded

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("sklearn.tree._tree", "Tree"):
            return _tree_class(self._upgraded)
        if module in REMOVED_MODULES:
            return RemovedObject
        return super().find_class(module, name)


def _tree_class(upgraded: list[int]) -> type:
    from sklearn.tree import _tree

    expected = np.dtype(_tree.NODE_DTYPE)

    class UpgradingTree(_tree.Tree):
        """scikit-learn's Tree, accepting node arrays that predate `missing_go_to_left`."""

        __slots__ = ()

        def __reduce__(self):  # pickles as scikit-learn's own Tree
            return (_tree.Tree, *super().__reduce__()[1:])

        def __setstate__(self, state: dict[str, Any]) -> None:
            nodes = state.get("nodes")
            if isinstance(nodes, np.ndarray) and nodes.dtype.names and "missing_go_to_left" not in nodes.dtype.names:
                state = dict(state, nodes=_upgrade_nodes(nodes, expected))
                upgraded.append(1)
            super().__setstate__(state)

    return UpgradingTree


def _upgrade_nodes(nodes: np.ndarray, expected: np.dtype) -> np.ndarray:
    if set(nodes.dtype.names) != set(expected.names) - {"missing_go_to_left"}:
        raise ValueError(f"tree node fields {nodes.dtype.names} are not a known scikit-learn layout")
    upgraded = np.zeros(nodes.shape, dtype=expected)  # missing_go_to_left = 0: no ride is NaN
    for name in nodes.dtype.names:
        upgraded[name] = nodes[name]
    return upgraded
