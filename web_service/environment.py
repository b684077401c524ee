"""The process environment: the one place it is read, and one set of rules for reading a variable.

Entry points (gunicorn.conf.py, the WSGI modules, the launcher, the healthcheck, the commands) call
`read()` once and pass the copy down; settings take any Mapping, so tests hand in dicts. Nothing
writes os.environ (tests/test_environment.py scans the code for it). A value a library finds only
in the environment reaches it another way: MLflow's client defaults as its variables' defaults
(web_service_mlflow.sources), Spark's Python through the session (batch/spark.py), and
prometheus-client's folder through Gunicorn's `raw_env` (`gunicorn_raw_env`, the one exception).

The rules, the same for every variable:
- a value is stripped, and blank is the same as unset: the default applies;
- a whole number is ASCII digits only ("+3", "3_0", "3.0" and "³" are refused), within its bounds;
- a number is finite and above its minimum;
- a switch is true or false, 1 or 0, yes or no, in any case;
- a choice is one of its words, in any case;
- a wrong value raises SettingsError "<NAME> must be <what is expected>, got '<the value, stripped>'".

Standard library only (web_service.errors is too): gunicorn.conf.py and the image's healthcheck
import it without the app.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

from web_service.errors import SettingsError

Environ = Mapping[str, str]
TRUE_WORDS, FALSE_WORDS = ("true", "1", "yes"), ("false", "0", "no")


def read() -> dict[str, str]:
    """A copy of this process's environment, as it is now: what an entry point reads once and passes down."""
    return dict(os.environ)


def env_str(environ: Environ, name: str) -> str | None:
    """Read a string, stripped; unset and blank both mean "not given"."""
    return environ.get(name, "").strip() or None


def env_int(environ: Environ, name: str, default: int, minimum: int = 1, maximum: int | None = None) -> int:
    """Read a whole number from `minimum` (to `maximum`), or fail naming the variable."""
    raw = env_str(environ, name)
    if raw is None:
        return default
    # isdigit() alone holds for "³", which int() refuses; int() alone takes "+3", "3_0" and "-0".
    value = int(raw) if raw.isascii() and raw.isdigit() else None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        expected = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise SettingsError(f"{name} must be a whole number {expected}, got {raw!r}")
    return value


def env_float(environ: Environ, name: str, default: float, minimum: float = 0.0) -> float:
    """Read a finite number above `minimum`, or fail naming the variable."""
    raw = env_str(environ, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not value > minimum or not math.isfinite(value):
        raise SettingsError(f"{name} must be a number above {minimum:g}, got {raw!r}")
    return value


def env_bool(environ: Environ, name: str, default: bool) -> bool:
    """Read true or false (also 1 or 0, yes or no, in any case), or fail naming the variable."""
    raw = env_str(environ, name)
    if raw is None:
        return default
    if raw.lower() in TRUE_WORDS + FALSE_WORDS:
        return raw.lower() in TRUE_WORDS
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def env_choice(environ: Environ, name: str, default: str, choices: Sequence[str]) -> str:
    """Read one of `choices` (lowercase words; the value in any case), or fail naming the variable."""
    raw = env_str(environ, name)
    if raw is None:
        return default
    if raw.lower() in choices:
        return raw.lower()
    raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")


def env_tokens(environ: Environ, name: str) -> tuple[str, ...]:
    """Read comma-separated tokens; a value holding none (" , ") must not quietly mean "no check"."""
    raw = env_str(environ, name)
    tokens = tuple(token.strip() for token in (raw or "").split(",") if token.strip())
    if raw is not None and not tokens:
        raise SettingsError(
            f"{name} holds no token, got {environ[name]!r}: set one token, or several separated by commas "
            f"(unset {name} to leave /predict open)"
        )
    return tokens


def gunicorn_raw_env(environ: Environ, wanted: Mapping[str, str]) -> list[str]:
    """Gunicorn's `raw_env`: the variables of `wanted` that `environ` leaves unset, as NAME=value.

    The one value this service hands on through an environment, because the library that needs it
    looks nowhere else: prometheus-client's multiprocess value class (values.MultiProcessValue) takes
    no folder argument and reads PROMETHEUS_MULTIPROC_DIR from os.environ whenever a worker opens its
    files (tests/test_environment.py fails if it grows an argument or stops reading the variable).
    Gunicorn's master sets `raw_env` in its own environment, and so its workers', before it loads the
    app; a SIGHUP unsets and sets it again around re-reading gunicorn.conf.py.
    """
    return [f"{name}={value}" for name, value in wanted.items() if env_str(environ, name) is None]
