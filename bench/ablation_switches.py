"""One switch per performance trick of the serving path: each puts the plain implementation back.

bench/ablation.py starts the service once per switch, through `bench.apps.ablation:serve(...)`,
and measures what each trick buys. Nothing here is a setting of the service: a switch replaces one
function, class or object of web_service in the Gunicorn master, before the app is built, and
Gunicorn forks the workers from it.

Every "off" is what a Flask tutorial would write, giving the same answers. A switch whose target
was renamed or moved fails loudly (`replace` refuses an attribute that does not exist), so that a
refactor cannot leave a switch measuring "as shipped" twice; tests/bench/test_ablation.py holds
that each switch changes what it says.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Flask

# (object, attribute, new value): setattr that refuses an attribute the object does not have.
Patch = Callable[[Any, str, Any], None]


def replace(target: Any, name: str, value: Any) -> None:
    """setattr(target, name, value), only if `target` has `name`: a renamed trick must fail the switch."""
    if not hasattr(target, name):
        raise AttributeError(f"{target!r} has no {name!r}: the trick moved; update bench/ablation_switches.py")
    setattr(target, name, value)


@dataclass(frozen=True)
class Switch:
    """One trick, and how to switch it off."""

    name: str
    trick: str  # what the service does
    off: str  # what the plain implementation does instead
    apply: Callable[[Patch], None] | None = None  # replaces module-level code, before the app is built
    is_off: Callable[[Flask], bool] | None = None  # the switch took effect, seen from the built app
    gunicorn_args: str = ""  # for what Gunicorn's config decides (GUNICORN_CMD_ARGS)


# --- the compiled model ---------------------------------------------------------------------


def _compiled_off(patch: Patch) -> None:
    import web_service_mlflow.loader as loader
    from web_service.engine import fastpath

    patch(fastpath, "choose", pipeline_serves)
    patch(loader, "load_model", load_uncompiled)


def pipeline_serves(pipeline: Any, where: str) -> tuple[Any, Any, None]:
    """fastpath.choose, off: the pipeline serves as loaded, as for a model with no compiled form."""
    from web_service.engine.fastpath import Engine, reference_name

    return pipeline, Engine(reference_name(pipeline), "the compiled form is off (bench/ablation.py)"), None


def load_uncompiled(files: Any, where: str, cache_dir: Any, load: Callable[[], tuple[Any, Any]]) -> tuple[Any, Any]:
    """compiled_store.load_model without the cache of verified forms: the model file loaded and checked."""
    from web_service.loading import admit

    pipeline, provenance = load()
    model, engine, _ = admit(pipeline, provenance, where)  # mended and feature-checked as ever
    return model, engine


def _engine(app: Flask) -> str:
    from web_service.views import serving

    return serving(app).predictor.engine.name


# --- the compiled form's scalar path for small requests ---------------------------------------------


def _scalar_off(patch: Patch) -> None:
    from web_service.engine import compiled

    patch(compiled, "SCALAR_MAX_RIDES", 0)  # every request takes the numpy path


def _scalar_is_off(app: Flask) -> bool:
    from web_service.engine import compiled

    return compiled.SCALAR_MAX_RIDES == 0


# --- metrics added up in memory -------------------------------------------------------------------


class PerRequestMetrics:
    """web_service.metrics.Pending, off: prometheus-client updated on every request, as its docs do."""

    def inc(self, counter: Any) -> None:
        counter.inc()

    def observe(self, histogram: Any, values: Iterable[float]) -> None:
        for value in values:
            histogram.observe(value)

    def flush(self) -> None:
        pass


def _pending_off(patch: Patch) -> None:
    from web_service import metrics

    patch(metrics, "PENDING", PerRequestMetrics())


def _pending_is_off(app: Flask) -> bool:
    from web_service import metrics

    return isinstance(metrics.PENDING, PerRequestMetrics)


# --- the request log written straight to stdout ----------------------------------------------------


class LoggingRequestLog:
    """web_service.requestlog.RequestLog, off: the same JSON line, through `logging` and json.dumps."""

    def __init__(self, model_version: str) -> None:
        self.model_version = model_version
        self.logger = logging.getLogger("ride_duration.requests")
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        self.logger.handlers = [handler]  # one, whichever app (a hot swap builds another) made it last
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False

    def __call__(self, answered: Any) -> None:
        self.logger.info(json.dumps({
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "request_id": answered.request_id,
            "method": answered.method,
            "route": answered.route or answered.path,
            "status": answered.status,
            "latency_ms": round(answered.seconds * 1000, 3),
            "batch_size": answered.batch_size,
            "model_version": json.loads(answered.answered_by) if answered.answered_by else self.model_version,
            "pid": os.getpid(),
        }))  # fmt: skip


def _request_log_off(patch: Patch) -> None:
    import web_service.app as app_module

    patch(app_module, "RequestLog", LoggingRequestLog)


def _request_log_is_off(app: Flask) -> bool:
    return any(isinstance(observer, LoggingRequestLog) for observer in app.extensions["observers"])


# --- rides validated into a TypedDict --------------------------------------------------------------


def _typed_dict_off(patch: Patch) -> None:
    from pydantic import BaseModel, ConfigDict, TypeAdapter

    from web_service import schema

    class Ride(BaseModel):
        """One taxi ride, as a pydantic model: validated, then dumped to the dict the predictor takes."""

        model_config = ConfigDict(extra="ignore")
        PULocationID: schema.ZoneID
        DOLocationID: schema.ZoneID
        trip_distance: schema.Distance

    @dataclass
    class DumpedRideRequest(schema.RideRequest):
        def __post_init__(self) -> None:
            self.rides = [ride.model_dump() for ride in self.rides]

    patch(schema, "RIDE", TypeAdapter(Ride))
    patch(schema, "_RIDE_LIST", TypeAdapter(list[Ride]))
    patch(schema, "RideRequest", DumpedRideRequest)


def _typed_dict_is_off(app: Flask) -> bool:
    from web_service import schema

    return schema.RideRequest.__name__ == "DumpedRideRequest" and schema.RIDE.core_schema["type"] == "model"


SWITCHES = {
    switch.name: switch
    for switch in (
        Switch("compiled", "the compiled model (web_service/engine/), verified against scikit-learn",
               "scikit-learn's pipeline serves (fastpath.choose returns it; no cache of compiled forms)",
               apply=_compiled_off, is_off=lambda app: _engine(app) == "scikit-learn"),
        Switch("scalar", "the compiled form's plain-Python path for requests of up to 8 rides (compiled.py)",
               "every request takes the compiled form's numpy path (SCALAR_MAX_RIDES = 0)",
               apply=_scalar_off, is_off=_scalar_is_off),
        Switch("worker", "the event-loop Gunicorn worker (web_service/server/worker.py DrainingWorker)",
               "Gunicorn's stock sync worker (--worker-class sync)", gunicorn_args="--worker-class sync"),
        Switch("pending", "metrics added up in memory, written every second (metrics.py Pending)",
               "counter.inc() and histogram.observe() on every request",
               apply=_pending_off, is_off=_pending_is_off),
        Switch("request_log", "the request log written straight to stdout as hand-built JSON (requestlog.py)",
               "logging.getLogger(...).info(json.dumps(record)) to stdout, the same fields",
               apply=_request_log_off, is_off=_request_log_is_off),
        Switch("typed_dict", "rides validated into a pydantic TypedDict (schema.py)",
               "a pydantic BaseModel, dumped to a dict", apply=_typed_dict_off, is_off=_typed_dict_is_off),
    )
}  # fmt: skip


def switch_off(names: Iterable[str], patch: Patch = replace) -> None:
    """Switch the named tricks off, before the app is built."""
    for switch in [SWITCHES[name] for name in names]:
        if switch.apply is not None:
            switch.apply(patch)


def tricks_off(app: Flask) -> list[str]:
    """The switches that took effect in this process, as seen from the built app."""
    return [switch.name for switch in SWITCHES.values() if switch.is_off is not None and switch.is_off(app)]
