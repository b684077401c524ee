"""XGBoost models without xgboost: read by treelite, predicted exactly as xgboost predicts.

xgboost 3 no longer reads the legacy binary format that xgboost 1.x wrote; treelite reads it, and
JSON and UBJSON too. treelite is only the reader here: its own predictor (GTIL) adds the base
score last, and so differs from xgboost in the last float32 bits on some rides. `Booster.predict`
follows xgboost's rule instead, and gives its floats bit for bit (the committed fixtures hold it
to xgboost 1.5 and 3.2):

- every input is a float32; a feature the sparse matrix does not hold is *missing*, and goes
  the node's default way; a present one goes left when `value < threshold`;
- the output starts at the base score and adds each tree's float32 leaf, in order, in float32.

A booster trained on the DictVectorizer's sparse matrix (the course's `xgb.DMatrix(X_train)`)
never saw a 0.0 for a one-hot column that is off: such columns were missing. Prediction feeds it
the same sparse matrix, so the same holds at serving time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Rows densified at once while predicting: bounds memory for wide vocabularies.
CHUNK_ROWS = 512
FORMATS = ("xgb", "json", "ubj", "deprecated")


class BoosterError(Exception):
    """The file is not an XGBoost model this service can serve exactly; the message says why."""


@dataclass(frozen=True)
class BoosterTree:
    """One tree as arrays indexed by node; leaves have feature -1."""

    feature: np.ndarray  # int64
    threshold: np.ndarray  # float32: a present value goes left when value < threshold
    default_left: np.ndarray  # bool: where a missing value goes
    left: np.ndarray
    right: np.ndarray
    leaf: np.ndarray  # float32 leaf values (0 at split nodes)
    depth: int


class Booster:
    """An XGBoost regression booster that predicts on a scipy CSR matrix (or a dense array)."""

    def __init__(self, trees: list[BoosterTree], base_score: float, n_features: int, params: dict[str, Any]) -> None:
        self.trees = trees
        self.base_score = np.float32(base_score)
        self.n_features_in_ = n_features
        self.params = params

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        return dict(self.params)

    def predict(self, matrix: Any) -> np.ndarray:
        """xgboost's prediction for each row, as float32 values widened to float64."""
        rows = matrix.shape[0]
        out = np.empty(rows, dtype=np.float32)
        for start in range(0, rows, CHUNK_ROWS):
            out[start : start + CHUNK_ROWS] = self._predict_dense(_with_missing(matrix[start : start + CHUNK_ROWS]))
        return out.astype(np.float64)

    def _predict_dense(self, values: np.ndarray) -> np.ndarray:
        rows = np.arange(values.shape[0])
        total = np.full(values.shape[0], self.base_score, dtype=np.float32)
        for tree in self.trees:
            node = np.zeros(values.shape[0], dtype=np.int64)
            for _ in range(tree.depth):
                feature = tree.feature[node]
                split = feature >= 0
                value = values[rows, np.where(split, feature, 0)]
                go_left = np.where(np.isnan(value), tree.default_left[node], value < tree.threshold[node])
                node = np.where(split, np.where(go_left, tree.left[node], tree.right[node]), node)
            total += tree.leaf[node]  # float32 += float32: xgboost's own rounding, tree by tree
        return total


def _with_missing(matrix: Any) -> np.ndarray:
    """A float32 array with NaN wherever the sparse matrix holds nothing (xgboost's "missing")."""
    if not hasattr(matrix, "tocsr"):
        return np.asarray(matrix, dtype=np.float32)
    csr = matrix.tocsr()
    dense = np.full(csr.shape, np.nan, dtype=np.float32)
    rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    dense[rows, csr.indices] = csr.data.astype(np.float32)
    return dense


def read_booster(path: Path, model_format: str | None = None) -> Booster:
    """Read an XGBoost model file: legacy binary (xgboost 1.x), JSON or UBJSON."""
    import treelite

    kind = _file_kind(path)
    try:
        if kind == "legacy binary":
            model = treelite.frontend.load_xgboost_model_legacy_binary(str(path))
        else:
            model = treelite.frontend.load_xgboost_model(str(path), format_choice=kind, allow_unknown_field=True)
    except Exception as error:  # treelite raises its own error type with the parser's message
        raise BoosterError(f"{path.name} does not read as an XGBoost {kind} model ({error})") from error
    return _from_treelite(json.loads(model.dump_as_json(pretty_print=False)), path.name, kind, model_format)


def _file_kind(path: Path) -> str:
    head = path.open("rb").read(2)
    if head[:1] != b"{":
        return "legacy binary"  # xgboost 1.x's binary format starts with its parameter struct
    return "json" if head[1:2] in b'"\n\r\t ' else "ubjson"


def _from_treelite(dump: dict[str, Any], name: str, kind: str, model_format: str | None) -> Booster:
    where = f"{name} ({kind})"
    if dump.get("task_type") != "kRegressor" or dump.get("num_target") != 1 or dump.get("num_class") != [1]:
        raise BoosterError(
            f"{where} is a {dump.get('task_type')} with {dump.get('num_target')} targets; "
            "one regression output is supported"
        )
    if dump.get("postprocessor") != "identity" or dump.get("average_tree_output"):
        raise BoosterError(
            f"{where} transforms its output ({dump.get('postprocessor')}); "
            "only regression objectives with an identity link are supported (reg:squarederror)"
        )
    if len(dump.get("base_scores", [])) != 1:
        raise BoosterError(f"{where} has {len(dump.get('base_scores', []))} base scores, expected one")
    trees = [_tree(tree, where) for tree in dump["trees"]]
    params = {"format": kind, "model_format": model_format, "trees": len(trees), "base_score": dump["base_scores"][0]}
    return Booster(trees, dump["base_scores"][0], int(dump["num_feature"]), params)


def _tree(tree: dict[str, Any], where: str) -> BoosterTree:
    nodes = tree["nodes"]
    count = len(nodes)
    feature = np.full(count, -1, dtype=np.int64)
    threshold = np.zeros(count, dtype=np.float32)
    default_left = np.zeros(count, dtype=bool)
    left, right = np.zeros(count, dtype=np.int64), np.zeros(count, dtype=np.int64)
    leaf = np.zeros(count, dtype=np.float32)
    for node in nodes:
        i = node["node_id"]
        if "leaf_value" in node:
            if isinstance(node["leaf_value"], list):
                raise BoosterError(f"{where} has vector leaves; one output is supported")
            leaf[i] = node["leaf_value"]
            continue
        if node.get("node_type") != "numerical_test_node" or node.get("comparison_op") != "<":
            raise BoosterError(
                f"{where} has a {node.get('node_type')} split ({node.get('comparison_op')}); "
                "only numerical `<` splits are supported"
            )
        feature[i], threshold[i], default_left[i] = node["split_feature_id"], node["threshold"], node["default_left"]
        left[i], right[i] = node["left_child"], node["right_child"]
    return BoosterTree(feature, threshold, default_left, left, right, leaf, _depth(left, right, feature))


def _depth(left: np.ndarray, right: np.ndarray, feature: np.ndarray) -> int:
    depth, level = 0, [0]
    while level:
        splits = [node for node in level if feature[node] >= 0]
        if not splits:
            return depth
        depth += 1
        level = [int(child) for node in splits for child in (left[node], right[node])]
    return depth


class BoosterPipeline:
    """A DictVectorizer and a booster, held as a scikit-learn Pipeline holds its steps."""

    def __init__(self, vectorizer: Any, booster: Booster) -> None:
        self.steps = [("dictvectorizer", vectorizer), ("model", booster)]

    def predict(self, features: list[dict[str, Any]]) -> np.ndarray:
        vectorizer, booster = self.steps[0][1], self.steps[1][1]
        return booster.predict(vectorizer.transform(features))
