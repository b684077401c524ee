"""Start the service under Gunicorn, its server settings checked first: one line for each that is wrong.

    python -m web_service.serve                                  # web_service_mlflow.predict:app
    python -m web_service.serve web_service.predict:app          # any gunicorn arguments, as given
    python -m web_service.serve python -m web_service_mlflow.batch ...   # a command: run as given

The image's entrypoint is this launcher, so `docker run IMAGE python -m web_service_mlflow.batch
...` must run that command, not hand it to Gunicorn: a first argument that names a program on
PATH (and is no Gunicorn option or app) replaces this process, as official images' entrypoints do.

Plain `gunicorn` reads WEB_CONCURRENCY itself, with int(), when its settings module is imported:
before ./gunicorn.conf.py runs, so `WEB_CONCURRENCY=abc` (or set but empty) ends in a traceback
that no config file can prevent. This launcher makes every read gunicorn.conf.py makes (this
module's server_settings, which both call), says each that is wrong, then runs Gunicorn in this
process exactly as the `gunicorn` command would (same arguments, ./gunicorn.conf.py from the
working directory). Standard library and Gunicorn only, so it costs nothing before the checks;
the healthcheck asks the address bind_address() gives Gunicorn.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from web_service.environment import Environ, env_bool, env_choice, env_int, env_str, read
from web_service.errors import SettingsError

DEFAULT_APP = "web_service_mlflow.predict:app"
# As web_service.startup: Gunicorn's code for an app that cannot be loaded.
EXIT_STARTUP_FAILED = 3
DEFAULT_PORT = 9696
LAST_PORT = 65535
# Gunicorn's levels; the app's logging takes the same words (web_service.startup).
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


@dataclass(frozen=True)
class ServerSettings:
    """What gunicorn.conf.py sets from the environment; this launcher checks the same reads first."""

    bind: str
    workers: int
    threads: int
    timeout: int
    graceful_timeout: int
    keepalive: int
    preload: bool
    accesslog: str | None
    loglevel: str
    control_socket: bool


def bind_address(environ: Environ) -> str:
    """BIND, else all interfaces on PORT (default 9696): where Gunicorn listens and the healthcheck asks."""
    port = env_int(environ, "PORT", DEFAULT_PORT, maximum=LAST_PORT)  # checked under BIND too, as the server always has
    return env_str(environ, "BIND") or f"0.0.0.0:{port}"


def log_level(environ: Environ) -> str:
    """LOG_LEVEL, for Gunicorn and the app alike."""
    return env_choice(environ, "LOG_LEVEL", "info", LOG_LEVELS)


def _reads(environ: Environ) -> dict[str, Callable[[], object]]:
    # Each field's read, so that problems() can try every one and server_settings() stops at the first.
    return {
        "bind": lambda: bind_address(environ),
        "workers": lambda: env_int(environ, "WEB_CONCURRENCY", os.cpu_count() or 1),
        "threads": lambda: env_int(environ, "GUNICORN_THREADS", 1),
        "timeout": lambda: env_int(environ, "GUNICORN_TIMEOUT", 30),
        "graceful_timeout": lambda: env_int(environ, "GUNICORN_GRACEFUL_TIMEOUT", 30),
        "keepalive": lambda: env_int(environ, "GUNICORN_KEEPALIVE", 5),
        "preload": lambda: env_bool(environ, "GUNICORN_PRELOAD", True),
        "accesslog": lambda: env_str(environ, "GUNICORN_ACCESSLOG"),
        "loglevel": lambda: log_level(environ),
        "control_socket": lambda: env_bool(environ, "GUNICORN_CONTROL_SOCKET", False),
    }


def server_settings(environ: Environ) -> ServerSettings:
    """The server settings; SettingsError names the first that is wrong."""
    return ServerSettings(**{field: read_field() for field, read_field in _reads(environ).items()})


def problems(environ: Environ) -> list[str]:
    """One line per server setting that gunicorn.conf.py would refuse; blank means unset."""
    found = []
    for read_field in _reads(environ).values():
        try:
            read_field()
        except SettingsError as error:
            found.append(error.message)
    return found


@functools.cache  # gunicorn.conf.py runs again on SIGHUP: this module stays imported, and so does the folder
def own_metrics_folder() -> str:
    """A fresh metrics folder for this server, removed when its master exits."""
    folder = tempfile.mkdtemp(prefix="ride-duration-metrics-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    master = os.getpid()

    def remove() -> None:
        if os.getpid() == master:  # forked workers inherit the handler; only the master may remove the folder
            shutil.rmtree(folder, ignore_errors=True)

    atexit.register(remove)
    return folder


def command(args: Sequence[str]) -> str | None:
    """The program to run instead of Gunicorn, when the first argument names one on PATH."""
    if not args or args[0].startswith("-") or ":" in args[0]:
        return None
    return shutil.which(args[0])


def main(argv: Sequence[str] | None = None, environ: Environ | None = None) -> int:
    """Check the settings, then become Gunicorn (which exits by itself); 3 if a setting is wrong."""
    given = list(sys.argv[1:] if argv is None else argv)
    program = command(given)
    if program is not None:
        os.execv(program, given)
    environ = read() if environ is None else environ
    found = problems(environ)
    for line in found:
        print(f"cannot start: {line}", file=sys.stderr)
    if found:
        return EXIT_STARTUP_FAILED
    args = given or [DEFAULT_APP]
    module = __spec__.name if __spec__ else "web_service.serve"
    if "WEB_CONCURRENCY" in environ and env_str(environ, "WEB_CONCURRENCY") is None:
        # Blank is unset here, as everywhere, but Gunicorn's settings module runs int(WEB_CONCURRENCY)
        # on import: start again with an environment that leaves it out (this one is not written).
        unset = {name: value for name, value in environ.items() if name != "WEB_CONCURRENCY"}
        os.execve(sys.executable, [sys.executable, "-m", module, *args], unset)
    from gunicorn.app.wsgiapp import WSGIApplication

    sys.argv = ["gunicorn", *args]  # what Gunicorn parses its arguments from, as it is built
    server = WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]", prog="gunicorn")
    # What a re-exec (USR2, a binary upgrade) starts again: `python -m web_service.serve <args>`.
    sys.argv = ["-m", module, *args]
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
