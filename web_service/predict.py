"""WSGI entry: serve a pickled (DictVectorizer, model) file named by MODEL_PATH.

MODEL_PATH=lin_reg.bin gunicorn web_service.predict:app
"""

from __future__ import annotations

from collections.abc import Mapping

from web_service.bundle import load_bundle
from web_service.predictor import Predictor
from web_service.settings import AppSettings, FileModelSettings
from web_service.startup import build_app


def load(environ: Mapping[str, str]) -> tuple[AppSettings, Predictor]:
    settings = FileModelSettings.from_env(environ)
    return settings.app, load_bundle(
        settings.model_path, settings.cache_dir, settings.allow_pickle, settings.drift_profile
    )


app = build_app(load)
