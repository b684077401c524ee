"""Refuse, at start, a model whose features the service cannot make: never a plausible wrong number.

`prepare_features` makes two features: `PU_DO=<PULocationID>_<DOLocationID>` (one-hot) and
`trip_distance`. A DictVectorizer silently leaves out features it does not know and gives 0.0 to
the ones a ride lacks, so a model trained on anything else would answer every ride with a number,
and every number would be wrong. The vectorizer's vocabulary says what the model was trained on.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from web_service.errors import ModelLoadError
from web_service.features import FEATURE_NAMES

logger = logging.getLogger(__name__)
CATEGORY, DISTANCE = FEATURE_NAMES
WHAT_WE_MAKE = f"{CATEGORY}=<PULocationID>_<DOLocationID> (one-hot) and {DISTANCE}"


def check_features(pipeline: Any, where: str) -> None:
    """Raise ModelLoadError unless every feature the model knows is one `prepare_features` makes."""
    steps = getattr(pipeline, "steps", None) or []
    vectorizer = steps[0][1] if steps else None
    if type(vectorizer).__name__ != "DictVectorizer":
        raise ModelLoadError(
            f"{where}: the model's first step is a {type(vectorizer).__name__}, not a DictVectorizer; "
            f"the service gives the model feature dicts ({WHAT_WE_MAKE})"
        )
    names = [str(name) for name in vectorizer.feature_names_]
    prefix = f"{CATEGORY}{vectorizer.separator}"
    pairs = sum(name.startswith(prefix) for name in names)
    foreign = [name for name in names if not name.startswith(prefix) and name != DISTANCE]
    if foreign or not (pairs or DISTANCE in names):
        raise ModelLoadError(
            f"{where}: the model was trained on {describe_vocabulary(names, vectorizer.separator)}; "
            f"the service makes {WHAT_WE_MAKE}, so this model cannot be served correctly"
        )
    _check_width(vectorizer, steps[1][1] if len(steps) > 1 else None, len(names), where)
    if not pairs:
        logger.warning("%s: the model knows no %s value; it predicts from %s alone", where, CATEGORY, DISTANCE)
    if DISTANCE not in names:
        logger.warning("%s: the model does not use %s; it predicts from %s alone", where, DISTANCE, CATEGORY)


def _check_width(vectorizer: Any, model: Any, width: int, where: str) -> None:
    expected = getattr(model, "n_features_in_", None)
    if expected is not None and int(expected) != width:
        raise ModelLoadError(
            f"{where}: the model expects {int(expected):,} input columns but its DictVectorizer makes {width:,}; "
            "the preprocessor is not the one the model was trained with"
        )


def describe_vocabulary(names: list[str], separator: str) -> str:
    """`PULocationID=… (40 values), DOLocationID=… (40 values), trip_distance`: short, in order of first use."""
    counts = Counter(name.split(separator, 1)[0] for name in names if separator in name)
    parts, seen = [], set()
    for name in names:
        stem = name.split(separator, 1)[0] if separator in name else name
        if stem in seen:
            continue
        seen.add(stem)
        parts.append(f"{stem}{separator}… ({counts[stem]:,} values)" if stem in counts else stem)
    shown = parts[:8] + ([f"and {len(parts) - 8} more"] if len(parts) > 8 else [])
    return ", ".join(shown)
