"""Settings read once from the environment at start and checked there (web_service.environment reads it).

A wrong value fails start-up with a message naming the variable and what it should be, rather
than surfacing later as a failed request.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from web_service.drift import Profile, Thresholds, profile_setting
from web_service.environment import Environ, env_bool, env_float, env_int, env_str, env_tokens
from web_service.errors import SettingsError
from web_service.livedrift import LiveDriftSettings
from web_service.predictionlog import check_appendable


@dataclass(frozen=True)
class AppSettings:
    """What the HTTP layer itself needs."""

    # MAX_BODY_BYTES: largest request body accepted; larger ones get 413.
    max_body_bytes: int = 1_048_576
    # MAX_BATCH_SIZE: most rides in one POST /predict list.
    max_batch_size: int = 1000
    # API_TOKEN: bearer tokens (comma-separated) that /predict requires; none means open.
    api_tokens: tuple[str, ...] = ()
    # PREDICTION_LOG: JSON-lines file of every prediction's inputs and outputs; unset means off.
    prediction_log: Path | None = None
    # DRIFT_*: live drift against the run's reference profile (web_service.livedrift).
    live_drift: LiveDriftSettings = LiveDriftSettings()

    @classmethod
    def from_env(cls, environ: Environ) -> AppSettings:
        return cls(
            max_body_bytes=env_int(environ, "MAX_BODY_BYTES", cls.max_body_bytes),
            max_batch_size=env_int(environ, "MAX_BATCH_SIZE", cls.max_batch_size),
            api_tokens=env_tokens(environ, "API_TOKEN"),
            prediction_log=check_appendable(Path(log)) if (log := env_str(environ, "PREDICTION_LOG")) else None,
            live_drift=live_drift_settings(environ),
        )


def live_drift_settings(environ: Environ) -> LiveDriftSettings:
    """DRIFT_MONITOR, DRIFT_INTERVAL_SECONDS, DRIFT_WINDOW, DRIFT_MIN_RIDES and the thresholds."""
    default, lines = LiveDriftSettings(), Thresholds()
    window = env_int(environ, "DRIFT_WINDOW", default.window)
    min_rides = env_int(environ, "DRIFT_MIN_RIDES", min(lines.min_rides, window))
    if min_rides > window:
        raise SettingsError(
            f"DRIFT_MIN_RIDES={min_rides} is more than DRIFT_WINDOW={window}: the window would never hold "
            "enough rides for a verdict; lower DRIFT_MIN_RIDES or raise DRIFT_WINDOW"
        )
    thresholds = Thresholds(
        psi=env_float(environ, "DRIFT_PSI", lines.psi),
        ks=env_float(environ, "DRIFT_KS", lines.ks),
        js=env_float(environ, "DRIFT_JS", lines.js),
        rmse_ratio=lines.rmse_ratio,
        min_rides=min_rides,
    )
    return LiveDriftSettings(
        enabled=env_bool(environ, "DRIFT_MONITOR", default.enabled),
        interval_s=env_float(environ, "DRIFT_INTERVAL_SECONDS", default.interval_s),
        window=window,
        thresholds=thresholds,
    )


def model_cache_dir(environ: Environ) -> Path:
    """MODEL_CACHE_DIR, by default ~/.cache/ride-duration/models (or under XDG_CACHE_HOME)."""
    configured = env_str(environ, "MODEL_CACHE_DIR")
    if configured:
        return Path(configured)
    base = env_str(environ, "XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "ride-duration" / "models"


@dataclass(frozen=True)
class FileModelSettings:
    """Settings of `web_service.predict`: serve a pickled (DictVectorizer, model) file."""

    # MODEL_PATH: the pickled (DictVectorizer, model) file, as the course's lin_reg.bin.
    model_path: Path
    app: AppSettings
    # MODEL_CACHE_DIR: where the file's verified compiled form is kept between starts.
    cache_dir: Path | None = None
    # ALLOW_PICKLE: unpickle the file; on by default, since the operator named it (web_service.trust).
    allow_pickle: bool = True
    # DRIFT_PROFILE: the reference profile (profile.json) live drift compares against; unset, drift is off.
    drift_profile: Profile | None = None

    @classmethod
    def from_env(cls, environ: Environ) -> FileModelSettings:
        model_path = env_str(environ, "MODEL_PATH")
        if model_path is None:
            raise SettingsError(
                "MODEL_PATH is not set: name the pickled (DictVectorizer, model) file to serve, "
                "for example MODEL_PATH=lin_reg.bin"
            )
        return cls(model_path=Path(model_path), app=AppSettings.from_env(environ), cache_dir=model_cache_dir(environ),
                   allow_pickle=env_bool(environ, "ALLOW_PICKLE", True),
                   drift_profile=profile_setting(environ))  # fmt: skip
