"""MLflow's scoring protocol, so that tools built for `mlflow models serve` work against us.

    POST /invocations   {"dataframe_split": ...} | {"dataframe_records": ...} | {"instances": ...}
                        | {"inputs": ...} as JSON, or CSV with a header row
                        -> {"predictions": [minutes, ...]}
    GET  /ping, GET /version

Every input form becomes a list of rides and goes through the same validation as /predict.
`mlflow models serve` cannot serve this pipeline at all: it hands the model a DataFrame, and a
DictVectorizer wants dicts.
"""

from __future__ import annotations

import csv
import io
import re
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from flask import Blueprint, Response, jsonify, request

from web_service.errors import ErrorDetail, InvalidRequest, UnsupportedMediaType
from web_service.schema import json_type
from web_service.views import predict_rides, read_json

mlflow_protocol = Blueprint("mlflow_protocol", __name__)
INTEGER = re.compile(r"[-+]?[0-9]+")
DECIMAL = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
INPUT_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


@mlflow_protocol.post("/invocations")
def invocations() -> Response:
    durations, _, _ = predict_rides(read_records())
    return jsonify(predictions=durations)


@mlflow_protocol.get("/ping")
def ping() -> Response:
    return Response("\n", mimetype="text/plain")


@mlflow_protocol.get("/version")
def mlflow_version() -> Response:
    # The MLflow version this service speaks the protocol of; MLflow itself is not imported.
    try:
        text = version("mlflow")
    except PackageNotFoundError:
        text = "unknown"
    return Response(text, mimetype="text/plain")


def read_records() -> list[Any]:
    """The request's rides as a list of records, whatever MLflow input form carried them."""
    content_type = (request.mimetype or "").lower()
    if content_type == "text/csv":
        return _csv_records(request.get_data(as_text=True))
    if content_type != "application/json":
        raise UnsupportedMediaType(
            "/invocations takes application/json or text/csv",
            [ErrorDetail("Content-Type", "application/json or text/csv", request.content_type)],
        )
    return records_from_json(read_json(request))


def records_from_json(body: Any) -> list[Any]:
    keys = [key for key in INPUT_KEYS if isinstance(body, dict) and key in body]
    if len(keys) != 1:
        raise InvalidRequest(
            "the body must hold exactly one of " + ", ".join(INPUT_KEYS),
            [ErrorDetail("body", f"one of {', '.join(INPUT_KEYS)}", sorted(body) if isinstance(body, dict) else None)],
        )
    value = body[keys[0]]
    if keys[0] == "dataframe_split":
        return _split_records(value)
    if isinstance(value, dict):  # instances/inputs as columns: {"PULocationID": [...], ...}
        return _column_records(value, keys[0])
    if not isinstance(value, list):
        raise InvalidRequest(
            f"{keys[0]} must be a list of rides", [ErrorDetail(keys[0], "a list", type(value).__name__)]
        )
    return value


def _split_records(split: Any) -> list[Any]:
    if not (isinstance(split, dict) and isinstance(split.get("columns"), list) and isinstance(split.get("data"), list)):
        raise InvalidRequest(
            'dataframe_split must be {"columns": [...], "data": [[...], ...]}',
            [ErrorDetail("dataframe_split", "columns and data lists", type(split).__name__)],
        )
    columns = split["columns"]
    for number, row in enumerate(split["data"]):
        # A row of another length is not a table (pandas refuses it too): no value is dropped or guessed.
        if not isinstance(row, list) or len(row) != len(columns):
            received = len(row) if isinstance(row, list) else json_type(row)
            raise InvalidRequest(
                f"dataframe_split.data[{number}] must hold {len(columns)} values, one per column",
                [ErrorDetail(f"[{number}]", f"{len(columns)} values", received)],
            )
    try:
        return [dict(zip(columns, row, strict=True)) for row in split["data"]]
    except TypeError:  # a list or an object as a column name: JSON allows it, a dict key cannot be one
        number = next(number for number, name in enumerate(columns) if isinstance(name, (list, dict)))
        raise InvalidRequest(
            f"dataframe_split.columns[{number}] must be a column name",
            [ErrorDetail(f"columns[{number}]", "a column name (string)", json_type(columns[number]))],
        ) from None


def _column_records(columns: dict[str, Any], key: str) -> list[dict[str, Any]]:
    lengths = {len(values) for values in columns.values() if isinstance(values, list)}
    if len(lengths) != 1 or not all(isinstance(values, list) for values in columns.values()):
        raise InvalidRequest(
            f"{key} as columns needs one list per column, all of one length",
            [ErrorDetail(key, "equal-length lists", {name: type(v).__name__ for name, v in columns.items()})],
        )
    return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def _csv_records(text: str) -> list[dict[str, Any]]:
    # newline="": the csv module reads line ends itself; strict: malformed CSV is an error, not a guess.
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        rows = list(reader)
    except csv.Error as error:
        raise InvalidRequest(
            f"the body is not valid CSV ({error})",
            [ErrorDetail("body", "CSV with a header row", text[:100])],
        ) from None
    names = reader.fieldnames or []
    if len(set(names)) != len(names):  # DictReader would keep the last column of a name, silently
        twice = next(name for name in names if names.count(name) > 1)
        raise InvalidRequest(
            f"the CSV header names the column {twice!r} {names.count(twice)} times",
            [ErrorDetail("header", "each column named once", twice)],
        )
    for number, row in enumerate(rows, start=1):
        if (extra := row.get(None)) is not None:  # DictReader keeps fields beyond the header under None
            raise InvalidRequest(
                f"CSV row {number} has more fields than the header",
                [ErrorDetail(f"[{number - 1}]", f"{len(row) - 1} fields", len(row) - 1 + len(extra))],
            )
    return [{name: _number(value) for name, value in row.items()} for row in rows]


def _number(value: str | None) -> Any:
    # CSV has no types: "10" is the integer 10, "1.5" or "1e-05" the number; anything else stays
    # text, for validation to refuse. Python's int() and float() would also take "1_0", " 10 ",
    # "nan" and "infinity": not numbers a CSV writer makes.
    if value is None:
        return value
    if INTEGER.fullmatch(value):
        return int(value)
    if DECIMAL.fullmatch(value):
        return float(value)
    return value
