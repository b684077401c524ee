"""Turn "settings + a model loader" into a WSGI app, or stop the process with one clear line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping

from flask import Flask

from web_service.app import create_app
from web_service.environment import read
from web_service.errors import SettingsError, StartupError
from web_service.lineup import Lineup
from web_service.metrics import service_metrics
from web_service.predictor import Predictor
from web_service.redact import display_roots
from web_service.serve import log_level
from web_service.settings import AppSettings
from web_service.views import is_ready, serving

logger = logging.getLogger("web_service")

# Gunicorn's own code for "the app could not be loaded"; it stops the arbiter too.
EXIT_STARTUP_FAILED = 3

Loader = Callable[[Mapping[str, str]], tuple[AppSettings, Predictor | Lineup]]
# Given the environment and the app built from it: what watches the model's source for a new
# version (web_service.server.hotswap), or None.
WatchFactory = Callable[[Mapping[str, str], Flask], object | None]
WATCH = "model_watch"  # the app.extensions key of the app's watch


def configure_logging(environ: Mapping[str, str]) -> None:
    """Log to stderr, in the format Gunicorn uses, at LOG_LEVEL, unless something configured logging first.

    A LOG_LEVEL that is no level (gunicorn.conf.py refuses it too) raises SettingsError, once logging
    is set up at INFO to say so.
    """
    try:
        level = log_level(environ)
    except SettingsError:
        level = "info"
        raise
    finally:
        if not logging.getLogger().handlers:
            logging.basicConfig(level=level.upper(), stream=sys.stderr,
                                format="%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s")  # fmt: skip


def build_app(load: Loader, environ: Mapping[str, str] | None = None, watch: WatchFactory | None = None) -> Flask:
    """Load settings and model once; on failure log why and exit, never serve half-alive."""
    environ = read() if environ is None else environ
    try:
        configure_logging(environ)
        service_metrics()  # an unusable PROMETHEUS_MULTIPROC_DIR fails here, before a model is loaded for nothing
        app = make_app(load, environ)
        if watch is not None:
            app.extensions[WATCH] = watch(environ, app)
    except StartupError as error:
        logger.error("cannot start: %s", error.message)
        raise SystemExit(EXIT_STARTUP_FAILED) from None
    predictor = serving(app).predictor
    logger.info("serving model %s from %s", predictor.model_version, predictor.source)
    return app


def make_app(load: Loader, environ: Mapping[str, str], announce: bool = True) -> Flask:
    """The app the environment names, its models loaded and self-checked; StartupError says why not.

    Start-up and the hot swap (web_service.server.hotswap) both build through here: a new model is held
    to every check the first one passed.
    """
    settings, models = load(environ)
    roots = display_roots(environ)
    for predictor in models.predictors if isinstance(models, Lineup) else (models,):
        predictor.publish(roots)  # before the metrics label the model with its source
    app = create_app(settings, models, announce=announce)
    if not is_ready(app):
        raise StartupError(f"model {serving(app).predictor.model_version} failed its self-check: "
                           f"{serving(app).self_check['error']}")  # fmt: skip
    return app
