"""Compare current rides with a reference and write a drift report (report.json and report.html).

    python -m web_service_mlflow.monitor --reference green_tripdata_2021-01.parquet \\
        --current green_tripdata_2021-02.parquet --output reports/2021-02
    python -m web_service_mlflow.monitor --run-id <run> --current predictions.jsonl --output reports/today

The reference is a TLC trip file, profiled now with the model (--reference), or the profile the
run logged when it was trained (--run-id alone). The current rides are TLC trip files (scored with
the model), batch outputs of web_service_mlflow.batch, or the service's PREDICTION_LOG, mixed freely.
The model is chosen as the service chooses it; --run-id and --model-uri override the environment.

Exit code 0: nothing drifted; 1: drift detected; 2: no verdict: bad usage or input, said in one line
(or a bug, with its traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
import traceback
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from web_service.environment import read
from web_service_mlflow.needs import MissingPackage, missing

try:
    from web_service.drift import ProfileError, Thresholds
    from web_service.errors import StartupError
    from web_service.predictor import Predictor
    from web_service_mlflow.batch.__main__ import model_environment
    from web_service_mlflow.batch.progress import seconds_since_start
    from web_service_mlflow.batch.storage import OutputError, parquet_file, reading, writing
    from web_service_mlflow.commands import one_line
    from web_service_mlflow.data import TripDataError
    from web_service_mlflow.loader import load_from_env
    from web_service_mlflow.monitor.report import (
        NoProfile,
        Reference,
        build_report,
        reference_from_rides,
        reference_from_run,
        summary_lines,
    )
    from web_service_mlflow.monitor.rides import LOG_SUFFIXES, Rides, read_rides
except (ModuleNotFoundError, MissingPackage) as error:  # a category `make run` leaves out: say which
    raise missing(error, "python -m web_service_mlflow.monitor", "monitor") from None

EXIT_QUIET, EXIT_DRIFT, EXIT_USAGE = 0, 1, 2
FAILING = "cannot report"
# Flag, and the largest value that can still be crossed: KS D and the JS distance never exceed 1.
THRESHOLD_FLAGS = {"psi": math.inf, "ks": 1.0, "js": 1.0, "rmse_ratio": math.inf}


class UsageError(ValueError):
    """Flags that cannot work together or a value out of range."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, as every other refusal of this command: not the usage block argparse prints first.
        print(f"{FAILING}: {message} (see --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = _Parser(prog="python -m web_service_mlflow.monitor", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--reference", metavar="REF", help="TLC trip parquet to profile as the reference")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--run-id", help="this MLflow run's model; without --reference, its logged profile too")
    model.add_argument("--model-uri", help="this model URI's model; without --reference, its run's profile")
    parser.add_argument(
        "--current",
        nargs="+",
        required=True,
        metavar="CUR",
        help="TLC trip parquet, batch outputs or prediction logs (.jsonl, .json, .log, .ndjson)",
    )
    parser.add_argument("--output", required=True, metavar="DIR", help="folder for report.json and report.html")
    defaults = Thresholds()
    for name in THRESHOLD_FLAGS:
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, metavar="X",
                            help=f"{name} above this is drift (default {defaults.for_method(name):g})")  # fmt: skip
    parser.add_argument("--min-rides", type=int, metavar="N",
                        help=f"fewer current rides: no verdict (default {defaults.min_rides})")  # fmt: skip
    args = parser.parse_args(argv)
    if not (args.reference or args.run_id or args.model_uri):
        parser.error("give --reference FILE, or --run-id RUN_ID to compare with the run's own profile")
    return args


def thresholds(args: argparse.Namespace) -> Thresholds:
    """The defaults with the flags given; a value that could never (or always) fire is refused."""
    given = {}
    for name, most in THRESHOLD_FLAGS.items():
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and 0 < value <= most):
            bound = "above 0" if math.isinf(most) else f"above 0 and at most {most:g}"
            raise UsageError(f"--{name.replace('_', '-')} {value:g}: must be a number {bound}")
        given |= {name: value} if value is not None else {}
    if args.min_rides is not None:
        if args.min_rides < 1:
            raise UsageError(f"--min-rides {args.min_rides}: must be at least 1")
        given["min_rides"] = args.min_rides
    return Thresholds(**given)


def check_output(folder: Path) -> None:
    """Refuse, before any work, an --output that cannot become a folder this user writes in."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"--output {folder}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"--output {folder}: cannot write in {existing}")


def check_input(location: str) -> None:
    """Open each input once before the model loads: a wrong path costs a second, not a run."""
    if not location.endswith(LOG_SUFFIXES):
        with parquet_file(location):
            return
    with reading(location):
        if Path(location).is_dir():
            raise TripDataError(f"{location}: is a folder; name the prediction log files in it")
        Path(location).open("rb").close()


def write_atomically(path: Path, text: str) -> None:
    """Write beside the target and rename: a reader never sees half a report, a failure leaves the old one."""
    staged = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with writing(str(path)):
            staged.write_text(text, encoding="utf-8")
            os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    # The loader's "no reference profile: live drift is off" is about serving; this command says itself
    # what a missing profile means here (or needs none, with --reference).
    logging.getLogger("web_service_mlflow.loader").addFilter(lambda record: record.funcName != "run_profile")
    limits, output = thresholds(args), Path(args.output)
    check_output(output)
    for location in [*([args.reference] if args.reference else []), *args.current]:
        check_input(location)
    from web_service_mlflow.monitor.html import render  # after the checks: matplotlib takes a second to import

    predictor, reference, current = read_both(args)
    report = build_report(reference, current, predictor, limits, seconds_since_start())
    write_report(output, report, render(report, reference.profile, current.columns))
    for warning in report["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print("\n".join(summary_lines(report)))
    print(f"report: {output / 'report.html'} (and report.json)")
    return EXIT_DRIFT if report["drift_detected"] else EXIT_QUIET


def read_both(args: argparse.Namespace) -> tuple[Predictor, Reference, Rides]:
    """The model, the reference (a file profiled with it, or its run's profile) and the current rides."""
    _, predictor = load_from_env(model_environment(args, read()))
    if args.reference:
        reference = reference_from_rides(read_rides([args.reference], predictor), predictor)
    else:
        reference = reference_from_run(predictor)
    return predictor, reference, read_rides(args.current, predictor)


def write_report(output: Path, report: dict[str, Any], page: str) -> None:
    with writing(str(output)):
        output.mkdir(parents=True, exist_ok=True)
    write_atomically(output / "report.json", json.dumps(report, indent=2, allow_nan=False) + "\n")
    write_atomically(output / "report.html", page)


def _terminate(signum: int, _frame: object) -> None:
    # SIGTERM (a scheduler's stop) unwinds like Ctrl-C: a staged report file is removed on the way out.
    raise KeyboardInterrupt


def run(argv: Sequence[str] | None = None) -> int:
    """`main`, with bad input as one line and exit code 2: 1 already means drift."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return main(argv)
    except (TripDataError, StartupError, ProfileError, NoProfile, UsageError) as error:
        print(f"{FAILING}: {one_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception:  # a bug: its traceback, and never exit code 1, which a scheduler reads as drift
        traceback.print_exc()
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{FAILING}: interrupted; no report was written, an earlier one is untouched", file=sys.stderr)
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(run())
