"""Serve a new model without a restart or a lost request, when its source names a new one.

A `ModelWatch` (web_service_mlflow.watch: a registry alias) says which models its source names
now and builds an app from them. In the Gunicorn master, which built the first app before
forking (GUNICORN_PRELOAD), a thread of `Watcher` asks every MODEL_POLL_SECONDS (with jitter,
and backing off while the source is down). When the answer changes it builds the new app right
there, through the same path as start-up (download into the cache, compile, verify, feature
check, self-check), then hands it to Gunicorn and sends the master SIGHUP: Gunicorn forks new
workers from the new app and stops the old ones gracefully (web_service.server.worker: they answer
every connection they hold or find queued). A candidate that fails is refused, counted
(`ride_duration_model_reload_failures_total`) and logged once; the old model serves on.

A source that is down never touches serving or /ready: one log line when checks start failing,
one when they work again. SIGHUP sent by an operator also checks at once, and tries a refused
candidate again.

Threads and fork: the master forks workers while this thread may be loading a model. The
thread holds no lock of the app's while it waits, and forks that Gunicorn does for a swap
happen after the build is done; a worker respawned during a build inherits a copy of the
half-built candidate, which it never uses.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from flask import Flask

from web_service.app import announce
from web_service.errors import StartupError
from web_service.metrics import retire_model, service_metrics
from web_service.startup import WATCH
from web_service.views import serving

logger = logging.getLogger(__name__)

JITTER = 0.1  # each wait is the period times 0.9 to 1.1: many replicas must not poll in step
MAX_BACKOFF_S = 300.0


class Unavailable(Exception):
    """The source could not be asked, or a candidate not fetched: worth trying again later."""


class ModelWatch(Protocol):
    """A source of models that can name a new one while the service runs."""

    description: str
    poll_seconds: float

    def named(self) -> Mapping[str, str]:
        """What the source names now, per role; raises Unavailable."""

    def serving(self, app: Flask) -> Mapping[str, str]:
        """What `app` serves, in the terms of `named()`."""

    def build(self, named: Mapping[str, str]) -> Flask:
        """An app serving `named`, checked as at start-up; raises StartupError (refused) or Unavailable."""


class Watcher:
    """Check the watch, build and swap in what it names when that changes."""

    def __init__(self, watch: ModelWatch, app: Flask, swap: Callable[[Flask], None],
                 sleep: Callable[[float], bool] | None = None) -> None:  # fmt: skip
        self.watch, self.app, self._swap = watch, app, swap
        self.serving = dict(watch.serving(app))
        self.refused: dict[str, str] | None = None  # what was refused, until the source names something else
        self.failures = 0  # consecutive checks that could not ask the source
        self._problem: str | None = None  # the last failure logged, to log each kind once
        self._wake = threading.Event()
        self._sleep = sleep or self._wake.wait
        self._metrics = service_metrics()
        self._registry_up = self._metrics.registry_up.labels(watch.description)
        self._registry_up.set(1)

    def wake(self) -> None:
        """Check now (SIGHUP), trying a refused candidate again."""
        self.refused = None
        self._wake.set()

    def run_forever(self) -> None:
        while True:
            self._sleep(self.next_wait())
            self._wake.clear()
            try:
                self.check()
            except Exception:  # a bug here must not end the watching for good
                logger.exception("checking %s failed", self.watch.description)

    def next_wait(self) -> float:
        period = self.watch.poll_seconds
        if self.failures:
            period = min(period * 2**self.failures, max(period, MAX_BACKOFF_S))
        return period * random.uniform(1 - JITTER, 1 + JITTER)

    def check(self) -> str:
        """One check: "same", "swapped", "refused" or "unavailable"."""
        try:
            named = dict(self.watch.named())
        except Unavailable as error:
            return self._unavailable("cannot ask", error)
        if self.failures:
            logger.info("%s answers again after %d failed checks", self.watch.description, self.failures)
        self.failures, self._problem = 0, None
        self._registry_up.set(1)
        if named == self.serving or named == self.refused:
            return "same"
        return self._change(named)

    def _change(self, named: dict[str, str]) -> str:
        logger.info("%s names %s (serving %s): loading it", self.watch.description, _shown(named), _shown(self.serving))
        started = time.perf_counter()
        try:
            app = self.watch.build(named)
        except Unavailable as error:
            self._metrics.reload_failures.inc()
            return self._unavailable(f"cannot fetch {_shown(named)} from", error)
        except StartupError as error:
            return self._refuse(named, error.message)
        except Exception as error:  # a bug in loading: refuse, and show where
            logger.exception("loading %s failed", _shown(named))
            return self._refuse(named, f"{type(error).__name__}: {error}")
        old, self.app, self.serving = self.app, app, named
        announce(app)  # before the swap forks workers: they take its readiness with them
        self._swap(app)
        self._retire(old)
        self._metrics.reloads.inc()
        logger.info("swapping in %s (%s), loaded in %.2f s: new workers serve it, the old ones finish what they hold",
                    serving(app).predictor.model_version, _shown(named), time.perf_counter() - started)  # fmt: skip
        return "swapped"

    def _refuse(self, named: dict[str, str], why: str) -> str:
        self.refused = named
        self._metrics.reload_failures.inc()
        logger.error("refusing %s: %s; still serving %s (send SIGHUP to try it again)", _shown(named), why,
                     serving(self.app).predictor.model_version)  # fmt: skip
        return "refused"

    def _unavailable(self, what: str, error: Exception) -> str:
        self.failures += 1
        self._registry_up.set(0)
        problem = f"{what} {self.watch.description}: {error}"
        if problem != self._problem:  # once per kind of failure, not once per check
            self._problem = problem
            logger.warning("%s; still serving %s; checking again with backoff", problem,
                           serving(self.app).predictor.model_version)  # fmt: skip
        return "unavailable"

    def _retire(self, old: Flask) -> None:
        before, now = serving(old).predictor, serving(self.app).predictor
        if (before.model_version, before.source) != (now.model_version, now.source):
            retire_model(before.model_version, before.source)


def _shown(named: Mapping[str, str]) -> str:
    return ", ".join(f"{role}={what}" for role, what in named.items())


# --- in the Gunicorn master: gunicorn.conf.py's when_ready and on_reload hooks -------------------

_watcher: Watcher | None = None
_own_reload = threading.Event()  # set while the SIGHUP that swaps is on its way: not an operator's


def start_watching(server: Any) -> Watcher | None:
    """Start the watch thread, if the app has a watch and was loaded here (preloaded) to swap."""
    global _watcher
    app = getattr(server.app, "callable", None)
    watch = app.extensions.get(WATCH) if isinstance(app, Flask) else None
    if watch is None:
        return None

    def swap(new: Flask) -> None:
        server.app.callable = new  # what Gunicorn's workers are forked with from now on
        _own_reload.set()
        os.kill(server.pid, signal.SIGHUP)  # handled in the master's main loop: reload the workers

    _watcher = Watcher(watch, app, swap)
    threading.Thread(target=_watcher.run_forever, name="model-watch", daemon=True).start()
    logger.info("watching %s every %g s for a new model (SIGHUP checks at once)", watch.description,
                watch.poll_seconds)  # fmt: skip
    return _watcher


def reloading(server: Any) -> None:
    """SIGHUP: Gunicorn replaces the workers; unless it is a swap's own, check the source now too."""
    if _own_reload.is_set():
        _own_reload.clear()
        return
    if _watcher is not None:
        logger.info("SIGHUP: checking %s now", _watcher.watch.description)
        _watcher.wake()
