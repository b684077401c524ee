"""The request contract of POST /predict, checked before the model runs."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, StrictInt, ValidationError

from web_service.errors import ErrorDetail, InvalidRequest

# TLC taxi zones are numbered 1..265 (264 and 265 are the "unknown" zones).
ZoneID = Annotated[StrictInt, Field(ge=1, le=265)]
# Strict: a string or a boolean is a client bug, not a distance.
Distance = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]


class Ride(BaseModel):
    """One taxi ride to predict; fields the model does not use are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    PULocationID: ZoneID
    DOLocationID: ZoneID
    trip_distance: Distance


def parse_ride(payload: Any) -> Ride:
    """Validate a decoded JSON body as one ride, or raise `InvalidRequest` naming every bad field."""
    if not isinstance(payload, dict):
        raise InvalidRequest(
            "the body must be one ride as a JSON object",
            [ErrorDetail("body", "a JSON object", json_type(payload))],
        )
    try:
        return Ride.model_validate(payload)
    except ValidationError as error:
        details = [_detail(item) for item in error.errors(include_url=False)]
        fields = ", ".join(detail.field for detail in details)
        raise InvalidRequest(f"invalid ride: {fields}", details) from None


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, as a client would say it."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _detail(item: dict[str, Any]) -> ErrorDetail:
    field = ".".join(str(part) for part in item["loc"]) or "body"
    received = None if item["type"] == "missing" else _json_safe(item["input"])
    return ErrorDetail(field, _expected(item), received)


def _expected(item: dict[str, Any]) -> str:
    # pydantic says "Input should be ..."; the detail already says what arrived.
    if item["type"] == "missing":
        return "a value: the field is required"
    message = item["msg"]
    for prefix in ("Input should be ", "Input "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def _json_safe(value: Any) -> Any:
    # NaN and Infinity are not JSON; echo them back as text.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)[:200]
