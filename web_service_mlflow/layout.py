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
# The training rides' profile, live drift's baseline (web_service_mlflow.reference): `reference/profile.json`.
REFERENCE_ARTIFACT = "reference"
PROFILE_FILE = "profile.json"


def run_artifacts(store: Path, run_id: str) -> Path:
    """A run's artifacts folder in a local store: `<store>/[<experiment id>/]<RUN_ID>/artifacts`."""
    for candidate in [store / run_id, *sorted(store.glob(f"*/{run_id}"))]:
        if (candidate / "artifacts").is_dir():
            return candidate / "artifacts"
    raise FileNotFoundError(f"no {store}/[<experiment id>/]{run_id}/artifacts")
