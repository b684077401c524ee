"""Retry what is transient at start-up, with bounded exponential backoff; give up clearly."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from web_service.errors import ModelLoadError

logger = logging.getLogger(__name__)
T = TypeVar("T")

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 8.0


class TransientError(Exception):
    """A failure worth retrying: connection refused, a timeout, a 5xx or throttling answer."""


def with_retries(action: Callable[[], T], what: str, budget_s: float, sleep=time.sleep) -> T:
    """Run `action`, retrying `TransientError` until `budget_s` seconds have passed in all."""
    deadline = time.monotonic() + budget_s
    delay, attempt = FIRST_DELAY_S, 1
    while True:
        try:
            return action()
        except TransientError as error:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ModelLoadError(
                    f"{what}: still failing after {attempt} attempt{'s' if attempt > 1 else ''} over {budget_s:g} s: "
                    f"{error}; "
                    "check that it is up and reachable (MODEL_LOAD_TIMEOUT sets how long to wait)"
                ) from error
            wait = min(delay, left)
            logger.warning("%s: attempt %d failed (%s); retrying in %.1f s", what, attempt, error, wait)
            sleep(wait)
            delay, attempt = min(delay * 2, MAX_DELAY_S), attempt + 1
