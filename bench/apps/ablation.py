"""This service with some performance tricks switched off (bench/ablation_switches.py), for bench/ablation.py.

gunicorn 'bench.apps.ablation:serve("json", "request_log")'

The switches are Gunicorn's app argument, not a setting of the service: they are applied in the
master before the app is built (gunicorn.conf.py loads it there, preload_app), and the workers
fork from it. One log line says which switches took effect, as the built app shows them.
"""

from __future__ import annotations

import logging

from flask import Flask

from bench.ablation_switches import switch_off, tricks_off

logger = logging.getLogger("bench.ablation")


def serve(*off: str) -> Flask:
    switch_off(off)
    from web_service_mlflow.predict import app

    logger.warning("ablation: tricks off in this app: %s", ", ".join(tricks_off(app)) or "none")
    return app
