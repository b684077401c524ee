"""The OpenAPI 3.1 document of the service, built from the same pydantic model that validates.

GET /openapi.json serves it; GET /docs renders it as a page a person can read.
"""

from __future__ import annotations

import html
import json
from typing import Any

from flask import Blueprint, Response, current_app

from web_service.schema import RIDE

openapi_views = Blueprint("openapi", __name__)

JSON = "application/json"


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _text(description: str, media_type: str = "text/plain") -> dict[str, Any]:
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_STRING, _OBJECT = {"type": "string"}, {"type": "object"}
MODEL_SCHEMA = {
    "type": "object",
    "required": ["model_version", "source", "model_class", "model_params", "features", "engine", "libraries",
                 "loaded_at"],
    "properties": {
        "model_version": _STRING,
        "source": {"type": "string", "description": "Where the model was loaded from."},
        "run_id": {"type": ["string", "null"]},
        "registered_model": {"type": ["string", "null"], "description": "<name>/<version> when served by MODEL_URI."},
        "training": {"type": ["object", "null"], "description": "Training parameters and metrics of the run."},
        "model_class": _STRING,
        "model_params": _OBJECT,
        "features": _OBJECT,
        "engine": {
            "type": "object",
            "required": ["name", "detail"],
            "properties": {"name": _STRING, "detail": _STRING},
            "description": "What computes predictions: a compiled form verified against scikit-learn, or "
            "scikit-learn itself, with the reason.",
        },
        "libraries": _OBJECT,
        "loaded_at": _STRING,
    },
}  # fmt: skip
ERROR = _json(_ref("Error"), "An error, always in this shape: 400, 401, 404, 405, 413, 415, 500 or 503.")


def build_document(max_batch: int, protected: bool) -> dict[str, Any]:
    """The document for this app's settings (batch limit, whether a token is required)."""
    security = [{"bearer": []}] if protected else []
    rides = {"type": "array", "items": _ref("Ride"), "minItems": 1, "maxItems": max_batch}
    prediction = {
        "type": "object",
        "required": ["duration", "model_version"],
        "properties": {
            "duration": {"type": "number", "description": "Predicted ride duration, in minutes."},
            "model_version": {"type": "string", "description": "Run ID (and registry version) that predicted it."},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Ride-duration prediction service",
            "version": "1",
            "description": "Predicts NYC taxi ride durations, in minutes, with an MLflow-tracked model.",
        },
        "paths": {
            "/predict": {
                "post": {
                    "summary": "Predict one ride, or a list of rides in order.",
                    "security": security,
                    "requestBody": {"required": True, "content": {JSON: {"schema": {"oneOf": [_ref("Ride"), rides]}}}},
                    "responses": {
                        "200": _json(
                            {"oneOf": [_ref("Prediction"), {"type": "array", "items": _ref("Prediction")}]},
                            "One prediction for a ride; a list, in order, for a list.",
                        ),
                        "default": ERROR,
                    },
                }
            },
            "/invocations": {
                "post": {
                    "summary": "MLflow's scoring protocol: exactly one of the four input keys, or CSV.",
                    "security": security,
                    "requestBody": {
                        "required": True,
                        "content": {
                            JSON: {"schema": _ref("Invocation")},
                            "text/csv": {"schema": _csv_schema(max_batch)},
                        },
                    },
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["predictions"],
                                "properties": {"predictions": {"type": "array", "items": {"type": "number"}}},
                            },
                            "Predicted durations, in minutes, in input order.",
                        ),
                        "default": ERROR,
                    },
                }
            },  # fmt: skip
            "/health": {"get": {"summary": "Liveness.", "responses": {"200": _json(_ref("Health"), "Up.")}}},
            "/ready": {
                "get": {
                    "summary": "Readiness: the model is loaded and passed its self-check.",
                    "responses": {"200": _json({"type": "object"}, "Ready."), "default": ERROR},
                }
            },
            "/model": {
                "get": {
                    "summary": "The served model's identity.",
                    "responses": {"200": _json(MODEL_SCHEMA, "Which model answers, from where, and how.")},
                }
            },
            "/metrics": {
                "get": {"summary": "Prometheus metrics.", "responses": {"200": _text("Prometheus text format.")}}
            },
            "/ping": {"get": {"summary": "MLflow protocol liveness.", "responses": {"200": _text("Up.")}}},
            "/version": {"get": {"summary": "MLflow version spoken.", "responses": {"200": _text("A version.")}}},
            "/openapi.json": {
                "get": {"summary": "This document.", "responses": {"200": _json({"type": "object"}, "OpenAPI.")}}
            },
            "/docs": {
                "get": {"summary": "This document, for people.", "responses": {"200": _text("HTML.", "text/html")}}
            },
        },
        "components": {
            "schemas": {
                "Ride": RIDE.json_schema(),
                "Prediction": prediction,
                "Health": {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
                "Invocation": _invocation_schema(max_batch),
                "Error": _error_schema(),
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _invocation_schema(max_batch: int) -> dict[str, Any]:
    records = {"type": "array", "items": _ref("Ride"), "minItems": 1, "maxItems": max_batch}
    fields = RIDE.json_schema()["properties"]
    row = {"type": "array", "prefixItems": list(fields.values()), "minItems": len(fields), "maxItems": len(fields)}
    split = {
        "type": "object",
        "required": ["columns", "data"],
        "properties": {
            "columns": {"const": list(fields)},
            "data": {"type": "array", "minItems": 1, "maxItems": max_batch, "items": row},
        },
    }
    forms = {"dataframe_split": split, "dataframe_records": records, "instances": records, "inputs": records}
    return {
        "description": "Exactly one of the four input keys; any other key (such as MLflow's params) is ignored.",
        "oneOf": [
            {
                "type": "object",
                "required": [key],
                "properties": {key: schema} | {other: False for other in forms if other != key},
            }
            for key, schema in forms.items()
        ],
    }


# A CSV ride: zones 1..265, a distance of at least 0 and below 500 miles (RIDE's rules, as text).
_CSV_ZONE = "(?:[1-9]|[1-9][0-9]|1[0-9][0-9]|2[0-5][0-9]|26[0-5])"
_CSV_DISTANCE = "(?:[0-9]|[1-9][0-9]|[1-4][0-9][0-9])(?:\\.[0-9]+)?"


def _csv_schema(max_batch: int) -> dict[str, Any]:
    row = f"{_CSV_ZONE},{_CSV_ZONE},{_CSV_DISTANCE}"
    return {
        "type": "string",
        "pattern": f"^PULocationID,DOLocationID,trip_distance(?:\\r?\\n{row}){{1,{max_batch}}}(?:\\r?\\n)?$",
        "description": "A header row, then one ride per row. The pattern is the plain form; as in MLflow, the "
        "columns may also come in another order, quoted, or among others, which are ignored.",
    }


def _error_schema() -> dict[str, Any]:
    detail = {
        "type": "object",
        "required": ["field", "expected", "received"],
        "properties": {"field": {"type": "string"}, "expected": {"type": "string"}, "received": {}},
    }
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "details"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "details": {"type": "array", "items": detail},
                },
            }
        },
    }


@openapi_views.get("/openapi.json")
def openapi_json() -> dict[str, Any]:
    return current_app.extensions["openapi"]


@openapi_views.get("/docs")
def docs() -> Response:
    document = current_app.extensions["openapi"]
    rows = "".join(
        f"<tr><td><code>{method.upper()} {html.escape(path)}</code></td><td>{html.escape(op['summary'])}</td></tr>"
        for path, item in document["paths"].items()
        for method, op in item.items()
    )
    schemas = html.escape(json.dumps(document["components"]["schemas"], indent=2))
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{document['info']['title']}</title></head>"
        f"<body><h1>{document['info']['title']}</h1><p>{document['info']['description']}</p>"
        f"<table>{rows}</table><h2>Schemas</h2><pre>{schemas}</pre>"
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a></p></body></html>"
    )
    return Response(page, mimetype="text/html")
