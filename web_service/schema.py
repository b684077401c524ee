"""The request contract of POST /predict, checked before the model runs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import ConfigDict, Field, Strict, StrictInt, TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

from web_service.errors import ErrorDetail, InvalidRequest

# TLC taxi zones are numbered 1..265; 264 and 265 are the "unknown" zones and are accepted.
ZoneID = Annotated[StrictInt, Field(ge=1, le=265)]
# Miles. The longest real NYC taxi rides are around 100 miles; TLC records beyond this are errors.
MAX_TRIP_DISTANCE = 500.0
# Strict: a string or a boolean is a client bug, not a distance.
Distance = Annotated[float, Strict(), Field(ge=0, lt=MAX_TRIP_DISTANCE, allow_inf_nan=False)]


class Ride(TypedDict):
    """One taxi ride to predict; fields the model does not use are ignored."""

    __pydantic_config__ = ConfigDict(extra="ignore")  # type: ignore[misc]

    PULocationID: ZoneID
    DOLocationID: ZoneID
    trip_distance: Distance


# Validating into plain dicts: a quarter of the cost of a model instance dumped back to a dict.
RIDE = TypeAdapter(Ride)
_RIDE_LIST = TypeAdapter(list[Ride])


@dataclass
class RideRequest:
    """The validated body of POST /predict: one ride, or a batch answered as a list."""

    rides: list[Ride]
    is_batch: bool


def parse_rides(payload: Any, max_batch: int) -> RideRequest:
    """Validate a decoded JSON body as one ride or a list of rides; say what is wrong otherwise."""
    if isinstance(payload, dict):
        return RideRequest([_validate(RIDE.validate_python, payload, "invalid ride")], is_batch=False)
    if not isinstance(payload, list):
        raise InvalidRequest(
            "the body must be a ride (JSON object) or a list of rides",
            [ErrorDetail("body", "a JSON object or array", json_type(payload))],
        )
    if not 1 <= len(payload) <= max_batch:
        raise InvalidRequest(
            f"a batch holds 1 to {max_batch} rides, this one {len(payload)}",
            [ErrorDetail("body", f"1 to {max_batch} rides", len(payload))],
        )
    return RideRequest(_validate(_RIDE_LIST.validate_python, payload, "invalid rides"), is_batch=True)


def _validate(validate, payload: Any, what: str):
    try:
        return validate(payload)
    except ValidationError as error:
        details = [_detail(item) for item in error.errors(include_url=False)]
        fields = ", ".join(detail.field for detail in details)
        raise InvalidRequest(f"{what}: {fields}", details) from None


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, as a client would say it."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _detail(item: dict[str, Any]) -> ErrorDetail:
    # ("trip_distance",) -> "trip_distance"; (3, "trip_distance") -> "[3].trip_distance"
    field = ".".join(f"[{part}]" if isinstance(part, int) else part for part in item["loc"]).replace(".[", "[")
    field = field or "body"
    received = None if item["type"] == "missing" else _json_safe(item["input"])
    return ErrorDetail(field, _expected(item), received)


def _expected(item: dict[str, Any]) -> str:
    # pydantic says "Input should be ..."; the detail already says what arrived.
    if item["type"] == "missing":
        return "a value: the field is required"
    if item["type"] in ("model_type", "model_attributes_type", "dict_type"):
        return "a ride (JSON object)"
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
    return json_type(value)
