"""Train a run into the repo's own store (mlruns/) and make it the embedded default.

    python -m web_service_mlflow.embed --train jan.parquet --valid feb.parquet [train options]

Takes the options of `web_service_mlflow.train`. The tracking database MLflow writes holds
absolute artifact paths; they are rewritten relative to the repo root so that the committed
store works from any clone (`mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db`, run
from the repo root).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from web_service_mlflow import train
from web_service_mlflow.commands import run_command
from web_service_mlflow.layout import DEFAULT_RUN_FILE, LOCAL_STORE, TRACKING_DB


def relativize_artifact_paths(db: Path, root: Path) -> None:
    """Rewrite artifact locations under `root` as paths relative to it."""
    prefix = f"{root}/"
    with sqlite3.connect(db) as connection:
        connection.execute(
            "UPDATE experiments SET artifact_location = substr(artifact_location, ?) "
            "WHERE artifact_location LIKE ? || '%'",
            (len(prefix) + 1, prefix),
        )
        connection.execute(
            "UPDATE runs SET artifact_uri = substr(artifact_uri, ?) WHERE artifact_uri LIKE ? || '%'",
            (len(prefix) + 1, prefix),
        )


def _absolute(source: str) -> str:
    # Paths must survive the chdir below; URLs stay as they are.
    return source if "://" in source else str(Path(source).resolve())


def main(argv: Sequence[str] | None = None) -> int:
    args = train.parse_args(argv)
    root = LOCAL_STORE.parent
    args.train, args.valid = _absolute(args.train), _absolute(args.valid)
    # MLflow's default artifact root for a sqlite store is ./mlruns of the working directory.
    os.chdir(root)
    args.tracking_uri = f"sqlite:///{LOCAL_STORE / TRACKING_DB}"
    run_id = train.run(args)
    relativize_artifact_paths(LOCAL_STORE / TRACKING_DB, root)
    (LOCAL_STORE / DEFAULT_RUN_FILE).write_text(run_id + "\n")
    print(run_id)
    return 0


if __name__ == "__main__":
    from mlflow.exceptions import MlflowException

    sys.exit(run_command(main, "cannot embed", MlflowException))
