"""Watch the registry aliases the service serves, for the hot swap (web_service.server.hotswap).

MODEL_URI=models:/<name>@<alias> (and CANARY_MODEL_URI / SHADOW_MODEL_URI when they name an
alias) are asked every MODEL_POLL_SECONDS where they point: one REST call each to the tracking
server (`GET /api/2.0/mlflow/registered-models/alias`), through MLflow's client, so that the
credentials and TLS settings that loaded the model ask too. A new answer is built exactly as at
start-up, with each alias pinned to the version it named (`models:/<name>/<version>`): the alias
may move again while the candidate loads, and what was checked must be what serves.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from flask import Flask

from web_service.errors import ModelLoadError
from web_service.redact import redact_uri
from web_service.server.hotswap import Unavailable
from web_service.settings import env_bool, env_int, env_str
from web_service.startup import make_app
from web_service.views import serving
from web_service_mlflow.loader import load_service
from web_service_mlflow.retry import TransientError
from web_service_mlflow.settings import ModelSettings
from web_service_mlflow.sources import MODEL_URI_PATTERN, RegistrySource

logger = logging.getLogger(__name__)
# The settings that may name an alias, and the lineup role each one fills.
ALIAS_VARIABLES = {"MODEL_URI": "primary", "CANARY_MODEL_URI": "canary", "SHADOW_MODEL_URI": "shadow"}


class RegistryWatch:
    """The aliases of one environment: where they point now, and the app that serves what they name."""

    def __init__(self, environ: Mapping[str, str], sources: dict[str, RegistrySource], poll_seconds: float) -> None:
        self.environ, self.sources, self.poll_seconds = dict(environ), sources, poll_seconds
        tracking = next(iter(sources.values())).tracking_uri
        uris = ", ".join(redact_uri(source.model_uri) for source in sources.values())
        self.description = f"model registry {redact_uri(tracking)} ({uris})"

    def named(self) -> dict[str, str]:
        """`<name>/<version>` per alias variable."""
        try:
            return {variable: source.aliased_version() for variable, source in self.sources.items()}
        except (TransientError, ModelLoadError) as error:  # down, or the alias deleted: keep serving
            raise Unavailable(getattr(error, "message", str(error))) from error

    def serving(self, app: Flask) -> dict[str, str]:
        """The registered version each alias variable's model came from, in `app`."""
        now = serving(app)
        lineup = now.lineup
        models = {"primary": now.predictor, "canary": lineup and lineup.canary, "shadow": lineup and lineup.shadow}
        return {variable: str(models[ALIAS_VARIABLES[variable]].metadata.get("registered_model"))
                for variable in self.sources}  # fmt: skip

    def build(self, named: Mapping[str, str]) -> Flask:
        pinned = self.environ | {variable: f"models:/{version}" for variable, version in named.items()}
        try:
            return make_app(load_service, pinned, announce=False)
        except ModelLoadError as error:
            if isinstance(error.__cause__, TransientError):  # still failing after MODEL_LOAD_TIMEOUT
                raise Unavailable(error.message) from error
            raise


def registry_watch(environ: Mapping[str, str], app: Flask) -> RegistryWatch | None:
    """The watch of the aliases this environment serves, or None when there is nothing to watch."""
    # Two values, not ModelSettings.from_env again: that re-reads DRIFT_PROFILE and reopens PREDICTION_LOG,
    # and the load that came before has checked every setting already.
    tracking_uri = env_str(environ, "MLFLOW_TRACKING_URI")
    poll_seconds = env_int(environ, "MODEL_POLL_SECONDS", ModelSettings.poll_seconds, minimum=0)
    sources = {}
    for variable in ALIAS_VARIABLES:
        uri = env_str(environ, variable)
        match = MODEL_URI_PATTERN.fullmatch(uri) if uri else None
        if match and match["alias"]:
            sources[variable] = RegistrySource(tracking_uri, uri)
    if not sources or poll_seconds == 0:
        return None
    if not env_bool(environ, "GUNICORN_PRELOAD", True):
        logger.warning("%s names a registry alias, but GUNICORN_PRELOAD is off: each worker resolves it when it "
                       "starts, and a moved alias is served only after a restart", ", ".join(sources))  # fmt: skip
        return None
    return RegistryWatch(environ, sources, poll_seconds)
