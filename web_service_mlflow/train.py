"""Train the ride-duration model on TLC trip data and log it to MLflow as one run.

    python -m web_service_mlflow.train --train jan.parquet --valid feb.parquet

Progress goes to stderr; the RUN_ID is the last line on stdout, so `RUN_ID=$(... | tail -1)`.
"""

from __future__ import annotations

import argparse
import logging
import pickle
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from web_service_mlflow.needs import MissingPackage, missing

try:
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.metrics import mean_absolute_error, root_mean_squared_error
    from sklearn.pipeline import Pipeline

    from web_service.drift import Profile
    from web_service.features import FEATURE_NAMES, prepare_features_frame
    from web_service.predictor import Predictor
    from web_service_mlflow import layout
    from web_service_mlflow.commands import run_command
    from web_service_mlflow.data import read_rides
    from web_service_mlflow.reference import profile_json, profile_of_file
except (ModuleNotFoundError, MissingPackage) as error:  # a category `make run` leaves out: say which
    raise missing(error, "python -m web_service_mlflow.train", "train") from None

logger = logging.getLogger("web_service_mlflow.train")

DEFAULT_EXPERIMENT = "nyc-taxi-experiment"
# skops refuses types it cannot vouch for; we built these trees ourselves, so we vouch for them.
SKOPS_TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]
TREES_PER_PROGRESS_STEP = 10


@dataclass(frozen=True)
class ForestParams:
    """RandomForestRegressor hyperparameters; the defaults are the course's."""

    max_depth: int = 20
    n_estimators: int = 100
    min_samples_leaf: int = 10
    random_state: int = 0


@contextmanager
def step(description: str) -> Iterator[None]:
    """Log the start and the duration of a slow step."""
    logger.info("%s ...", description)
    started = time.perf_counter()
    yield
    logger.info("%s: done in %.1f s", description, time.perf_counter() - started)


def fit_pipeline(rides: pd.DataFrame, params: ForestParams, n_jobs: int = -1) -> Pipeline:
    """Fit Pipeline(DictVectorizer, RandomForestRegressor) on rides with a `duration` column."""
    vectorizer = DictVectorizer()
    features = vectorizer.fit_transform(prepare_features_frame(rides))
    target = rides["duration"].to_numpy()
    forest = RandomForestRegressor(**asdict(params), n_jobs=n_jobs, warm_start=True)
    # Growing the forest in steps only to report progress: with warm_start the random state
    # advances exactly as in one fit, so the trees are the same.
    for grown in range(TREES_PER_PROGRESS_STEP, params.n_estimators + TREES_PER_PROGRESS_STEP, TREES_PER_PROGRESS_STEP):
        forest.set_params(n_estimators=min(grown, params.n_estimators))
        forest.fit(features, target)
        logger.info("fitting: %d/%d trees", len(forest.estimators_), params.n_estimators)
    # Serving predicts one ride at a time: a thread pool per call would only add overhead.
    forest.set_params(warm_start=False, n_jobs=None)
    return Pipeline([("dictvectorizer", vectorizer), ("model", forest)])


def predict_rides(pipeline: Pipeline, rides: pd.DataFrame) -> np.ndarray:
    return pipeline.predict(prepare_features_frame(rides))


def plot_predictions(actual: np.ndarray, predicted: np.ndarray):  # -> matplotlib Figure
    """Scatter of predicted against actual durations, with the line where they are equal."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 6))
    axes.scatter(actual, predicted, s=2, alpha=0.15, linewidths=0)
    axes.plot([0, 60], [0, 60], color="black", linewidth=1)
    axes.set(
        xlabel="actual duration (min)",
        ylabel="predicted duration (min)",
        title="validation: predicted vs actual",
        xlim=(0, 61),
        ylim=(0, 61),
    )
    return figure


def log_run(pipeline: Pipeline, params: ForestParams, info: dict, metrics: dict[str, float], figure,
            profile: Profile) -> str:  # fmt: skip
    """Log params, metrics, model, preprocessor, plot and reference profile to a new MLflow run; return its ID."""
    import mlflow

    with mlflow.start_run() as run, tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tags({"model_class": "RandomForestRegressor", "features": ",".join(FEATURE_NAMES)})
        mlflow.log_params(asdict(params) | info)
        mlflow.log_metrics(metrics)
        # The model carries its own training record, for sources that have no tracking server.
        training = {"run_id": run.info.run_id, "params": asdict(params) | info, "metrics": metrics}
        _log_model(pipeline, Path(tmp), training)
        _log_preprocessor(pipeline.named_steps["dictvectorizer"], Path(tmp))
        mlflow.log_figure(figure, layout.PLOT_ARTIFACT)
        _log_profile(profile.with_about(run_id=run.info.run_id, model_version=run.info.run_id), Path(tmp))
        return run.info.run_id


def _log_model(pipeline: Pipeline, tmp: Path, training: dict) -> None:
    # mlflow.sklearn.log_model would put the model under <experiment>/models/m-<id>/ (MLflow 3).
    # Saving it into the run's own artifacts keeps <root>/<experiment>/<RUN_ID>/artifacts/model
    # loadable straight from the artifact store, with no tracking server.
    import mlflow
    import mlflow.sklearn

    model_dir = tmp / layout.MODEL_ARTIFACT
    mlflow.sklearn.save_model(
        pipeline,
        model_dir,
        serialization_format="skops",
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
        pip_requirements=_pip_requirements(),
        metadata={"training": training},
    )
    _compress_skops(pipeline, model_dir)
    mlflow.log_artifacts(str(model_dir), layout.MODEL_ARTIFACT)


def _compress_skops(pipeline: Pipeline, model_dir: Path) -> None:
    # MLflow writes skops files uncompressed: 33 MB for the course's forest, 8 MB deflated.
    # Same format, same loader; skops reads either.
    import zipfile

    import skops.io

    skops.io.dump(pipeline, model_dir / "model.skops", compression=zipfile.ZIP_DEFLATED, compresslevel=6)


def _log_preprocessor(vectorizer: DictVectorizer, tmp: Path) -> None:
    import mlflow

    path = tmp / "preprocessor.b"
    path.write_bytes(pickle.dumps(vectorizer))
    mlflow.log_artifact(str(path), layout.PREPROCESSOR_ARTIFACT)


def _log_profile(profile: Profile, tmp: Path) -> None:
    import mlflow

    path = tmp / layout.PROFILE_FILE
    path.write_text(profile_json(profile))
    mlflow.log_artifact(str(path), layout.REFERENCE_ARTIFACT)


def _pip_requirements() -> list[str]:
    # Stated, not inferred: inference loads the model in a subprocess, slow for a large forest.
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("mlflow", "scikit-learn", "skops", "numpy", "scipy")]


@dataclass(frozen=True)
class TripData:
    """The rides to fit on and to validate on, and where they came from."""

    train_source: str
    valid_source: str
    train_rides: pd.DataFrame
    valid_rides: pd.DataFrame


def read_data(train_source: str, valid_source: str) -> TripData:
    """Read both files; a path that is wrong fails here, before MLflow or a fit is started."""
    with step(f"reading training rides from {train_source}"):
        train_rides = read_rides(train_source)
    with step(f"reading validation rides from {valid_source}"):
        valid_rides = read_rides(valid_source)
    logger.info("%d training rides, %d validation rides", len(train_rides), len(valid_rides))
    return TripData(train_source, valid_source, train_rides, valid_rides)


def train(data: TripData, params: ForestParams, n_jobs: int = -1) -> str:
    """Fit, evaluate and log one run; return the RUN_ID."""
    train_rides, valid_rides = data.train_rides, data.valid_rides
    with step(f"fitting {params}"):
        pipeline = fit_pipeline(train_rides, params, n_jobs)
    predicted = predict_rides(pipeline, valid_rides)
    rmse = float(root_mean_squared_error(valid_rides["duration"], predicted))
    metrics = {"rmse": rmse, "valid_mae": float(mean_absolute_error(valid_rides["duration"], predicted))}
    logger.info("validation RMSE: %.4f, MAE: %.4f", rmse, metrics["valid_mae"])
    figure = plot_predictions(valid_rides["duration"].to_numpy(), predicted)
    with step("profiling the training rides"):
        profile = training_profile(data, pipeline, metrics)
    info = {
        "train_data": data.train_source,
        "valid_data": data.valid_source,
        "train_rows": len(train_rides),
        "valid_rows": len(valid_rides),
    }
    with step("logging the run to MLflow"):
        return log_run(pipeline, params, info, metrics, figure, profile)


def training_profile(data: TripData, pipeline: Pipeline, metrics: dict[str, float]) -> Profile:
    """The training file as the service would see it: every ride the contract accepts, not only the fitted ones.

    Its errors are the run's: RMSE on the fitted rides, RMSE and MAE on the validation rides.
    """
    train_rmse = root_mean_squared_error(data.train_rides["duration"], predict_rides(pipeline, data.train_rides))
    errors = {"train_rmse": float(train_rmse), "valid_rmse": metrics["rmse"], "valid_mae": metrics["valid_mae"]}
    scorer = Predictor(pipeline, model_version="", source=data.train_source)
    return profile_of_file(data.train_source, scorer, errors)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True, help="TLC parquet to fit on: a path or a URL")
    parser.add_argument("--valid", required=True, help="TLC parquet to validate on: a path or a URL")
    parser.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else MLflow's own default)"
    )
    parser.add_argument(
        "--experiment", default=DEFAULT_EXPERIMENT, help="MLflow experiment name (default: %(default)s)"
    )
    defaults = ForestParams()
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=value, help=f"(default: {value})")
    parser.add_argument("--n-jobs", type=int, default=-1, help="CPU cores for fitting (default: all)")
    parser.add_argument("--register", metavar="NAME", help="register the run's model under NAME in the registry")
    parser.add_argument("--alias", help="with --register: point this alias (e.g. production) at the new version")
    args = parser.parse_args(argv)
    if args.alias and not args.register:
        parser.error("--alias needs --register NAME")
    return args


def run(args: argparse.Namespace) -> str:
    """Train as the command line asked; return the RUN_ID."""
    import mlflow

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    data = read_data(args.train, args.valid)  # first: a wrong path must not leave a tracking database behind
    if args.tracking_uri:
        mlflow.set_tracking_uri(args.tracking_uri)
    mlflow.set_experiment(args.experiment)
    params = ForestParams(**{name: getattr(args, name) for name in asdict(ForestParams())})
    run_id = train(data, params, args.n_jobs)
    if args.register:
        register(run_id, args.register, args.alias)
    return run_id


def register(run_id: str, name: str, alias: str | None) -> str:
    """Register the run's model as a new version of `name`, and point `alias` at it."""
    import mlflow

    with step(f"registering the model as {name}"):
        version = mlflow.register_model(f"runs:/{run_id}/{layout.MODEL_ARTIFACT}", name).version
        if alias:
            mlflow.MlflowClient().set_registered_model_alias(name, alias, version)
    logger.info("registered models:/%s/%s%s", name, version, f" as @{alias}" if alias else "")
    return str(version)


def main(argv: Sequence[str] | None = None) -> int:
    print(run(parse_args(argv)))
    return 0


if __name__ == "__main__":
    from mlflow.exceptions import MlflowException  # a tracking URI it cannot use, a registry that refuses

    sys.exit(run_command(main, "cannot train", MlflowException))
