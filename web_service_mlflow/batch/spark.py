"""The Spark engine: the local engine's work, one row group per task, spread over a cluster.

Spark schedules; each task runs exactly the local engine's code (`score_file`) on one row group
of one input, inside `mapInPandas`, and writes its own part of the output. So the two engines
give the same rows and the same floats, by construction and by test. Why not Spark's own reader
and writer:
- a ride's id is its row index in its file, which Spark's reader does not promise to keep;
- s3:// through Spark needs the hadoop-aws jars; the project's boto3 reader needs nothing more;
- timestamps would cross Spark's session time zone twice.

The predictor is loaded once per executor Python worker (Spark reuses them), through the same
settings and cache as the service: a worker on another machine fills its own cache.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import warnings
import zipfile
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from web_service.environment import env_str
from web_service.errors import SettingsError
from web_service.predictor import Predictor
from web_service_mlflow.batch.local import Job, score_file
from web_service_mlflow.batch.progress import Progress, Totals
from web_service_mlflow.data import TripDataError

PACKAGES = ("web_service", "web_service_mlflow")
PROJECT = Path(__file__).resolve().parents[2]
# Variables that choose and load the model: the executors load the driver's choice, not their own.
MODEL_VARIABLES = (
    "RUN_ID", "MODEL_URI", "MLFLOW_TRACKING_URI", "MODEL_ARTIFACT_ROOT", "MODEL_ARTIFACT_PATH",
    "MODEL_CACHE_DIR", "MODEL_LOAD_TIMEOUT", "ALLOW_PICKLE", "SKOPS_TRUSTED_TYPES",
)  # fmt: skip
RESULT_SCHEMA = "file int, row_group int, scored long, reasons string, pid int, loaded boolean"
LOG4J = Path(__file__).with_name("log4j2.properties")  # Spark's own INFO and WARN lines, off
POLL_S = 0.5

_predictors: dict[str, Predictor] = {}  # per executor Python worker: the model, loaded once


def model_environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {name: environ[name] for name in MODEL_VARIABLES if name in environ}


def worker_predictor(environ: Mapping[str, str]) -> tuple[Predictor, bool]:
    """The predictor of this Python worker, loaded on first use; True when this call loaded it."""
    key = json.dumps(sorted(environ.items()))
    if key in _predictors:
        return _predictors[key], False
    from web_service_mlflow.loader import load_from_env

    _, predictor = load_from_env(environ)
    _predictors[key] = predictor
    return predictor, True


@dataclass(frozen=True)
class ScoreUnits:
    """The function mapInPandas runs: score the (file, row group) units it is handed."""

    job: Job
    environ: dict[str, str]

    def __call__(self, units: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in units:
            pairs = zip(frame["file"], frame["row_group"], strict=True)
            rows = [self.score(int(file), int(group)) for file, group in pairs]
            yield pd.DataFrame(rows, columns=["file", "row_group", "scored", "reasons", "pid", "loaded"])

    def score(self, file: int, group: int) -> tuple[int, int, int, str, int, bool]:
        predictor, loaded = worker_predictor(self.environ)
        job, name = self.job, self.job.part_name(file, group)
        rejects = job.rejects.part(name) if job.rejects else None
        totals = score_file(job.trips[file], job, predictor, job.output.part(name), rejects, row_groups=[group])
        return file, group, totals.scored, json.dumps(dict(totals.reasons)), os.getpid(), loaded


class SparkJobError(TripDataError):
    """A task failed; the message is the Python error it failed with, on one line."""


def run_spark(job: Job, environ: Mapping[str, str], master: str, progress: Progress) -> Totals:
    """Score `job` on Spark; the driver has already loaded (and so checked) the model."""
    spark = start_session(master, environ)
    units = [(file, group) for file, trip in enumerate(job.trips) for group in range(len(trip.row_groups))]
    try:
        with tempfile.TemporaryDirectory(prefix="ride-duration-spark-") as scratch:
            if PROJECT.is_dir():  # else this code came in a zip, as spark-submit --py-files ships it
                spark.sparkContext.addPyFile(str(package_zip(Path(scratch))))
            frame = spark.createDataFrame(pd.DataFrame(units, columns=["file", "row_group"]), "file int, row_group int")
            scored = frame.repartition(len(units)).mapInPandas(
                ScoreUnits(job, model_environment(environ)), RESULT_SCHEMA
            )
            with TaskProgress(spark, progress, len(units)):
                results = scored.collect()
    except Exception as error:
        if type(error).__module__.startswith(("pyspark", "py4j")):
            raise SparkJobError(f"Spark job failed: {task_error(error)}") from None
        raise
    finally:
        spark.stop()
    workers = {row["pid"] for row in results}
    loads = sum(bool(row["loaded"]) for row in results)
    progress.note(f"Spark: {len(units)} row groups on {len(workers)} Python worker(s), {loads} model load(s)")
    return totals_of(results, len(job.trips))


def task_error(error: Exception) -> str:
    """The Python error a task raised (its traceback's last line), without Spark's wrapping."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in reversed(lines):
        name, colon, message = line.partition(": ")
        if colon and name.rsplit(".", 1)[-1].endswith(("Error", "Exception")):
            return message
    return lines[-1] if lines else type(error).__name__


def totals_of(results: list[Any], files: int) -> Totals:
    totals = Totals(files=files)
    for row in results:
        totals.add(row["scored"], Counter(json.loads(row["reasons"])))
    return totals


def start_session(master: str | None, environ: Mapping[str, str]):
    """A Spark session on `master`; one clear line when pyspark or Java is missing.

    No master under spark-submit: the cluster's, as submitted. Otherwise local[*] on this machine.
    `environ` is this process's environment, as the command read it (Spark reads its own too).
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SettingsError(
            "--engine spark needs pyspark, which the serving install leaves out: "
            "pipenv install --categories 'packages spark' (make test installs it)"
        ) from None
    if not (shutil.which("java") or env_str(environ, "JAVA_HOME")):
        raise SettingsError("--engine spark needs Java 17; install a JRE (Debian: openjdk-17-jre-headless)")
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    submitted = "PYSPARK_GATEWAY_PORT" in environ  # spark-submit started this driver
    master = master or (None if submitted else "local[*]")
    builder = SparkSession.builder.appName("ride-duration-batch")
    settings = {
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.python.worker.reuse": "true",  # the default, relied on: one model load per worker
    }
    if master is not None:
        builder = builder.master(master)
    if not submitted:  # a driver we start ourselves: quiet, and no web UI
        settings |= {"spark.ui.enabled": "false",
                     "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={LOG4J.as_uri()}"}  # fmt: skip
    if master is not None and master.startswith("local"):  # nothing outside this machine talks to it
        settings |= {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    # The executors' Python is this one (with this environment's packages), unless PYSPARK_PYTHON says
    # otherwise. PySpark reads that variable alone, once, into pythonExec, which every Python function
    # it ships (mapInPandas's among them) carries to the executors: set there, not in the environment.
    if env_str(environ, "PYSPARK_PYTHON") is None:
        spark.sparkContext.pythonExec = sys.executable
    return spark


def package_zip(folder: Path) -> Path:
    """The project's two packages as one zip, for the executors' Python path (as --py-files would)."""
    archive = folder / "ride_duration.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for package in PACKAGES:
            for path in sorted((PROJECT / package).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    bundle.write(path, path.relative_to(PROJECT))
    return archive


class TaskProgress:
    """Show the job's finished tasks (row groups) as progress while `collect` runs."""

    def __init__(self, spark: Any, progress: Progress, units: int) -> None:
        self.tracker, self.progress, self.units = spark.sparkContext.statusTracker(), progress, units
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> None:
        self.thread.start()

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def _poll(self) -> None:
        reported = 0
        while not self.stop.wait(POLL_S):
            done = 0
            for stage in self.tracker.getActiveStageIds():
                info = self.tracker.getStageInfo(stage)
                if info is not None and info.numTasks == self.units:
                    done = info.numCompletedTasks
            if done > reported:
                self.progress.advance(done - reported)
                reported = done
