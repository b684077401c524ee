"""Where things live: the repo's own store, and the artifact paths inside one run."""

from __future__ import annotations

from pathlib import Path

# The repo's own store: the embedded default run, its tracking database and its ID file.
LOCAL_STORE = Path(__file__).resolve().parent.parent / "mlruns"
DEFAULT_RUN_FILE = "default_run_id"
TRACKING_DB = "mlflow.db"

# Inside a run's artifacts.
MODEL_ARTIFACT = "model"
PREPROCESSOR_ARTIFACT = "preprocessor"
PLOT_ARTIFACT = "plots/predicted_vs_actual.png"
