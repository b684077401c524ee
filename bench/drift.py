"""Drift thresholds on the real months: web_service.drift's defaults against green January and February 2021.

    make bench-drift             # or: pipenv run python -m bench.drift; about 30 seconds
    pipenv run python -m bench.drift --windows 20 --draws 5 --reps 1 --cli-reps 0     # a smoke run

January is the reference: its rides as the monitor reads them (`read_rides`: the batch
contract's checks, scored by the embedded default run), profiled by `build_profile` with the
run's validation RMSE. Against it, with the default Thresholds:

- February, whole: every statistic and the verdict (expected: quiet);
- five random halves of January (seeds 0..4), one half profiled and the other compared (quiet);
- February shifted, predictions recomputed by the model: distances x1.3 (to the hundredth, as
  the TLC records them), a third of the pickups moved to uniformly random other zones, and both
  (each expected to be detected);
- the noise floor: --draws random samples of each of --sizes February rides, compared with no
  minimum: the reason for min_rides;
- live windows: --windows random samples of --window-rides February rides, and as many runs of
  consecutive rides (pickup order, as a live window holds them), plain (false alarms) and shifted
  (detection);
- time: building the reference profile and comparing February with it, each the median of --reps;
  reading and scoring February; and `python -m web_service_mlflow.monitor` end to end, when it exists.

Results go to bench/results/drift.md and drift.json. The TLC data never enters the repo.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench import publish
from bench.batch import DATA, GREEN_MONTHS, REPO, Limits, child_env, run_child
from web_service import drift
from web_service.drift import Check, Profile, Thresholds
from web_service.predictor import Predictor
from web_service.schema import FIRST_ZONE, LAST_ZONE
from web_service_mlflow.layout import LOCAL_STORE, TRACKING_DB
from web_service_mlflow.loader import load_from_env
from web_service_mlflow.monitor.rides import ACTUAL, PREDICTED, TIME, read_rides

RESULTS = REPO / "bench" / "results" / "drift.md"
DISTANCE_FACTOR = 1.3
MOVED_SHARE = 1 / 3
SIZES = (1_000, 2_000, 5_000, 10_000)
# The statistics compare() gives, in its order: (column, method).
STATISTICS = tuple(
    (name, method)
    for name in drift.COLUMNS
    for method in (("psi", "ks") if name in drift.NUMERIC_COLUMNS else ("js",))
)  # fmt: skip
Columns = dict[str, np.ndarray]


@dataclass
class Comparison:
    """One set of current rides against one reference: every statistic, and what fired."""

    label: str
    reference_rides: int
    rides: int
    statistics: dict[str, float | None]  # "trip_distance psi" -> value
    fired: list[str]  # "trip_distance psi", ...
    rmse_ratio: float | None = None
    checks: list[dict] = field(default_factory=list)

    @property
    def quiet(self) -> bool:
        return not self.fired


@dataclass
class WindowRate:
    """How often windows of one kind alarm, and which checks fired."""

    label: str
    kind: str  # "random" or "consecutive"
    rides: int
    windows: int
    alarms: int
    fired: dict[str, int]

    @property
    def rate(self) -> float:
        return self.alarms / self.windows if self.windows else 0.0


# --- the rides -------------------------------------------------------------------------------------


def model_environ() -> dict[str, str]:
    """Only where the model cache lives: whatever else the environment says, the embedded default run."""
    return {name: os.environ[name] for name in ("MODEL_CACHE_DIR", "XDG_CACHE_HOME") if name in os.environ}


def validation_rmse(run_id: str, store: Path = LOCAL_STORE) -> float | None:
    """The run's logged validation RMSE, read from the repo's tracking database (read-only)."""
    path = store / TRACKING_DB
    if not path.is_file():
        return None
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        row = connection.execute(
            "SELECT value FROM latest_metrics WHERE run_uuid = ? AND key = 'rmse'", (run_id,)
        ).fetchone()
    return float(row[0]) if row else None


def subset(columns: Mapping[str, np.ndarray], index: np.ndarray | slice) -> Columns:
    return {name: values[index] for name, values in columns.items()}


def rescored(columns: Mapping[str, np.ndarray], predictor: Predictor) -> Columns:
    """The columns with predicted_duration recomputed by the model from their zones and distances."""
    predicted = predictor.predict_columns(
        columns["PULocationID"].astype(np.int64), columns["DOLocationID"].astype(np.int64), columns["trip_distance"]
    )
    return dict(columns) | {PREDICTED: predicted}


def scaled_distances(columns: Mapping[str, np.ndarray], factor: float, predictor: Predictor) -> Columns:
    """Every distance times `factor`, to the hundredth of a mile; predictions recomputed."""
    return rescored(dict(columns) | {"trip_distance": (columns["trip_distance"] * factor).round(2)}, predictor)


def moved_pickups(columns: Mapping[str, np.ndarray], share: float, rng: np.random.Generator,
                  predictor: Predictor) -> Columns:  # fmt: skip
    """`share` of the rides picked up in a uniformly random zone other than their own; predictions recomputed."""
    pickup = columns["PULocationID"]
    moved = rng.random(len(pickup)) < share
    other = rng.integers(FIRST_ZONE, LAST_ZONE, len(pickup)).astype(float)  # one of the 264 others...
    other += other >= pickup  # ...skipping the ride's own zone
    return rescored(dict(columns) | {"PULocationID": np.where(moved, other, pickup)}, predictor)


def halves(columns: Mapping[str, np.ndarray], seed: int) -> tuple[Columns, Columns]:
    """A random split of the rides into two halves."""
    first, second = np.array_split(np.random.default_rng(seed).permutation(len(columns["trip_distance"])), 2)
    return subset(columns, first), subset(columns, second)


# --- the measurements ------------------------------------------------------------------------------


def measure(label: str, profile: Profile, current: Mapping[str, np.ndarray], thresholds: Thresholds) -> Comparison:
    """Every check of `current` against `profile`, and the error check when actual durations are there."""
    checks = drift.compare(profile, current, thresholds)
    actual = current.get(ACTUAL)
    error = drift.error_check(profile, actual, current[PREDICTED], thresholds) if actual is not None else None
    every = [*checks, error] if error is not None else checks
    return Comparison(
        label=label,
        reference_rides=profile.rides,
        rides=len(current["trip_distance"]),
        statistics={f"{check.column} {check.method}": check.statistic for check in checks},
        fired=alarms(every),
        rmse_ratio=error.statistic if error is not None else None,
        checks=[check.to_json() for check in every],
    )


def alarms(checks: list[Check]) -> list[str]:
    return [f"{check.column} {check.method}" for check in checks if check.drifted]


def noise_floor(profile: Profile, columns: Mapping[str, np.ndarray], sizes: tuple[int, ...], draws: int,
                thresholds: Thresholds, seed: int) -> dict[int, dict]:  # fmt: skip
    """Per sample size: median and max of each statistic over `draws` samples, and how many would alarm."""
    rng = np.random.default_rng(seed)
    rides = len(columns["trip_distance"])
    unlimited = replace(thresholds, min_rides=0)
    found = {}
    for size in sizes:
        values: dict[str, list[float]] = {f"{name} {method}": [] for name, method in STATISTICS}
        alarmed = 0
        for _ in range(draws):
            checks = drift.compare(profile, subset(columns, rng.choice(rides, size, replace=False)), unlimited)
            for check in checks:
                values[f"{check.column} {check.method}"].append(check.statistic)
            alarmed += bool(alarms(checks))
        found[size] = {
            "statistics": {key: {"median": float(np.median(v)), "max": float(np.max(v))} for key, v in values.items()},
            "alarmed": alarmed,
            "draws": draws,
        }
    return found


def window_rate(label: str, profile: Profile, columns: Mapping[str, np.ndarray], rides: int, windows: int,
                thresholds: Thresholds, seed: int, consecutive: bool = False) -> WindowRate:  # fmt: skip
    """How many of `windows` windows of `rides` rides alarm: random samples, or runs of consecutive pickups."""
    rng = np.random.default_rng(seed)
    total = len(columns["trip_distance"])
    ordered = subset(columns, np.argsort(columns[TIME], kind="stable")) if consecutive else columns
    fired: Counter[str] = Counter()
    alarmed = 0
    for _ in range(windows):
        if consecutive:
            start = int(rng.integers(0, total - rides + 1))
            window = subset(ordered, slice(start, start + rides))
        else:
            window = subset(ordered, rng.choice(total, rides, replace=False))
        found = alarms(drift.compare(profile, window, thresholds))
        alarmed += bool(found)
        fired.update(found)
    kind = "consecutive" if consecutive else "random"
    return WindowRate(label, kind, rides, windows, alarmed, dict(fired))


def median_seconds(work: Callable[[], object], reps: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times


def cli_runs(reference: Path, current: Path, reps: int, workdir: Path) -> dict:
    """`python -m web_service_mlflow.monitor --reference JAN --current FEB --output DIR`, timed from start to exit."""
    if reps <= 0:
        return {"measured": False, "note": "not asked for (--cli-reps 0)"}
    runs = []
    for number in range(reps):
        output = workdir / f"monitor-{number}"
        command = [sys.executable, "-m", "web_service_mlflow.monitor", "--reference", str(reference),
                   "--current", str(current), "--output", str(output)]  # fmt: skip
        env = child_env() | model_environ()
        runs.append(run_child(command, env, Limits(memory_gb=8.0, timeout_s=300.0), workdir / f"monitor-{number}"))
    seconds = [run.seconds for run in runs]
    return {
        "measured": True,
        "command": "python -m web_service_mlflow.monitor --reference JAN --current FEB --output DIR",
        "median_s": statistics.median(seconds),
        "seconds": seconds,
        "peak_rss_mb": max(run.peak_rss_mb for run in runs),
        "returncodes": [run.returncode for run in runs],
        "last_line": runs[-1].last_line,
        "stderr_tail": runs[-1].stderr_tail,
    }


# --- the whole run ---------------------------------------------------------------------------------


@dataclass
class Results:
    thresholds: Thresholds
    reference: dict
    months: Comparison
    halves: list[Comparison]
    shifts: list[Comparison]
    noise: dict[int, dict]
    windows: list[WindowRate]
    timings: dict
    cli: dict

    def expectations(self) -> list[tuple[str, bool]]:
        """What the defaults were calibrated to do, each with whether it held here."""
        t = self.thresholds
        months = "" if self.months.quiet else f" ({_fired(self.months)})"
        found = [(f"January against February is quiet{months}", self.months.quiet)]
        quiet_halves = sum(half.quiet for half in self.halves)
        found.append((f"random halves of January are quiet ({quiet_halves} of {len(self.halves)})",
                      quiet_halves == len(self.halves)))  # fmt: skip
        found += [(f"{shift.label} is detected ({_fired(shift)})", not shift.quiet) for shift in self.shifts]
        at_minimum = self.noise.get(t.min_rides)
        if at_minimum is not None:
            alarmed, draws = at_minimum["alarmed"], at_minimum["draws"]
            found.append((f"samples of min_rides ({t.min_rides:,}) February rides never alarm ({alarmed} of {draws})",
                          alarmed == 0))  # fmt: skip
        for rate in self.windows:
            windows = f"{rate.kind} windows of {rate.rides:,}"
            if rate.label == "February":
                found.append((f"no false alarm in {windows} February rides ({rate.alarms} of {rate.windows})",
                              rate.alarms == 0))  # fmt: skip
            else:
                missed = rate.windows - rate.alarms
                found.append((f"{rate.label} detected in all {windows} rides ({missed} missed of {rate.windows})",
                              missed == 0))  # fmt: skip
        return found


def run(january: Path, february: Path, args: argparse.Namespace, workdir: Path) -> Results:
    thresholds = Thresholds()
    progress("loading the embedded default model")
    _, predictor = load_from_env(model_environ())
    valid_rmse = validation_rmse(predictor.model_version)
    metrics = {"valid_rmse": valid_rmse} if valid_rmse else {}
    progress("reading and scoring both months")
    jan, feb = read_rides([str(january)], predictor), read_rides([str(february)], predictor)
    reference = drift.build_profile(jan.columns, metrics, source=january.name, run_id=predictor.model_version)
    rescore_diff = float(np.max(np.abs(rescored(feb.columns, predictor)[PREDICTED] - feb.columns[PREDICTED])))

    progress("January against February, halves, shifts")
    months = measure("February", reference, feb.columns, thresholds)
    split = []
    for seed in range(5):
        first, second = halves(jan.columns, seed)
        split.append(measure(f"January halves, seed {seed}", drift.build_profile(first, metrics), second, thresholds))
    rng = np.random.default_rng(args.seed)
    longer = scaled_distances(feb.columns, DISTANCE_FACTOR, predictor)
    moved = moved_pickups(feb.columns, MOVED_SHARE, rng, predictor)
    both = moved_pickups(longer, MOVED_SHARE, rng, predictor)
    shifted = {
        f"February, distances x{DISTANCE_FACTOR:g}": longer,
        "February, a third of pickups moved": moved,
        "February, both": both,
    }
    shifts = [measure(label, reference, columns, thresholds) for label, columns in shifted.items()]

    progress(f"noise floor: {args.draws} draws of {', '.join(f'{size:,}' for size in args.sizes)} rides")
    noise = noise_floor(reference, feb.columns, args.sizes, args.draws, thresholds, args.seed)

    progress(f"live windows: {args.windows} of {args.window_rides:,} rides, each kind")
    windows = []
    for consecutive in (False, True):
        for label, columns in (("February", feb.columns), *list(shifted.items())[:2]):
            windows.append(window_rate(label, reference, columns, args.window_rides, args.windows, thresholds,
                                       args.seed, consecutive))  # fmt: skip

    progress("timing")
    build_s, build_all = median_seconds(lambda: drift.build_profile(jan.columns, metrics), args.reps)
    compare_s, compare_all = median_seconds(lambda: measure("February", reference, feb.columns, thresholds), args.reps)
    read_s, read_all = median_seconds(lambda: read_rides([str(february)], predictor), args.reps)
    timings = {
        "build_profile_s": build_s, "build_profile_all": build_all,
        "compare_s": compare_s, "compare_all": compare_all,
        "read_and_score_s": read_s, "read_and_score_all": read_all,
    }  # fmt: skip
    progress("the monitor's command, end to end")
    cli = cli_runs(january, february, args.cli_reps, workdir)
    about = {
        "source": january.name,
        "rides": len(jan),
        "skipped": jan.skipped,
        "current_source": february.name,
        "current_rides": len(feb),
        "current_skipped": feb.skipped,
        "run_id": predictor.model_version,
        "valid_rmse": valid_rmse,
        "rescored_max_abs_difference": rescore_diff,
    }
    return Results(thresholds, about, months, split, shifts, noise, windows, timings, cli)


# --- the report ------------------------------------------------------------------------------------


def report(results: Results, args: argparse.Namespace, when: str, command: str, total_s: float) -> str:
    t, about = results.thresholds, results.reference
    lines = [
        "# Drift thresholds on the green months of 2021",
        "",
        f"Measured {when} on this machine ({os.cpu_count()} cores) in {total_s:.0f} s. The reference is "
        f"{about['source']}: {about['rides']:,} rides as the monitor reads them ({about['skipped']} refused by the "
        f"contract), scored by the embedded default run `{about['run_id']}`, profiled by `build_profile` with the "
        f"run's validation RMSE {_number(about['valid_rmse'], '.4f')}. February: {about['current_rides']:,} rides. "
        f"Rescoring February's own rides reproduces read_rides' predictions to {about['rescored_max_abs_difference']:g}"
        " (the shifts below are rescored the same way).",
        "",
        f"Thresholds (the defaults of `web_service.drift.Thresholds`): PSI > {t.psi:g}, KS D > {t.ks:g}, "
        f"JS distance > {t.js:g}, RMSE ratio > {t.rmse_ratio:g}; no verdict under {t.min_rides:,} rides. "
        "A statistic over its threshold is in bold.",
        "",
        "## Whole months, halves and shifts",
        "",
        "| current rides | reference rides | rides | "
        + " | ".join(_heading(key) for key in STATISTICS)
        + " | RMSE ratio | verdict |",
        "|---" * (len(STATISTICS) + 5) + "|",
    ]
    for row in [results.months, *results.halves, *results.shifts]:
        cells = [
            _statistic(row.statistics.get(f"{name} {method}"), t.for_method(method)) for name, method in STATISTICS
        ]
        lines.append(f"| {row.label} | {row.reference_rides:,} | {row.rides:,} | {' | '.join(cells)} | "
                     f"{_statistic(row.rmse_ratio, t.rmse_ratio)} | {_fired(row)} |")  # fmt: skip
    lines += [
        "",
        "The reference of the halves is the other half of January. The RMSE ratio is the current rides' RMSE "
        "(actual durations of 1 to 60 minutes) over the run's validation RMSE: January's halves are the "
        "training rides, hence under 1; shifted rides keep February's actual durations, so the ratio shows what "
        "the shift does to the errors. Shifts: distances times 1.3 to the hundredth; a third of the pickups "
        "(each ride with probability 1/3) moved to a zone drawn uniformly from the 264 others; both: the "
        "moved pickups applied to the longer rides. Predictions are recomputed by the model each time.",
        "",
        "## The noise floor: random samples of February, no minimum",
        "",
        f"Median / max over {args.draws} draws of each size, against the January profile; the last column counts "
        "the draws that would alarm with no min_rides.",
        "",
        "| rides | " + " | ".join(_heading(key) for key in STATISTICS) + " | draws that alarm | largest draw |",
        "|---" * (len(STATISTICS) + 3) + "|",
    ]
    for size, found in results.noise.items():
        cells = [_spread(found["statistics"][f"{name} {method}"], t.for_method(method)) for name, method in STATISTICS]
        share, key = closest(found, t)
        lines.append(f"| {size:,} | {' | '.join(cells)} | {found['alarmed']} of {found['draws']} | "
                     f"{share:.0%} of its threshold ({key}) |")  # fmt: skip
    lines += ["", min_rides_reason(results.noise, t), ""]
    lines += [
        "## Live windows",
        "",
        f"{args.windows} windows of each kind: random samples of February's rides, and runs of consecutive rides "
        "in pickup order (a few days each, as a live window holds them).",
        "",
        "| rides | window | rides per window | windows that alarm | rate | checks that fired |",
        "|---|---|---|---|---|---|",
    ]
    for rate in results.windows:
        fired = ", ".join(f"{key} {count}" for key, count in sorted(rate.fired.items())) or "-"
        lines.append(f"| {rate.label} | {rate.kind} | {rate.rides:,} | {rate.alarms} of {rate.windows} | "
                     f"{rate.rate:.0%} | {fired} |")  # fmt: skip
    lines += ["", "## Time", "", *timing_lines(results.timings, results.cli, args.reps), ""]
    lines += ["## Calibration", ""]
    lines += [f"- {text}: {'held' if held else 'CONTRADICTED'}" for text, held in results.expectations()]
    lines += ["", "Reproduce:", "", "```sh", "make bench-drift", f"# or: {command}", "```", ""]
    return "\n".join(lines)


def closest(found: dict, thresholds: Thresholds) -> tuple[float, str]:
    """The largest draw of any statistic as a share of its threshold, and which statistic it was."""
    return max(
        (value["max"] / thresholds.for_method(key.split()[1]), key) for key, value in found["statistics"].items()
    )


def min_rides_reason(noise: dict[int, dict], thresholds: Thresholds) -> str:
    """The sentence that says why min_rides is what it is, from the numbers above it."""
    parts = []
    for size, found in noise.items():
        share, key = closest(found, thresholds)
        parts.append(f"at {size:,} rides {found['alarmed']} of {found['draws']} draws alarm on no drift and the "
                     f"largest reaches {share:.0%} of its threshold ({key})")  # fmt: skip
    return f"Why min_rides is {thresholds.min_rides:,}: {'; '.join(parts)}."


def timing_lines(timings: dict, cli: dict, reps: int) -> list[str]:
    lines = [
        f"- Build the reference profile of January: {timings['build_profile_s'] * 1000:.0f} ms (median of {reps}).",
        f"- Compare February with it (every check and the error check): {timings['compare_s'] * 1000:.0f} ms "
        f"(median of {reps}).",
        f"- Read and score February (`read_rides` with the model loaded): {timings['read_and_score_s'] * 1000:.0f} ms "
        f"(median of {reps}).",
    ]
    if cli["measured"]:
        codes = ", ".join(str(code) for code in cli["returncodes"])
        runs = ", ".join(f"{seconds:.2f}" for seconds in cli["seconds"])
        lines.append(
            f"- `{cli['command']}`, end to end (process start to exit, the model from its cache): "
            f"{cli['median_s']:.2f} s, median of {len(cli['seconds'])} ({runs}); peak RSS "
            f"{cli['peak_rss_mb']:,.0f} MB; exit codes {codes}; last line: `{cli['last_line']}`."
        )
    else:
        lines.append(f"- The monitor's command end to end: not measured, {cli['note']}.")
    return lines


def _heading(key: tuple[str, str]) -> str:
    name, method = key
    short = {"trip_distance": "distance", "PULocationID": "pickup", "DOLocationID": "drop-off",
             "predicted_duration": "prediction"}[name]  # fmt: skip
    return f"{short} {method.upper()}"


def _statistic(value: float | None, threshold: float) -> str:
    if value is None:
        return "-"
    text = f"{value:.4f}"
    return f"**{text}**" if value > threshold else text


def _spread(found: dict, threshold: float) -> str:
    return f"{_statistic(found['median'], threshold)} / {_statistic(found['max'], threshold)}"


def _fired(row: Comparison) -> str:
    return "quiet" if row.quiet else "drift: " + ", ".join(row.fired)


def _number(value: float | None, form: str) -> str:
    return "-" if value is None else format(value, form)


def record(results: Results, args: argparse.Namespace, when: str, command: str, total_s: float) -> dict:
    """The JSON beside the report: every statistic and check, every timing."""
    return {
        "measured": when,
        "cpus": os.cpu_count(),
        "seconds": total_s,
        "command": command,
        "args": {
            key: os.path.relpath(value, REPO) if isinstance(value, Path) else value for key, value in vars(args).items()
        },  # fmt: skip
        "thresholds": asdict(results.thresholds),
        "reference": results.reference,
        "months": asdict(results.months),
        "halves": [asdict(half) for half in results.halves],
        "shifts": [asdict(shift) for shift in results.shifts],
        "noise_floor": {str(size): found for size, found in results.noise.items()},
        "windows": [asdict(rate) | {"rate": rate.rate} for rate in results.windows],
        "timings": results.timings,
        "cli": results.cli,
        "expectations": [{"expectation": text, "held": held} for text, held in results.expectations()],
    }


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="the folder holding the two green months")
    parser.add_argument("--windows", type=int, default=200, help="live windows of each kind")
    parser.add_argument("--window-rides", type=int, default=10_000, help="rides per live window")
    parser.add_argument("--draws", type=int, default=20, help="noise-floor samples of each size")
    parser.add_argument("--sizes", type=_sizes, default=SIZES, help="noise-floor sample sizes, comma-separated")
    parser.add_argument("--reps", type=int, default=5, help="timed runs of the profile build, compare and read")
    parser.add_argument("--cli-reps", type=int, default=3, help="timed runs of the monitor's command (0: none)")
    parser.add_argument("--seed", type=int, default=0, help="of the shifts, samples and windows")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the report; a .json is written beside it")
    return parser.parse_args(argv)


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(part.replace("_", "")) for part in text.split(","))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    january, february = (args.data / name for name in GREEN_MONTHS)
    missing = [str(path) for path in (january, february) if not path.is_file()]
    if missing:
        print(f"cannot benchmark: no {', '.join(missing)} (the TLC green months; --data names their folder)",
              file=sys.stderr)  # fmt: skip
        return 1
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = ("pipenv run python -m bench.drift " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as workdir:
        results = run(january, february, args, Path(workdir))
    total_s = time.perf_counter() - started
    text = report(results, args, when, command, total_s)
    contradicted = [text for text, held in results.expectations() if not held]
    return publish(
        args.out, text, record(results, args, when, command, total_s), contradicted, "calibration contradicted"
    )


if __name__ == "__main__":
    sys.exit(main())
