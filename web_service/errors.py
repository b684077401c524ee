"""One exception family, one JSON error shape.

Every error a client sees is ``{"error": {"code", "message", "details": [...]}}``; each detail
names a ``field``, what was ``expected`` and what was ``received``. Errors raised while the
service starts (bad settings, a model that cannot load) share the family so that the entry
module can turn any of them into one clear log line and a non-zero exit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# An answer lists at most this many details, then one saying how many more: 1,000 empty rides are
# 3,000 problems, and listing them all answered a 3 KB request with 334 KB.
MAX_DETAILS = 20


@dataclass(frozen=True)
class ErrorDetail:
    """One thing wrong with a request: which field, what was expected, what arrived."""

    field: str
    expected: str
    received: Any

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ServiceError(Exception):
    """Base of every error the service raises on purpose; carries its HTTP status and code."""

    status: int = 500
    code: str = "internal_error"
    headers: dict[str, str] = {}

    def __init__(
        self,
        message: str,
        details: list[ErrorDetail] | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = _capped(details or [])
        self.status = status or self.status
        self.code = code or self.code
        self.headers = headers or self.headers

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "details": [detail.to_dict() for detail in self.details],
            }
        }


def _capped(details: list[ErrorDetail]) -> list[ErrorDetail]:
    if len(details) <= MAX_DETAILS:
        return details
    more = len(details) - MAX_DETAILS
    return [*details[:MAX_DETAILS], ErrorDetail("body", f"at most {MAX_DETAILS} problems listed", f"{more} more")]


class InvalidRequest(ServiceError):
    """The request body is not a valid ride."""

    status = 400
    code = "invalid_request"


class UnsupportedMediaType(ServiceError):
    """The request body is not JSON."""

    status = 415
    code = "unsupported_media_type"


class Unauthorized(ServiceError):
    """The request lacks the bearer token that API_TOKEN requires."""

    status = 401
    code = "unauthorized"
    headers = {"WWW-Authenticate": 'Bearer realm="ride-duration"'}


class NotReady(ServiceError):
    """The model has not passed its self-check: this process must not answer predictions."""

    status = 503
    code = "not_ready"


class StartupError(ServiceError):
    """The service cannot start: a setting is wrong or the model cannot be loaded."""

    code = "startup_error"


class SettingsError(StartupError):
    """An environment variable is missing or holds a value the service cannot use."""

    code = "invalid_setting"


class ModelLoadError(StartupError):
    """The model, or an artifact it needs, cannot be found or read."""

    code = "model_load_error"
