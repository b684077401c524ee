"""The request contract of POST /predict, checked before the model runs."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import ConfigDict, Field, GetPydanticSchema, Strict, TypeAdapter, ValidationError
from pydantic_core import core_schema
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

from web_service.errors import MAX_DETAILS, ErrorDetail, InvalidRequest

# TLC taxi zones are numbered 1..265; 264 and 265 are the "unknown" zones and are accepted.
FIRST_ZONE, LAST_ZONE = 1, 265
# A zone is an integer as JSON Schema counts them, so 14.0 too: pandas writes an integer column
# holding nulls as floats. It is validated into the int 14 (features "14_50", never "14.0_50");
# 14.5 is refused, and so are strings and booleans: a client bug, not a zone.
_INTEGER_ZONE = core_schema.int_schema(ge=FIRST_ZONE, le=LAST_ZONE, strict=True)
_ANY_NUMBER = core_schema.union_schema(
    [core_schema.int_schema(strict=True), core_schema.float_schema(strict=True)], custom_error_type="int_type"
)
# The range is checked on the number first: 1e300 is out of range, not too big an int.
_ZONE = core_schema.chain_schema([
    _ANY_NUMBER,
    core_schema.float_schema(ge=FIRST_ZONE, le=LAST_ZONE, allow_inf_nan=False),
    core_schema.int_schema(),  # 14.0 -> 14; 14.5 -> "a valid integer, got a number with a fractional part"
])  # fmt: skip
# The document shows the contract, which is exactly what JSON Schema means by integer, 1 to 265.
# Each adapter gets its own copy: pydantic adds its JSON Schema hooks to the schema it is handed, so
# a shared one grew with every adapter built (every app's document) until generating it overflowed.
ZoneID = Annotated[
    int,
    GetPydanticSchema(
        lambda _type, _handler: copy.deepcopy(_ZONE), lambda _schema, handler: handler(copy.deepcopy(_INTEGER_ZONE))
    ),
]
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


# A batch holds 1 to max_batch rides (MAX_BATCH_SIZE, a setting): an empty list is a client bug.
MIN_BATCH = 1


def ride_batch(max_batch: int) -> Any:
    """The type of a batch of rides as parse_rides bounds it: what the OpenAPI document shows."""
    return Annotated[list[Ride], Field(min_length=MIN_BATCH, max_length=max_batch)]


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
        return RideRequest([_validate(RIDE, payload, "invalid ride")], is_batch=False)
    if not isinstance(payload, list):
        raise InvalidRequest(
            "the body must be a ride (JSON object) or a list of rides",
            [ErrorDetail("body", "a JSON object or array", json_type(payload))],
        )
    if not MIN_BATCH <= len(payload) <= max_batch:
        raise InvalidRequest(
            f"a batch holds {MIN_BATCH} to {max_batch} rides, this one {len(payload)}",
            [ErrorDetail("body", f"{MIN_BATCH} to {max_batch} rides", len(payload))],
        )
    return RideRequest(_validate(_RIDE_LIST, payload, "invalid rides"), is_batch=True)


def _validate(contract: TypeAdapter, payload: Any, what: str) -> Any:
    # (A strict integers-only try first saved about 1 % of throughput: bench/results/ablation.md.)
    try:
        return contract.validate_python(payload)
    except ValidationError as error:
        details = [_detail(item) for item in error.errors(include_url=False)]
        fields = ", ".join(detail.field for detail in details[:MAX_DETAILS])
        more = f" and {len(details) - MAX_DETAILS} more" if len(details) > MAX_DETAILS else ""
        raise InvalidRequest(f"{what}: {fields}{more}", details) from None


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
