"""Which models serve: the primary, a canary answering a share of requests, a shadow answering none.

- The canary answers CANARY_PERCENT of requests. The split is sticky on a request key (the
  caller's X-Canary-Key header, else the request ID): one key always lands on the same side,
  in every worker and after every restart, because the bucket is a function of the key, not a
  draw. Hashing alone splits like coin flips: over 10,000 requests at 50 % one run in twenty is
  off by more than a point. The request IDs this service makes are a per-process random prefix
  and a counter (web_service.server.process), so their bucket is the prefix's hash plus the counter
  times a golden-ratio stride: consecutive requests walk all the buckets evenly, and any 10,000
  of a worker's requests split within a few hundredths of a point of the share.
- The shadow scores every request after the answer's model has; its durations are never
  returned, only logged (PREDICTION_LOG) and measured (`ride_duration_shadow_abs_diff_minutes`).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any

from web_service.predictor import Predictor

logger = logging.getLogger(__name__)

CANARY_KEY_HEADER = "X-Canary-Key"
# The split's resolution: hundredths of a percent.
BUCKETS = 10_000
# Coprime with BUCKETS and near its golden section: k * STRIDE mod BUCKETS visits every bucket
# once per BUCKETS steps, and any run of steps spreads evenly (a Weyl sequence).
STRIDE = 6181
_OWN_REQUEST_ID = re.compile(r"[0-9a-f]{32}")  # web_service.server.process.new_request_id: 16 + 16 hex digits


@dataclass(frozen=True)
class Lineup:
    """The models of one app: `primary` always, `canary` and `shadow` when configured."""

    primary: Predictor
    canary: Predictor | None = None
    canary_percent: float = 0.0
    shadow: Predictor | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.canary_percent <= 100:
            raise ValueError(f"canary_percent must be from 0 to 100, got {self.canary_percent!r}")

    @property
    def canary_buckets(self) -> int:
        return round(self.canary_percent * BUCKETS / 100) if self.canary is not None else 0

    def answering(self, key: str) -> Predictor:
        """The model that answers the request with this key."""
        if self.canary is None:
            return self.primary
        return self.canary if bucket(key) < self.canary_buckets else self.primary

    @property
    def predictors(self) -> tuple[Predictor, ...]:
        """Every model of the lineup, the primary first."""
        return tuple(p for p in (self.primary, self.canary, self.shadow) if p is not None)

    def describe(self) -> dict[str, Any]:
        """What /model adds about the canary and the shadow."""
        found: dict[str, Any] = {}
        if self.canary is not None:
            found["canary"] = {"percent": self.canary_percent, "key_header": CANARY_KEY_HEADER,
                               **self.canary.describe()}  # fmt: skip
        if self.shadow is not None:
            found["shadow"] = self.shadow.describe()
        return found


def bucket(key: str) -> int:
    """0 to BUCKETS - 1, the same for the same key in every process (Python's hash() is salted)."""
    if len(key) == 32 and _OWN_REQUEST_ID.fullmatch(key):  # prefix, then counter
        return (_hashed(key[:16]) + int(key[16:], 16) * STRIDE) % BUCKETS
    return _hashed(key)


@functools.lru_cache(maxsize=256)  # a worker's request IDs share one prefix
def _hashed(key: str) -> int:
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS
