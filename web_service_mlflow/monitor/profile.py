"""Give a run its reference profile: the training rides live drift compares against.

    python -m web_service_mlflow.monitor.profile --run-id RUN_ID --reference TRAIN.parquet \\
        [--valid VALID.parquet] (--output profile.json | --log [--replace])

For runs made before training wrote `reference/profile.json`, or by another tool. The run is
loaded as the service loads it (RUN_ID with MLFLOW_TRACKING_URI, MODEL_ARTIFACT_ROOT, ...), its
training file is read through the API's contract and scored by the run's own model. The errors
are the run's: its logged validation RMSE, the RMSE on the training file's 1-60 minute rides,
and with --valid the validation RMSE and MAE measured as training measured them. --log adds the
profile to the run's `reference/` artifacts: through MLflow when MLFLOW_TRACKING_URI is set,
else into the run's folder of a local store (MODEL_ARTIFACT_ROOT, or this repo's mlruns/).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from web_service.environment import read
from web_service_mlflow.needs import MissingPackage, missing

try:
    import numpy as np
    import pandas as pd

    from web_service.drift import Profile, ProfileError
    from web_service.features import RIDE_FIELDS
    from web_service.predictor import Predictor
    from web_service.redact import redact_uri
    from web_service_mlflow.commands import run_command
    from web_service_mlflow.data import read_rides
    from web_service_mlflow.layout import PROFILE_FILE, REFERENCE_ARTIFACT, run_artifacts
    from web_service_mlflow.loader import load_from_env
    from web_service_mlflow.reference import profile_json, profile_of_file
    from web_service_mlflow.settings import ModelSettings, SourceKind
except (ModuleNotFoundError, MissingPackage) as error:  # a category `make run` leaves out: say which
    raise missing(error, "python -m web_service_mlflow.monitor.profile", "monitor") from None

logger = logging.getLogger("web_service_mlflow.monitor.profile")
# Set for the service, not for this command: the run is named by --run-id, the profile is the run's own.
IGNORED = ("MODEL_URI", "DRIFT_PROFILE")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-id", required=True, help="the run to profile, found as RUN_ID is")
    parser.add_argument("--reference", required=True, metavar="TRAIN.parquet", help="the run's training file")
    parser.add_argument("--valid", metavar="VALID.parquet", help="its validation file: adds valid_rmse and valid_mae")
    to = parser.add_mutually_exclusive_group(required=True)
    to.add_argument("--output", type=Path, metavar="profile.json", help="write the profile to this file")
    to.add_argument("--log", action="store_true", help="add it to the run's artifacts as reference/profile.json")
    parser.add_argument("--replace", action="store_true", help="with --log: replace the run's profile if it has one")
    args = parser.parse_args(argv)
    if args.replace and not args.log:
        parser.error("--replace goes with --log")
    return args


def run_environment(run_id: str, environ: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in environ.items() if name not in IGNORED} | {"RUN_ID": run_id}


def run_metrics(predictor: Predictor, fitted: pd.DataFrame, validation: pd.DataFrame | None) -> dict[str, float]:
    """train_rmse, valid_rmse (the run's logged rmse when it has one) and valid_mae, as training measures them.

    `fitted` and `validation` are the 1-60 minute rides training fitted and validated on (`read_rides`).
    """
    from sklearn.metrics import mean_absolute_error, root_mean_squared_error

    def errors(rides: pd.DataFrame) -> tuple[float, float]:
        predicted = np.asarray(predictor.predict(rides[list(RIDE_FIELDS)].to_dict("records")))
        actual = rides["duration"].to_numpy()
        return float(root_mean_squared_error(actual, predicted)), float(mean_absolute_error(actual, predicted))

    metrics = {"train_rmse": errors(fitted)[0]}
    if validation is not None:
        metrics["valid_rmse"], metrics["valid_mae"] = errors(validation)
    logged = ((predictor.metadata.get("training") or {}).get("metrics") or {}).get("rmse")
    if logged is not None:
        if validation is not None and abs(float(logged) - metrics["valid_rmse"]) > 1e-9 * max(1.0, float(logged)):
            logger.warning("the run logged a validation RMSE of %s; the validation file gives %s: keeping the "
                           "logged one", logged, metrics["valid_rmse"])  # fmt: skip
        metrics["valid_rmse"] = float(logged)
    return metrics


def log_profile(profile: Profile, settings: ModelSettings, replace: bool) -> str:
    """Add the profile to the run's `reference/` artifacts; return where it went."""
    run_id = settings.run_id
    if settings.tracking_uri:
        from mlflow import MlflowClient

        client = MlflowClient(settings.tracking_uri)
        present = {item.path for item in client.list_artifacts(run_id, REFERENCE_ARTIFACT)}
        if f"{REFERENCE_ARTIFACT}/{PROFILE_FILE}" in present and not replace:
            raise _exists(run_id)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / PROFILE_FILE
            path.write_text(profile_json(profile))
            client.log_artifact(run_id, str(path), REFERENCE_ARTIFACT)
        return f"run {run_id} on {redact_uri(settings.tracking_uri)}"
    if settings.kind is not SourceKind.LOCAL:
        raise ProfileError(
            f"--log into {redact_uri(settings.artifact_root)} needs MLFLOW_TRACKING_URI; or write it with --output and "
            f"copy it to <experiment id>/{run_id}/artifacts/{REFERENCE_ARTIFACT}/{PROFILE_FILE} there"
        )
    try:
        folder = run_artifacts(Path(settings.artifact_root), run_id) / REFERENCE_ARTIFACT
    except FileNotFoundError as error:
        raise ProfileError(f"cannot log into the run's folder: {error}") from None
    if (folder / PROFILE_FILE).exists() and not replace:
        raise _exists(run_id)
    write(profile, folder / PROFILE_FILE)
    return str(folder / PROFILE_FILE)


def _exists(run_id: str) -> ProfileError:
    return ProfileError(f"run {run_id} already has {REFERENCE_ARTIFACT}/{PROFILE_FILE}; add --replace to replace it")


def write(profile: Profile, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(profile_json(profile))
    except OSError as error:
        raise ProfileError(f"cannot write {path}: {error.strerror or error}") from None


class _OwnAdvice(logging.Filter):
    """The loader's advice to run this very command is noise here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "monitor.profile" not in record.getMessage()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("web_service_mlflow.loader").addFilter(_OwnAdvice())
    # The files first: a wrong path fails before the model is fetched.
    fitted = read_rides(args.reference)
    validation = read_rides(args.valid) if args.valid else None
    environ = run_environment(args.run_id, read())
    settings = ModelSettings.from_env(environ)
    _, predictor = load_from_env(environ)
    if args.log and predictor.profile is not None and not args.replace:
        raise _exists(args.run_id)
    metrics = run_metrics(predictor, fitted, validation)
    profile = profile_of_file(args.reference, predictor, metrics, run_id=args.run_id,
                              model_version=predictor.model_version)  # fmt: skip
    if args.log:
        where = log_profile(profile, settings, args.replace)
        if settings.kind is not SourceKind.LOCAL:  # a folder store is read in place, never cached
            logger.info("a service that cached run %s before keeps serving it without this profile until its "
                        "cache entry ($MODEL_CACHE_DIR/%s...) is removed", args.run_id, args.run_id)  # fmt: skip
    else:
        write(profile, args.output)
        where = str(args.output)
    logger.info("profile of %d rides from %s, metrics %s", profile.rides, profile.about["source"], profile.metrics)
    print(where)
    return 0


if __name__ == "__main__":
    from mlflow.exceptions import MlflowException  # a tracking server that refuses the artifact

    sys.exit(run_command(main, "cannot make the reference profile", ProfileError, MlflowException))
