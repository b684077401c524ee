"""One line, not a traceback, when a command needs a package that the serving install leaves out.

`make run` and the image install the Pipfile's [packages] alone: serving needs neither pandas,
pyarrow nor matplotlib, nor MLflow's server. Training, batch scoring and the reports need them:

    try:
        import pandas as pd
        ...
    except (ModuleNotFoundError, MissingPackage) as error:
        raise missing(error, "python -m web_service_mlflow.batch", "batch") from None
"""

from __future__ import annotations

from importlib.util import find_spec

from web_service.errors import SettingsError
from web_service.redact import redact_uri

# What the other categories bring beyond [packages] (their import names are their package names).
OPTIONAL = ("pandas", "pyarrow", "matplotlib", "requests")


class MissingPackage(SystemExit):
    """Exit code 1 and one line on stderr, as any SystemExit; `package` for a command that imports another."""

    def __init__(self, package: str, command: str, category: str) -> None:
        super().__init__(
            f"{command}: needs {package}, which this environment lacks (the serving install leaves it out): "
            f'pipenv install --categories "packages {category}" (make install-dev installs every category)'
        )
        self.package = package


def missing(error: ModuleNotFoundError | MissingPackage, command: str, category: str) -> BaseException:
    """The exit naming what to install for `command`; `error` itself when it is no package a category brings."""
    package = error.package if isinstance(error, MissingPackage) else (error.name or "").partition(".")[0]
    if package not in OPTIONAL:
        return error  # a bug or a broken install, not a category left out
    return MissingPackage(package, command, category)


# Tracking stores that MLflow reads through SQLAlchemy, which full MLflow ([train]) brings and
# mlflow-skinny does not: serving reads a tracking server over HTTP.
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def tracking_client(tracking_uri: str | None) -> None:
    """SettingsError, naming what to do, for a tracking database that this install cannot read."""
    scheme = (tracking_uri or "").partition(":")[0].partition("+")[0]
    if scheme in DATABASE_SCHEMES and find_spec("sqlalchemy") is None:
        raise SettingsError(
            f"MLFLOW_TRACKING_URI={redact_uri(tracking_uri or '')}: a tracking database is read with SQLAlchemy, "
            "which the serving install leaves out: serve the run through its tracking server (mlflow server "
            f'--backend-store-uri {scheme}:...), or pipenv install --categories "packages train"'
        )
