"""Batch scoring speed: `python -m web_service_mlflow.batch` against the course-style score.py.

    make bench-batch             # or: pipenv run python -m bench.batch; about 3 minutes
    pipenv run python -m bench.batch --reps 1 --yellow-rides 200000     # a smoke run

Both score with the embedded default run (the course style through `mlflow.pyfunc.load_model`
of `runs:/<RUN_ID>/model`, bench/apps/course_score.py) and are timed as a scheduler sees them:
the wall time of the whole process, from start to exit, and its peak RSS (ru_maxrss from
os.wait4). Every child runs under an address-space limit and a timeout, so that the course
style on a big month cannot take the machine down with it.

- Green month: January 2021 from --data, after --warmups runs of each (default 1: the model in its
  cache, the file in the page cache); then --reps runs of each, interleaved. The two outputs
  are compared ride by ride on the rides both scored: the predictions must be equal.
- Yellow month: a yellow-schema file of about 3.5 million rides, built in --workdir from the
  two green months (their rows repeated, lpep_* renamed tpep_*, pickups spread over March 2021;
  row groups of 1M rides as the TLC writes them). The TLC data never enters the repo. Ours runs
  --reps times; the course style once, since it holds every ride as a dict.

Results go to bench/results/batch.md and batch.json.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench import publish

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
GREEN_MONTHS = ("green_tripdata_2021-01.parquet", "green_tripdata_2021-02.parquet")
YELLOW_NAME = "yellow_tripdata_2021-03.parquet"
YELLOW_MONTH = (2021, 3)
YELLOW_RIDES = 3_500_000
ROW_GROUP_RIDES = 1_000_000
RESULTS = REPO / "bench" / "results" / "batch.md"
OURS, COURSE = "ours", "course style"
# What chooses the model: unset, so that both sides score with the embedded default run.
MODEL_VARIABLES = ("RUN_ID", "MODEL_URI", "MLFLOW_TRACKING_URI", "MODEL_ARTIFACT_ROOT", "MODEL_ARTIFACT_PATH")
# A yellow TLC file's columns (2021), in its order; the ones green files lack are left out,
# except airport_fee (yellow only), written as 0.
YELLOW_COLUMNS = (
    "VendorID", "tpep_pickup_datetime", "tpep_dropoff_datetime", "passenger_count", "trip_distance", "RatecodeID",
    "store_and_fwd_flag", "PULocationID", "DOLocationID", "payment_type", "fare_amount", "extra", "mta_tax",
    "tip_amount", "tolls_amount", "improvement_surcharge", "total_amount", "congestion_surcharge", "airport_fee",
)  # fmt: skip
TARGET_RATIO, TARGET_SECONDS, TARGET_RSS_MB = 5.0, 1.0, 1024.0


@dataclass
class Run:
    """One child process: how long it ran, how much memory it held, how it ended."""

    seconds: float
    cpu_seconds: float  # user + system: less disturbed than wall time by other load on the machine
    peak_rss_mb: float
    returncode: int
    timed_out: bool
    last_line: str  # of its stdout (ours prints its summary there)
    stderr_tail: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


@dataclass
class Limits:
    """What every child may take: address space (RLIMIT_AS) and wall time."""

    memory_gb: float
    timeout_s: float

    def describe_failure(self, run: Run) -> str:
        if run.timed_out:
            return f"killed at the {self.timeout_s:.0f} s timeout (peak RSS {run.peak_rss_mb:,.0f} MB)"
        if "MemoryError" in run.stderr_tail or "Cannot allocate memory" in run.stderr_tail:
            return (f"died of MemoryError under the {self.memory_gb:g} GB address-space limit after "
                    f"{run.seconds:.1f} s (peak RSS {run.peak_rss_mb:,.0f} MB)")  # fmt: skip
        if run.returncode < 0:
            return f"killed by {signal.Signals(-run.returncode).name} after {run.seconds:.1f} s"
        last = run.stderr_tail.splitlines()[-1] if run.stderr_tail else "no error output"
        return f"exit code {run.returncode} after {run.seconds:.1f} s: {last}"


def run_child(command: list[str], env: dict[str, str], limits: Limits, logs: Path) -> Run:
    """Run `command` from the repo root; its wall time from start to exit and its peak RSS."""
    limit = int(limits.memory_gb * (1 << 30))

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    out, err = logs.with_suffix(".out"), logs.with_suffix(".err")
    with out.open("wb") as stdout, err.open("wb") as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=stdout, stderr=stderr, preexec_fn=cap)
        killed = threading.Event()
        timer = threading.Timer(limits.timeout_s, lambda: (killed.set(), process.kill()))
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)  # wait4, not wait: the child's own rusage
        finally:
            timer.cancel()
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    lines = out.read_text(errors="replace").splitlines()
    return Run(
        seconds=seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024,  # KB on Linux
        returncode=process.returncode,
        timed_out=killed.is_set(),
        last_line=lines[-1] if lines else "",
        stderr_tail="\n".join(err.read_text(errors="replace").splitlines()[-5:]),
    )


def child_env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name not in MODEL_VARIABLES}


def commands(source: Path, month: tuple[int, int], workdir: Path, run_id: str) -> dict[str, tuple[list[str], Path]]:
    """Per side: the command scoring `source`, and where it writes."""
    stem = source.stem
    ours_out, course_out = workdir / f"{stem}.ours.parquet", workdir / f"{stem}.course.parquet"
    course = ["bench/apps/course_score.py", str(source), str(course_out), *map(str, month), run_id]
    return {
        OURS: ([sys.executable, "-m", "web_service_mlflow.batch", str(source), "--output", str(ours_out)], ours_out),
        COURSE: ([sys.executable, *course], course_out),
    }


def interleave(
    sides: dict[str, list[str]], reps: int, warmups: int, limits: Limits, logs: Path
) -> dict[str, list[Run]]:
    """`warmups` untimed runs of each side, then `reps` timed ones, alternating which goes first."""
    names = list(sides)
    runs: dict[str, list[Run]] = {name: [] for name in names}
    for round_ in range(warmups + reps):
        for name in names if round_ % 2 == 0 else names[::-1]:
            tag = name.replace(" ", "-")
            run = run_child(sides[name], child_env(), limits, logs / f"{tag}-{round_}")
            if not run.ok:
                raise RuntimeError(f"{name} failed: {limits.describe_failure(run)}\n{run.stderr_tail}")
            if round_ >= warmups:
                runs[name].append(run)
            print(f"  {name}: {run.seconds:.2f} s, peak RSS {run.peak_rss_mb:,.0f} MB", file=sys.stderr)
    return runs


@dataclass
class Agreement:
    """The two outputs, ride by ride: on the rides both scored, the largest difference."""

    compared: int
    course_only: int  # rides the course scored and ours rejected
    ours_only: int
    max_abs_diff: float

    @property
    def equal(self) -> bool:
        return self.compared > 0 and self.ours_only == 0 and self.max_abs_diff == 0.0


def compare(ours: Path, course: Path) -> Agreement:
    columns = ["ride_id", "predicted_duration"]
    left = pq.read_table(ours, columns=columns)
    right = pq.read_table(course, columns=columns).rename_columns(["ride_id", "course"])
    # pandas writes large_string; the join wants one key type.
    right = right.set_column(0, "ride_id", right["ride_id"].cast(pa.string()))
    left = left.set_column(0, "ride_id", left["ride_id"].cast(pa.string()))
    both = left.join(right, "ride_id", join_type="inner")
    differences = pc.abs(pc.subtract(both["predicted_duration"], both["course"]))
    # NaN on either side counts as a difference, not as nothing.
    largest = pc.max(pc.if_else(pc.is_nan(differences), math.inf, differences)).as_py()
    return Agreement(
        compared=both.num_rows,
        course_only=right.num_rows - both.num_rows,
        ours_only=left.num_rows - both.num_rows,
        max_abs_diff=0.0 if largest is None else largest,
    )


def build_yellow(greens: list[Path], target: Path, rides: int, row_group_rides: int = ROW_GROUP_RIDES) -> int:
    """A yellow-schema month of `rides` rides from green rows; returns its row count."""
    tables = []
    for path in greens:
        table = pq.read_table(path)
        table = table.rename_columns([name.replace("lpep_", "tpep_") for name in table.column_names])
        tables.append(table.select([name for name in YELLOW_COLUMNS if name in table.column_names]))
    green = pa.concat_tables(tables, promote_options="permissive")
    whole = pa.concat_tables([green] * math.ceil(rides / green.num_rows)).slice(0, rides)  # references, no copy
    # In microseconds, as TLC files hold them (pandas may write nanoseconds: those are cut).
    pickup, dropoff = (pc.cast(whole[f"tpep_{end}_datetime"], pa.timestamp("us"), safe=False).cast(pa.int64())
                       for end in ("pickup", "dropoff"))  # fmt: skip
    duration = pc.subtract(dropoff, pickup)
    # Pickups spread evenly over the month, in order, in whole seconds as the TLC records them;
    # each ride keeps its own duration.
    year, month = YELLOW_MONTH
    start = int(np.datetime64(f"{year:04d}-{month:02d}-01", "us").astype(np.int64))
    seconds = np.arange(rides, dtype=np.int64) * (31 * 86_400) // rides
    new_pickup = pa.array(start + seconds * 1_000_000)
    times = {
        "tpep_pickup_datetime": new_pickup.cast(pa.timestamp("us")),
        "tpep_dropoff_datetime": pc.add(new_pickup, duration).cast(pa.timestamp("us")),
        "airport_fee": pa.array(np.zeros(rides)),
    }
    names = [name for name in YELLOW_COLUMNS if name in whole.column_names or name in times]
    yellow = pa.table({name: times[name] if name in times else whole[name] for name in names})
    partial = target.with_name(f".{target.name}.tmp")
    pq.write_table(yellow, partial, row_group_size=row_group_rides)
    partial.replace(target)
    return yellow.num_rows


@dataclass
class Row:
    """One month's line of the table."""

    label: str
    rides: int
    ours: list[Run]
    course: list[Run]
    agreement: Agreement | None
    course_failure: str | None = None

    def median(self, runs: list[Run]) -> float | None:
        return statistics.median(run.seconds for run in runs) if runs else None

    def cpu(self, runs: list[Run]) -> float | None:
        return statistics.median(run.cpu_seconds for run in runs) if runs else None

    def peak(self, runs: list[Run]) -> float | None:
        return max(run.peak_rss_mb for run in runs) if runs else None

    @property
    def ratio(self) -> float | None:
        ours, course = self.median(self.ours), self.median(self.course)
        return course / ours if ours and course else None


def score_month(source: Path, month: tuple[int, int], workdir: Path, run_id: str, args: argparse.Namespace,
                label: str, course_reps: int | None = None) -> Row:  # fmt: skip
    """Time both sides on one file; the course style `course_reps` times on its own (None: interleaved)."""
    sides = commands(source, month, workdir, run_id)
    rides = pq.ParquetFile(source).metadata.num_rows
    limits = Limits(args.memory_gb, args.timeout)
    logs = workdir / "logs" / source.stem
    logs.mkdir(parents=True, exist_ok=True)
    print(f"{label}: {rides:,} rides", file=sys.stderr)
    if course_reps is None:
        runs = interleave(
            {name: command for name, (command, _) in sides.items()}, args.reps, args.warmups, limits, logs
        )
        ours, course, failure = runs[OURS], runs[COURSE], None
    else:
        ours = interleave({OURS: sides[OURS][0]}, args.reps, 0, limits, logs)[OURS]
        limits = Limits(args.memory_gb, args.course_timeout)
        course, failure = [], None
        for number in range(course_reps):
            run = run_child(sides[COURSE][0], child_env(), limits, logs / f"course-style-{number}")
            print(f"  {COURSE}: {run.seconds:.2f} s, peak RSS {run.peak_rss_mb:,.0f} MB, exit {run.returncode}",
                  file=sys.stderr)  # fmt: skip
            if not run.ok:
                failure = limits.describe_failure(run)
                break
            course.append(run)
    agreement = compare(sides[OURS][1], sides[COURSE][1]) if course else None
    for _, output in sides.values():
        output.unlink(missing_ok=True)
    return Row(label, rides, ours, course, agreement, failure)


def _seconds(row: Row, runs: list[Run]) -> str:
    median = row.median(runs)
    if median is None:
        return "-"
    every = f" ({', '.join(f'{run.seconds:.2f}' for run in runs)})" if len(runs) > 1 else ""
    return f"{median:.2f}{every}"


def _number(value: float | None, form: str) -> str:
    return "-" if value is None else format(value, form)


def _agreement(row: Row) -> str:
    if row.agreement is None:
        return f"{row.label}: not compared (the course style did not finish)."
    found = row.agreement
    verdict = "equal" if found.equal else "NOT EQUAL"
    return (f"{row.label}: {found.compared:,} rides scored by both, max abs difference {found.max_abs_diff:g} "
            f"({verdict}); {found.course_only:,} scored by the course style only (rejected by ours), "
            f"{found.ours_only:,} by ours only.")  # fmt: skip


def report(rows: list[Row], args: argparse.Namespace, when: str, command: str, load: tuple[float, float]) -> str:
    green = rows[0]
    lines = [
        "# Batch scoring: `python -m web_service_mlflow.batch` against the course-style score.py",
        "",
        f"Measured {when} on this machine: {os.cpu_count()} cores, noisy: ratios hold. Each figure is the wall "
        "time of the whole process, from start to exit, median of the runs (every run in brackets); "
        "peak RSS is the child's ru_maxrss (os.wait4), the largest of its runs. Both sides score with the "
        "embedded default run; the course style is bench/apps/course_score.py (pandas, `to_dict` records, "
        "`mlflow.pyfunc.load_model('runs:/<RUN_ID>/model')`, one `predict`).",
        "",
        f"- Green: {args.warmups} warm-up run(s) of each (the model cached, the file in the page cache), then "
        f"{args.reps} timed run(s) of each, interleaved.",
        f"- Yellow: built from both green months' rows (see bench/batch.py); ours {args.reps} run(s), the course "
        f"style once, under a {args.memory_gb:g} GB address-space limit and a {args.course_timeout:.0f} s timeout.",
        "- The course style predicts with the run's forest as `load_model` hands it over: n_jobs=None, one "
        "thread. The course fits its own forest with n_jobs=-1, which predicts faster on 2 cores but sums the "
        "trees in thread order: its floats then differ from these in the last bits, and could not be compared "
        "bit for bit.",
        "",
        "| month | ours s | course s | ratio | ours rides/s | course rides/s | ours peak RSS | course peak RSS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ours, course = row.median(row.ours), row.median(row.course)
        course_cell = _seconds(row, row.course) if row.course else f"did not finish: {row.course_failure}"
        ratio = f"{row.ratio:.1f}x" if row.ratio else "-"
        lines.append(
            f"| {row.label} ({row.rides:,} rides) | {_seconds(row, row.ours)} | {course_cell} | {ratio} | "
            f"{_number(row.rides / ours if ours else None, ',.0f')} | "
            f"{_number(row.rides / course if course else None, ',.0f')} | "
            f"{_number(row.peak(row.ours), ',.0f')} MB | {_number(row.peak(row.course), ',.0f')} MB |"
        )
    lines += [
        "",
        f"CPU time (user + system) of the same processes, medians: {cpu_times(rows)}. The machine's "
        f"load average (1 minute) was {load[0]:.2f} at the start and {load[1]:.2f} at the end.",
        "",
    ]
    lines += ["Predictions, compared by ride_id:", ""]
    lines += [f"- {_agreement(row)}" for row in rows]
    lines += ["", "Targets:", ""]
    lines += [f"- {text}: {'met' if met else 'NOT MET'}" for text, met in targets(rows)]
    lines += ["", f"Ours' own summary line, green, last run: `{green.ours[-1].last_line}`", ""]
    lines += ["Reproduce:", "", "```sh", "make bench-batch", f"# or: {command}", "```", ""]
    return "\n".join(lines)


def cpu_times(rows: list[Row]) -> str:
    parts = []
    for row in rows:
        ours, course = row.cpu(row.ours), row.cpu(row.course)
        ratio = f" ({course / ours:.1f}x)" if ours and course else ""
        parts.append(f"{row.label}: ours {_number(ours, '.2f')} s, course style {_number(course, '.2f')} s{ratio}")
    return "; ".join(parts)


def targets(rows: list[Row]) -> list[tuple[str, bool]]:
    green, *rest = rows
    found = [
        (f"green: ours at least {TARGET_RATIO:g}x faster than the course style ({_number(green.ratio, '.1f')}x)",
         green.ratio is not None and green.ratio >= TARGET_RATIO),
        (f"green: ours under {TARGET_SECONDS:g} s ({green.median(green.ours):.2f} s)",
         green.median(green.ours) < TARGET_SECONDS),
    ]  # fmt: skip
    for row in rest:
        peak = row.peak(row.ours) or 0.0
        found.append((f"yellow: ours' peak RSS under 1 GB ({peak:,.0f} MB)", peak < TARGET_RSS_MB))
    return found


def record(rows: list[Row], args: argparse.Namespace, when: str, command: str, load: tuple[float, float]) -> dict:
    """The JSON beside the report: every run, not only the medians."""
    return {
        "measured": when,
        "cpus": os.cpu_count(),
        "load_average": load,
        "command": command,
        "args": {
            key: os.path.relpath(value, REPO) if isinstance(value, Path) else value for key, value in vars(args).items()
        },  # fmt: skip
        "rows": [asdict(row) | {"ratio": row.ratio} for row in rows],
        "targets": [{"target": text, "met": met} for text, met in targets(rows)],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="the folder holding the two green months")
    parser.add_argument("--reps", type=int, default=5, help="timed runs of each side per month")
    parser.add_argument("--warmups", type=int, default=1, help="untimed runs of each side first, green month")
    parser.add_argument("--yellow-rides", type=int, default=YELLOW_RIDES, help="0: no yellow month")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="where the yellow month is built and the logs go, outside the repo (default: a temporary folder)",
    )
    parser.add_argument("--memory-gb", type=float, default=12.0, help="address-space limit of every child")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per child, green month and ours")
    parser.add_argument("--course-timeout", type=float, default=1800.0, help="seconds, course style on yellow")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the report; a .json is written beside it")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    greens = [args.data / name for name in GREEN_MONTHS]
    missing = [str(path) for path in greens if not path.is_file()]
    if missing:
        print(f"cannot benchmark: no {', '.join(missing)} (the TLC green months; --data names their folder)",
              file=sys.stderr)  # fmt: skip
        return 1
    if args.workdir and args.workdir.resolve().is_relative_to(REPO):
        print(f"cannot benchmark: --workdir {args.workdir} is inside the repo; TLC-derived data stays out of it",
              file=sys.stderr)  # fmt: skip
        return 1
    run_id = (REPO / "mlruns" / "default_run_id").read_text().strip()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = os.getloadavg()[0]
    command = "pipenv run python -m bench.batch " + " ".join(argv if argv is not None else sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as temporary:
        workdir = args.workdir or Path(temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        rows = [score_month(greens[0], (2021, 1), workdir, run_id, args, "green 2021-01")]
        if args.yellow_rides:
            yellow = workdir / YELLOW_NAME
            print(f"building {yellow} ({args.yellow_rides:,} rides)", file=sys.stderr)
            build_yellow(greens, yellow, args.yellow_rides)
            rows.append(score_month(yellow, YELLOW_MONTH, workdir, run_id, args, "yellow 2021-03, built", 1))
    load, command = (load_before, os.getloadavg()[0]), command.strip()
    text = report(rows, args, when, command, load)
    unequal = [row.label for row in rows if row.agreement is not None and not row.agreement.equal]
    return publish(args.out, text, record(rows, args, when, command, load), unequal, "predictions differ")


if __name__ == "__main__":
    sys.exit(main())
