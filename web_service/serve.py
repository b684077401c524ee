"""Start the service under Gunicorn, its server settings checked first: one line for each that is wrong.

    python -m web_service.serve                                  # web_service_mlflow.predict:app
    python -m web_service.serve web_service.predict:app          # any gunicorn arguments, as given
    python -m web_service.serve python -m web_service_mlflow.batch ...   # a command: run as given

The image's entrypoint is this launcher, so `docker run IMAGE python -m web_service_mlflow.batch
...` must run that command, not hand it to Gunicorn: a first argument that names a program on
PATH (and is no Gunicorn option or app) replaces this process, as official images' entrypoints do.

Plain `gunicorn` reads WEB_CONCURRENCY itself, with int(), when its settings module is imported:
before ./gunicorn.conf.py runs, so `WEB_CONCURRENCY=abc` (or set but empty) ends in a traceback
that no config file can prevent. This launcher checks every number and switch gunicorn.conf.py
reads, then runs Gunicorn in this process exactly as the `gunicorn` command would (same arguments,
./gunicorn.conf.py from the working directory). Standard library and Gunicorn only, so it costs
nothing before the checks.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, MutableMapping, Sequence

DEFAULT_APP = "web_service_mlflow.predict:app"
# As web_service.startup: Gunicorn's code for an app that cannot be loaded.
EXIT_STARTUP_FAILED = 3
# What gunicorn.conf.py reads as whole numbers >= 1, and as true or false.
WHOLE_NUMBERS = ("PORT", "WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_TIMEOUT", "GUNICORN_GRACEFUL_TIMEOUT",
                 "GUNICORN_KEEPALIVE")  # fmt: skip
SWITCHES = ("GUNICORN_PRELOAD", "GUNICORN_CONTROL_SOCKET")
SWITCH_WORDS = ("1", "true", "yes", "0", "false", "no")
LAST_PORT = 65535


def problems(environ: Mapping[str, str]) -> list[str]:
    """One line per server setting that Gunicorn or gunicorn.conf.py could not use; blank means unset."""
    found = []
    for name in WHOLE_NUMBERS:
        raw = environ.get(name, "").strip()
        highest = LAST_PORT if name == "PORT" else None
        if raw and not _whole_number(raw, highest):
            found.append(f"{name} must be a whole number {f'from 1 to {highest}' if highest else '>= 1'}, got {raw!r}")
    for name in SWITCHES:
        raw = environ.get(name, "").strip()
        if raw and raw.lower() not in SWITCH_WORDS:
            found.append(f"{name} must be true or false (1 or 0, yes or no), got {raw!r}")
    return found


def _whole_number(raw: str, highest: int | None) -> bool:
    try:
        value = int(raw) if raw.isdigit() else 0  # int() alone would take "+3", "3_0" and " 3"
    except ValueError:  # isdigit() holds for superscripts, which int() refuses
        return False
    return value >= 1 and (highest is None or value <= highest)


def command(args: Sequence[str]) -> str | None:
    """The program to run instead of Gunicorn, when the first argument names one on PATH."""
    if not args or args[0].startswith("-") or ":" in args[0]:
        return None
    return shutil.which(args[0])


def main(argv: Sequence[str] | None = None, environ: MutableMapping[str, str] = os.environ) -> int:
    """Check the settings, then become Gunicorn (which exits by itself); 3 if a setting is wrong."""
    given = list(sys.argv[1:] if argv is None else argv)
    program = command(given)
    if program is not None:
        os.execv(program, given)
    found = problems(environ)
    for line in found:
        print(f"cannot start: {line}", file=sys.stderr)
    if found:
        return EXIT_STARTUP_FAILED
    if "WEB_CONCURRENCY" in environ and not environ["WEB_CONCURRENCY"].strip():
        del environ["WEB_CONCURRENCY"]  # blank is unset here, as everywhere; Gunicorn's int("") would fail
    args = given or [DEFAULT_APP]
    from gunicorn.app.wsgiapp import WSGIApplication

    sys.argv = ["gunicorn", *args]  # what Gunicorn parses its arguments from, as it is built
    server = WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]", prog="gunicorn")
    # What a re-exec (USR2, a binary upgrade) starts again: `python -m web_service.serve <args>`.
    sys.argv = ["-m", __spec__.name if __spec__ else "web_service.serve", *args]
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
