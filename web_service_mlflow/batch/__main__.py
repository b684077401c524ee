"""Score TLC trip files with the model the service would serve.

    python -m web_service_mlflow.batch green_tripdata_2021-01.parquet --output scored.parquet
    RUN_ID=<run> python -m web_service_mlflow.batch s3://trips/yellow_tripdata_2021-0{1,2,3}.parquet \\
        --output s3://scores/2021-q1/ --rejects s3://scores/2021-q1-rejects/ --engine spark

The model is chosen as the service chooses it (RUN_ID, MODEL_URI, MODEL_ARTIFACT_ROOT,
MLFLOW_TRACKING_URI, else the embedded default run), through the same cache; --run-id and
--model-uri override the environment. A ride gets a prediction exactly when POST /predict would
answer it, and the same float; the others are counted per reason (and written with --rejects).

One input on the local engine writes one parquet file; several inputs, or Spark, write a folder
holding one parquet dataset. Either is written atomically. Exit code 0 on success; 1, with one line
naming the file or setting and the problem, on bad input or a model that cannot be loaded.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence

from web_service.environment import read
from web_service_mlflow.needs import MissingPackage, missing

try:
    from web_service_mlflow.batch.local import Job, run_local
    from web_service_mlflow.batch.progress import Progress, seconds_since_start
    from web_service_mlflow.batch.rides import describe_file, parse_period
    from web_service_mlflow.batch.storage import Destination, OutputError, parquet_file
    from web_service_mlflow.commands import run_command
    from web_service_mlflow.data import TripDataError
except (ModuleNotFoundError, MissingPackage) as error:  # a category `make run` leaves out: say which
    raise missing(error, "python -m web_service_mlflow.batch", "batch") from None

ENGINES = ("local", "spark")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m web_service_mlflow.batch", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="TLC trip parquet: a path, s3://... or http(s)://..."
    )
    parser.add_argument("--output", required=True, help="a parquet file (one input, local engine) or a folder")
    parser.add_argument("--rejects", help="also write the rides not scored, with their reason (same form as --output)")
    parser.add_argument("--engine", choices=ENGINES, default="local")
    parser.add_argument("--spark-master", help="with --engine spark: default local[*], or spark-submit's master")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--run-id", help="score with this MLflow run (overrides RUN_ID and MODEL_URI)")
    model.add_argument("--model-uri", help="score with this model URI (overrides RUN_ID and MODEL_URI)")
    parser.add_argument("--period", help="YYYY-MM for the ride ids, when the file names do not say it")
    return parser.parse_args(argv)


def model_environment(args: argparse.Namespace, environ: dict[str, str]) -> dict[str, str]:
    """The environment the model is chosen from: --run-id or --model-uri replace RUN_ID and MODEL_URI."""
    environ = dict(environ)
    if args.run_id:
        environ.pop("MODEL_URI", None)
        environ["RUN_ID"] = args.run_id
    elif args.model_uri:
        environ.pop("RUN_ID", None)
        environ["MODEL_URI"] = args.model_uri
    return environ


def plan(args: argparse.Namespace) -> Job:
    """Check every input and output before the model loads: bad input costs a second, not a run."""
    # One file for one input on the local engine; a folder otherwise, or when the name ends in "/".
    folder = args.engine == "spark" or len(args.inputs) > 1
    output = Destination(args.output, folder or args.output.endswith("/"))
    rejects = Destination(args.rejects, folder or args.rejects.endswith("/")) if args.rejects else None
    _refuse_overlaps(args)
    for destination in (output, rejects):
        if destination is not None:
            destination.check()
    if args.period and len(args.inputs) > 1:
        raise TripDataError("--period names one file's month; with several inputs, each file's name must say its own")
    period = parse_period(args.period) if args.period else None
    trips = []
    for location in args.inputs:
        with parquet_file(location) as parquet:
            groups = tuple(parquet.metadata.row_group(i).num_rows for i in range(parquet.metadata.num_row_groups))
            trips.append(describe_file(location, parquet.schema_arrow, groups, period))
    return Job(tuple(trips), output, rejects, with_actual=any(trip.dropoff for trip in trips))


def _refuse_overlaps(args: argparse.Namespace) -> None:
    """Scores must not replace the trips they come from, nor the rejects the scores."""

    def same(location: str) -> str:
        return location.rstrip("/") if "://" in location else os.path.realpath(location)

    inputs = {same(location) for location in args.inputs}
    for flag, location in (("--output", args.output), ("--rejects", args.rejects)):
        if location and same(location) in inputs:
            raise OutputError(f"{flag} {location}: is one of the inputs; name another place")
    if args.rejects and same(args.rejects) == same(args.output):
        raise OutputError(f"--rejects {args.rejects}: is the --output too; name another place")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("py4j").setLevel(logging.WARNING)  # its INFO lines are about its sockets
    job = plan(args)
    from web_service_mlflow.loader import load_from_env  # after the checks: loading is the slow part

    environ = model_environment(args, read())
    _, predictor = load_from_env(environ)
    destinations = [d for d in (job.output, job.rejects) if d is not None]
    try:
        for destination in destinations:
            destination.prepare()
        if args.engine == "spark":
            from web_service_mlflow.batch.spark import run_spark

            units = sum(len(trip.row_groups) for trip in job.trips)
            totals = run_spark(job, environ, args.spark_master, Progress(units, "row groups"))
        else:
            totals = run_local(job, predictor, Progress(sum(trip.rows for trip in job.trips)))
        for destination in destinations:
            destination.commit()
    except KeyboardInterrupt:
        for destination in destinations:
            destination.abort()
        raise Interrupted(128 + signal.SIGINT) from None
    except BaseException:
        for destination in destinations:
            destination.abort()
        raise
    print(totals.summary(seconds_since_start()), flush=True)
    return 0


def _terminate(signum: int, _frame: object) -> None:
    # SIGTERM (a scheduler's stop) unwinds like Ctrl-C, so that the staged output is removed.
    raise Interrupted(128 + signum)


class Interrupted(BaseException):  # not an Exception: no handler may take it for a read error
    """SIGTERM or Ctrl-C: the run stops, its staged output removed, and says so in one line."""

    def __init__(self, code: int) -> None:
        super().__init__("interrupted; nothing was written, earlier output is untouched")
        self.code = code


def run() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return run_command(main, "cannot score")
    except Interrupted as stop:
        print(f"cannot score: {stop}", file=sys.stderr)
        return stop.code
    except KeyboardInterrupt:  # before anything was staged
        print(f"cannot score: {Interrupted(0)}", file=sys.stderr)
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(run())
