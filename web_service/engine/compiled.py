"""Compile a fitted (DictVectorizer -> model) pipeline into an exact, fast form.

Why this is exact: `prepare_features` gives every ride two features, `PU_DO` (one-hot: one
vectorizer column, or none for a pair never seen in training) and `trip_distance`; every other
column is 0. A tree ensemble's answer therefore depends only on which PU_DO column is hot and on
which distance thresholds lie below the ride's distance. Tabulating the ensemble over (hot column
that some split uses, distance interval), and adding the trees cell by cell in scikit-learn's own
order, gives its floats bit for bit: a ride costs one dict lookup and one binary search instead of
a walk through every tree. Linear models become one weight lookup and the same two float
operations scikit-learn's sparse dot product does.

Nothing here trusts itself: `web_service.engine.fastpath` compares each compiled form with the pipeline
on probe rides before serving it, and serves scikit-learn when they differ in any bit.
"""

from __future__ import annotations

import json
import math
import struct
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from web_service.engine.boosters import Booster
from web_service.features import FEATURE_NAMES

CATEGORY, DISTANCE = FEATURE_NAMES  # "PU_DO" (one-hot), "trip_distance" (numeric)
# Bump when the saved layout or the meaning of a table changes: older saved forms are recompiled.
FORMAT_VERSION = 2
# A table larger than this is not worth its memory: such a model is served by scikit-learn.
MAX_TABLE_BYTES = 128 * 1024 * 1024
# Up to this many rides, plain Python beats numpy's fixed cost per call (measured: 2 us vs 8 us
# for one ride); both give the same IEEE operations, so the same bits.
SCALAR_MAX_RIDES = 8
_FLOAT32 = struct.Struct("f")
TREE_MEANS = ("RandomForestRegressor", "ExtraTreesRegressor")
SINGLE_TREES = ("DecisionTreeRegressor", "ExtraTreeRegressor")
LINEAR_MODELS = ("LinearRegression", "Ridge", "Lasso", "ElasticNet", "LassoLars", "BayesianRidge", "HuberRegressor")


class CannotCompile(Exception):
    """The model has no exact fast form here; scikit-learn serves it."""


@dataclass(frozen=True)
class ModelFacts:
    """What /model says about a model, known without scikit-learn."""

    model_class: str
    model_params: dict[str, Any]
    vectorized_features: int


class FastModel(Protocol):
    kind: str
    facts: ModelFacts

    def predict(self, features: Sequence[Mapping[str, Any]]) -> np.ndarray: ...

    def predict_columns(self, pickup: np.ndarray, dropoff: np.ndarray, distance: np.ndarray) -> np.ndarray: ...

    def summary(self) -> str: ...


# --- the two fast forms ------------------------------------------------------------------------


class TreeTable:
    """A tree ensemble tabulated over (hot PU_DO column or none, distance interval)."""

    kind = "tree_table"

    def __init__(self, rows: Mapping[str, int], thresholds: np.ndarray, table: np.ndarray, facts: ModelFacts) -> None:
        self.rows = dict(rows)  # PU_DO value -> table row; row 0 is "no column any split uses"
        self.thresholds = thresholds  # sorted distance thresholds, float64
        self.table = table  # rows x (len(thresholds) + 1) predictions: float64, or float32 for xgboost
        self.facts = facts
        self._threshold_list = thresholds.tolist()  # for bisect: Python floats compare as float64

    def predict(self, features: Sequence[Mapping[str, Any]]) -> np.ndarray | list[float]:
        if len(features) <= SCALAR_MAX_RIDES:
            return [self.predict_one(f) for f in features]
        rows = np.fromiter((self.rows.get(f[CATEGORY], 0) for f in features), np.intp, len(features))
        # Interval k holds the distances above exactly k thresholds: x <= t goes left, as in the trees.
        intervals = np.searchsorted(self.thresholds, _tree_inputs(_distances(features)), side="left")
        return self.table[rows, intervals]

    def predict_columns(self, pickup: np.ndarray, dropoff: np.ndarray, distance: np.ndarray) -> np.ndarray:
        """`predict` for rides given as three arrays (zone IDs and miles): the same lookups, no dicts."""
        rows = self._pairs.rows(pickup, dropoff)
        intervals = np.searchsorted(self.thresholds, _tree_inputs(_checked(distance)), side="left")
        return self.table[rows, intervals]

    @cached_property
    def _pairs(self) -> PairIndex:
        return PairIndex(self.rows)

    def predict_one(self, feature: Mapping[str, Any]) -> float:
        """The same lookup for one ride, without numpy's per-call cost."""
        distance = _float32(feature[DISTANCE])
        return self.table.item(self.rows.get(feature[CATEGORY], 0), bisect_left(self._threshold_list, distance))

    def summary(self) -> str:
        rows, intervals = self.table.shape
        return f"{rows} PU_DO rows x {intervals} distance intervals, {self.table.nbytes / 1e6:.1f} MB"

    def arrays(self) -> dict[str, np.ndarray]:
        return {"thresholds": self.thresholds, "table": self.table}


class LinearForm:
    """A linear model: a weight per PU_DO value, a distance weight and an intercept."""

    kind = "linear"

    def __init__(self, rows: Mapping[str, int], weights: np.ndarray, facts: ModelFacts) -> None:
        self.rows = dict(rows)  # PU_DO value -> index into weights; index 0 weighs 0.0 (unseen pair)
        self.weights = weights  # [0.0, PU_DO weights..., distance weight, intercept]
        self.facts = facts

    def predict(self, features: Sequence[Mapping[str, Any]]) -> np.ndarray | list[float]:
        if len(features) <= SCALAR_MAX_RIDES:
            return [self.predict_one(f) for f in features]
        pu_do = self.weights[np.fromiter((self.rows.get(f[CATEGORY], 0) for f in features), np.intp, len(features))]
        return self._combine(pu_do, _distances(features))

    def predict_columns(self, pickup: np.ndarray, dropoff: np.ndarray, distance: np.ndarray) -> np.ndarray:
        """`predict` for rides given as three arrays (zone IDs and miles): the same operations, no dicts."""
        return self._combine(self.weights[self._pairs.rows(pickup, dropoff)], _checked(distance))

    def _combine(self, pu_do: np.ndarray, distance: np.ndarray) -> np.ndarray:
        # scikit-learn's sparse row dot product: ((0 + 1.0 * w_pu_do) + x * w_distance) + intercept.
        return (pu_do + distance * self.weights[-2]) + self.weights[-1]

    @cached_property
    def _pairs(self) -> PairIndex:
        return PairIndex(self.rows)

    def predict_one(self, feature: Mapping[str, Any]) -> float:
        distance = _finite(feature[DISTANCE])
        pu_do = self.weights.item(self.rows.get(feature[CATEGORY], 0))
        return (pu_do + distance * self.weights.item(-2)) + self.weights.item(-1)

    def summary(self) -> str:
        return f"{len(self.rows)} PU_DO weights, a distance weight and an intercept"

    def arrays(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights}


class PairIndex:
    """PU_DO row lookup by zone IDs: a grid indexed [pickup, dropoff], 0 for pairs with no row.

    A key counts only in the exact form `prepare_features` writes ("10_50", never "010_50"), so
    the grid finds a row exactly when the dict lookup on that string would.
    """

    def __init__(self, rows: Mapping[str, int]) -> None:
        pairs = {}
        for key, row in rows.items():
            zones = _zone_pair(key)
            if zones is not None:
                pairs[zones] = row
        size = 1 + max((max(pair) for pair in pairs), default=0)
        self.grid = np.zeros((size, size), dtype=np.intp)
        for (pickup, dropoff), row in pairs.items():
            self.grid[pickup, dropoff] = row

    def rows(self, pickup: np.ndarray, dropoff: np.ndarray) -> np.ndarray:
        pickup, dropoff = np.asarray(pickup, np.int64), np.asarray(dropoff, np.int64)
        size = self.grid.shape[0]
        inside = (pickup >= 0) & (pickup < size) & (dropoff >= 0) & (dropoff < size)
        if inside.all():
            return self.grid[pickup, dropoff]
        return np.where(inside, self.grid[np.where(inside, pickup, 0), np.where(inside, dropoff, 0)], 0)


def _zone_pair(key: str) -> tuple[int, int] | None:
    pickup, _, dropoff = key.partition("_")
    if not (pickup.isdecimal() and dropoff.isdecimal() and pickup.isascii() and dropoff.isascii()):
        return None
    pair = int(pickup), int(dropoff)
    return pair if f"{pair[0]}_{pair[1]}" == key else None


def _distances(features: Sequence[Mapping[str, Any]]) -> np.ndarray:
    return _checked(np.fromiter((f[DISTANCE] for f in features), np.float64, len(features)))


def _checked(distance: np.ndarray) -> np.ndarray:
    distance = np.asarray(distance, dtype=np.float64)
    if not np.isfinite(distance).all():  # scikit-learn refuses these too
        raise ValueError(f"{DISTANCE} must be finite")
    return distance


def _tree_inputs(distance: np.ndarray) -> np.ndarray:
    # scikit-learn's trees read their input as float32 and compare it with float64 thresholds.
    with np.errstate(over="ignore"):
        distance = distance.astype(np.float32)
    if np.isinf(distance).any():  # scikit-learn refuses these too
        raise ValueError(f"{DISTANCE} is too large for float32")
    return distance.astype(np.float64)


def _finite(value: Any) -> float:
    distance = float(value)
    if not math.isfinite(distance):
        raise ValueError(f"{DISTANCE} must be finite")
    return distance


def _float32(value: Any) -> float:
    """`value` rounded to float32, as numpy's astype rounds it, back as a Python float."""
    rounded = _FLOAT32.unpack(_FLOAT32.pack(_finite(value)))[0]  # native "f" rounds overflow to inf
    if math.isinf(rounded):  # scikit-learn refuses these too
        raise ValueError(f"{DISTANCE} is too large for float32")
    return rounded


# --- compiling ---------------------------------------------------------------------------------


def compile_pipeline(pipeline: Any) -> TreeTable | LinearForm:
    """The exact fast form of a Pipeline(DictVectorizer, model), or CannotCompile saying why."""
    steps = getattr(pipeline, "steps", None)
    if not steps or len(steps) != 2 or type(steps[0][1]).__name__ != "DictVectorizer":
        raise CannotCompile("the model is not a two-step Pipeline(DictVectorizer, regressor)")
    vectorizer, model = steps[0][1], steps[1][1]
    if np.dtype(vectorizer.dtype) != np.float64:
        raise CannotCompile(f"the DictVectorizer's dtype is {np.dtype(vectorizer.dtype)}, not float64")
    facts = _facts(model, len(vectorizer.vocabulary_))
    name = type(model).__name__
    if name in TREE_MEANS + SINGLE_TREES + ("GradientBoostingRegressor",) or isinstance(model, Booster):
        return _compile_trees(vectorizer, _ensemble(model, vectorizer), facts)
    if name in LINEAR_MODELS:
        return _compile_linear(vectorizer, model, facts)
    raise CannotCompile(f"no fast form for {name}")


def model_facts(pipeline: Any) -> ModelFacts:
    """Class, parameters and vectorized width of a compiled form, a Pipeline or a bare model."""
    if isinstance(getattr(pipeline, "facts", None), ModelFacts):
        return pipeline.facts
    steps = getattr(pipeline, "steps", [])
    model = steps[-1][1] if steps else pipeline
    vectorizer = steps[0][1] if steps else None
    return _facts(model, len(getattr(vectorizer, "feature_names_", [])))


def _facts(model: Any, vectorized: int) -> ModelFacts:
    try:
        params = model.get_params(deep=False) if hasattr(model, "get_params") else {}
    except Exception:  # an estimator from another release may lack a parameter its class reads
        params = {}
    safe = {k: v if isinstance(v, (str, int, float, bool, type(None))) else repr(v) for k, v in params.items()}
    return ModelFacts(type(model).__name__, safe, vectorized)


def _columns(vectorizer: Any) -> tuple[dict[int, str], int | None]:
    """Vectorizer columns a ride can make hot (column -> PU_DO value), and the distance column."""
    prefix = f"{CATEGORY}{vectorizer.separator}"
    hot = {column: name[len(prefix) :] for name, column in vectorizer.vocabulary_.items() if name.startswith(prefix)}
    return hot, vectorizer.vocabulary_.get(DISTANCE)


@dataclass(frozen=True)
class TreeArrays:
    """One tree, whatever made it, in the terms the table needs; leaves have feature -1."""

    feature: np.ndarray
    threshold: np.ndarray  # float64: a distance at or under it goes left
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray  # leaf values
    hot_left: np.ndarray  # bool per node: a one-hot column holding 1.0 goes left
    cold_left: np.ndarray  # bool per node: a one-hot column that is off goes left


@dataclass(frozen=True)
class Ensemble:
    """The trees and how their library adds them up: start, scale per tree, final divisor, dtype."""

    trees: list[TreeArrays]
    start: float
    scale: float | None = None
    divisor: int | None = None
    dtype: type = np.float64  # xgboost adds in float32


def _compile_trees(vectorizer: Any, ensemble: Ensemble, facts: ModelFacts) -> TreeTable:
    trees = ensemble.trees
    hot_values, distance_column = _columns(vectorizer)
    split = np.unique(np.concatenate([tree.feature[tree.feature >= 0] for tree in trees]))
    hot_columns = [int(column) for column in split if int(column) in hot_values]
    row_of = {column: row for row, column in enumerate(hot_columns, start=1)}
    thresholds = np.unique(np.concatenate([tree.threshold[tree.feature == distance_column] for tree in trees]))
    shape = (len(hot_columns) + 1, len(thresholds) + 1)
    size = shape[0] * shape[1] * np.dtype(ensemble.dtype).itemsize
    if size > MAX_TABLE_BYTES:
        raise CannotCompile(f"its table would take {size / 1e6:.0f} MB ({shape[0]} x {shape[1]})")
    table = np.full(shape, ensemble.start, dtype=ensemble.dtype)
    # Cell by cell, tree by tree, the same float operations in the same order as the library.
    for tree in trees:
        leaves = _tabulate(tree, row_of, distance_column, thresholds, shape, ensemble.dtype)
        table += leaves if ensemble.scale is None else ensemble.scale * leaves
    if ensemble.divisor is not None:
        table /= ensemble.divisor
    rows = {hot_values[column]: row for column, row in row_of.items()}
    # An xgboost table stays float32: every value is one, and half the memory is shared by fewer pages.
    return TreeTable(rows, thresholds, table, facts)


def _ensemble(model: Any, vectorizer: Any) -> Ensemble:
    """The trees and how scikit-learn (or xgboost) combines them."""
    if isinstance(model, Booster):
        return _booster_ensemble(model, vectorizer)
    name = type(model).__name__
    if getattr(model, "n_outputs_", 1) != 1:
        raise CannotCompile(f"{name} has {model.n_outputs_} outputs; one is supported")
    if name in TREE_MEANS:  # zeros, += each tree, /= number of trees
        return Ensemble([_sklearn_tree(e.tree_) for e in model.estimators_], 0.0, None, len(model.estimators_))
    if name in SINGLE_TREES:
        return Ensemble([_sklearn_tree(model.tree_)], 0.0)
    # GradientBoostingRegressor: the init estimator's constant, then += learning_rate * each stage.
    trees = [_sklearn_tree(e.tree_) for e in model.estimators_[:, 0]]
    return Ensemble(trees, _boosting_start(model), float(model.learning_rate))


def _sklearn_tree(tree: Any) -> TreeArrays:
    # scikit-learn sends x <= threshold left; a hot column holds 1.0, a cold one 0.0.
    threshold = tree.threshold
    return TreeArrays(tree.feature, threshold, tree.children_left, tree.children_right, tree.value[:, 0, 0],
                      threshold >= 1.0, threshold >= 0.0)  # fmt: skip


def _booster_ensemble(booster: Booster, vectorizer: Any) -> Ensemble:
    # xgboost sends a float32 x left when x < t, that is when x <= the float32 just below t. A
    # one-hot column that is off is absent from the sparse matrix, so missing: the default way.
    sparse = bool(getattr(vectorizer, "sparse", True))
    trees = []
    for tree in booster.trees:
        below = np.nextafter(tree.threshold, np.float32(-np.inf)).astype(np.float64)
        hot_left = np.float32(1.0) < tree.threshold
        cold_left = tree.default_left if sparse else np.float32(0.0) < tree.threshold
        trees.append(TreeArrays(tree.feature, below, tree.left, tree.right, tree.leaf, hot_left, cold_left))
    return Ensemble(trees, float(booster.base_score), dtype=np.float32)


def _boosting_start(model: Any) -> float:
    if model.init_ == "zero":
        return 0.0
    if type(model.init_).__name__ != "DummyRegressor":
        raise CannotCompile(f"its init estimator is a {type(model.init_).__name__}, not a constant")
    return float(np.asarray(model.init_.constant_, dtype=np.float64).ravel()[0])


def _tabulate(
    tree: TreeArrays,
    row_of: dict[int, int],
    distance_column: int | None,
    thresholds: np.ndarray,
    shape: tuple[int, int],
    dtype: type = np.float64,
) -> np.ndarray:
    """One tree's leaf value for every (row, distance interval) cell."""
    feature, threshold, value = tree.feature, tree.threshold, tree.value
    left, right = tree.left, tree.right
    position = np.searchsorted(thresholds, threshold)  # where each distance split sits among all of them
    cells = np.empty(shape, dtype=dtype)
    pinned = []  # leaves reached only with one given column hot, written after the shared ones
    # (node, first interval, end interval, the row the path requires or None, rows it excludes)
    stack: list[tuple[int, int, int, int | None, frozenset[int]]] = [(0, 0, shape[1], None, frozenset())]
    while stack:
        node, low, high, row, excluded = stack.pop()
        if low >= high:
            continue
        column = int(feature[node])
        if column < 0:  # a leaf
            if row is None:
                cells[:, low:high] = value[node]  # excluded rows are overwritten by their own leaves
            else:
                pinned.append((row, low, high, value[node]))
        elif column == distance_column:
            cut = int(position[node]) + 1  # intervals below `cut` lie at or under this threshold
            stack.append((left[node], low, min(high, cut), row, excluded))
            stack.append((right[node], max(low, cut), high, row, excluded))
        else:
            hot_child = left[node] if tree.hot_left[node] else right[node]
            cold_child = left[node] if tree.cold_left[node] else right[node]
            split_row = row_of.get(column)  # None: a column no ride can make hot, always off
            if split_row is None or (row is not None and row != split_row):
                stack.append((cold_child, low, high, row, excluded))
            elif row == split_row:
                stack.append((hot_child, low, high, row, excluded))
            else:
                if split_row not in excluded:
                    stack.append((hot_child, low, high, split_row, excluded))
                stack.append((cold_child, low, high, None, excluded | {split_row}))
    for row, low, high, leaf in pinned:
        cells[row, low:high] = leaf
    return cells


def _compile_linear(vectorizer: Any, model: Any, facts: ModelFacts) -> LinearForm:
    coef = np.asarray(model.coef_, dtype=np.float64)
    if coef.ndim != 1 or np.ndim(model.intercept_) != 0:
        raise CannotCompile(f"{facts.model_class} has {coef.ndim}-d coefficients; one output is supported")
    hot_values, distance_column = _columns(vectorizer)
    columns = sorted(hot_values)
    distance_weight = coef[distance_column] if distance_column is not None else 0.0
    weights = np.concatenate([[0.0], coef[columns], [distance_weight, float(model.intercept_)]])
    rows = {hot_values[column]: row for row, column in enumerate(columns, start=1)}
    return LinearForm(rows, weights, facts)


# --- saving and loading: a compiled form is reused across restarts without scikit-learn ---------


def save(model: TreeTable | LinearForm, folder: Path) -> None:
    """Write `model` into an empty folder: one JSON file and one .npy file per array."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT_VERSION, "kind": model.kind, "rows": model.rows, "facts": asdict(model.facts)}
    (folder / "engine.json").write_text(json.dumps(meta))
    for name, array in model.arrays().items():
        np.save(folder / f"{name}.npy", array, allow_pickle=False)


def load(folder: Path) -> TreeTable | LinearForm:
    """Read a form `save` wrote; arrays are memory-mapped, so processes share their pages."""
    meta = json.loads((folder / "engine.json").read_text())
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(f"compiled format {meta.get('format')}, expected {FORMAT_VERSION}")
    facts = ModelFacts(**meta["facts"])

    def array(name: str) -> np.ndarray:
        return np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)

    if meta["kind"] == TreeTable.kind:
        return TreeTable(meta["rows"], array("thresholds"), array("table"), facts)
    if meta["kind"] == LinearForm.kind:
        return LinearForm(meta["rows"], array("weights"), facts)
    raise ValueError(f"unknown compiled kind {meta['kind']!r}")
