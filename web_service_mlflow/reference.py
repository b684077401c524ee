"""A run's reference profile: its training rides as the service sees them, kept as `reference/profile.json`.

Training writes it (web_service_mlflow.train), `python -m web_service_mlflow.monitor.profile`
makes one for a run without, and the loader hands it to the predictor as live drift's baseline.
The rides are every ride of the training file that the API's contract accepts, scored by the
run's own model: what the service would have been sent and would have answered.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from web_service.drift import Profile, ProfileError, build_profile, read_profile
from web_service.predictor import Predictor
from web_service_mlflow.monitor.rides import read_one

__all__ = ["ProfileError", "profile_json", "profile_of_file", "read_profile"]


def profile_of_file(location: str, predictor: Predictor, metrics: dict[str, float] | None = None,
                    **about: Any) -> Profile:  # fmt: skip
    """The profile of a TLC file's rides, scored by `predictor`; `about` adds run_id, model_version."""
    rides = read_one(location, predictor)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    return build_profile(rides.columns, metrics, source=rides.sources[0], created=created, **about)


def profile_json(profile: Profile) -> str:
    """The file's text: one line per key, small enough to commit beside a run (about 60 KB)."""
    return json.dumps(profile.to_json(), separators=(",", ":"))
