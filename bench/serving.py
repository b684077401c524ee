"""The serving benchmark: this service against the course-style baseline and an empty endpoint.

    make bench                     # or: pipenv run python -m bench.serving
    pipenv run python -m bench.serving --quick        # 3-second loads, one timed start: a smoke run

In one run, on the embedded default forest and the same Gunicorn settings (gunicorn.conf.py with
WEB_CONCURRENCY=5), it starts in turn:
- this service as shipped (validation, metrics, JSON request log and live drift on: each worker
  compares its last 10,000 rides with the run's reference profile every 30 s; the model from the cache);
- the same service with live drift off (DRIFT_MONITOR=false), and with live drift every second
  (DRIFT_INTERVAL_SECONDS=1), the worst case: a 10 s load at the default 30 s may see no comparison.
  wrk sends one ride over and over, so the window fills with identical rides and drift is detected,
  as it should be; a comparison costs the same whatever the rides;
- the same service (live drift on) on Gunicorn's stock sync worker instead of web_service/server/worker.py, which keeps
  slow clients off the workers: what that isolation costs;
- the course-style baseline, calling mlflow.pyfunc's predict per request (bench/apps), with the
  forest as the course fits it (n_jobs=-1: joblib workers on every call);
- the same baseline predicting single-threaded (n_jobs=None), the strongest form of it;
- an empty endpoint that parses the JSON and answers a constant (bench/apps).
Each is started once to warm the caches, then timed from process start to its first successful
prediction (median of 3 starts) and left running. Then wrk loads them at saturation (2 threads,
32 connections), with one client, and with 1,000 rides in one request, in interleaved rounds
with the order rotated, so that a shared machine's slowdowns hit every server alike; medians of
3 rounds are reported. Total PSS (master and workers, /proc/PID/smaps_rollup) is read after
serving at saturation. Each live drift case is checked in its log to be what its name says
(a service without its reference profile would otherwise be measured as "on"). It also checks
that the compiled forest gives scikit-learn's floats bit for bit on every ride of a TLC file
(February 2021 by default), in-process and over HTTP. The table, with ratios and the issue's
targets, goes to bench/results/serving.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import requests

from bench import servers, wrk
from bench.servers import RIDE
from harness.processes import total_pss_mb

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RIDES = REPO.parent / "shared" / "data" / "green_tripdata_2021-02.parquet"
SERVICE, EMPTY = "this service", "empty endpoint"
STOCK_WORKER = "this service on Gunicorn's stock sync worker (no slow-client isolation)"
DRIFT_OFF = "this service, live drift off (DRIFT_MONITOR=false)"
DRIFT_EVERY_SECOND = "this service, live drift every second (DRIFT_INTERVAL_SECONDS=1)"
BASELINE = "course-style baseline (pyfunc per request, the course's n_jobs=-1)"
SINGLE_THREADED = "course-style baseline, single-threaded (n_jobs=None)"
# name -> (app, its own environment, the --servers choice that selects it)
APPS = {
    SERVICE: ("web_service_mlflow.predict:app", {}, "service"),
    DRIFT_OFF: ("web_service_mlflow.predict:app", {"DRIFT_MONITOR": "false"}, "service"),
    DRIFT_EVERY_SECOND: ("web_service_mlflow.predict:app", {"DRIFT_INTERVAL_SECONDS": "1"}, "service"),
    STOCK_WORKER: ("web_service_mlflow.predict:app", {"GUNICORN_CMD_ARGS": "--worker-class sync"}, "service"),
    BASELINE: ("bench.apps.course_baseline:app", {"BASELINE_N_JOBS": "-1"}, "baseline"),
    SINGLE_THREADED: ("bench.apps.course_baseline:app", {"BASELINE_N_JOBS": "none"}, "baseline"),
    EMPTY: ("bench.apps.empty:app", {}, "empty"),
}
# name -> what one line of its log must say about live drift (web_service.livedrift.start_live_drift)
LIVE_DRIFT_LOG = {
    SERVICE: ("live drift: each worker compares", "reference profile every 30 s"),
    DRIFT_OFF: ("live drift is off (DRIFT_MONITOR=false)",),
    DRIFT_EVERY_SECOND: ("live drift: each worker compares", "reference profile every 1 s"),
}
BATCH_RIDES = 1000


@dataclass
class Result:
    server: str
    start_s: float  # median of the timed starts, process start to first successful prediction
    saturated_rps: float
    saturated_p50_ms: float
    saturated_p99_ms: float
    single_p50_ms: float
    single_p99_ms: float
    batch_p50_ms: float
    batch_p99_ms: float
    pss_mb: float
    failed_requests: int
    cpu_us_per_request: float  # server CPU (master, workers and their threads) per request at saturation
    rounds: dict[str, list[float]]  # each round's value of the medians above, in round order: the noise


def batch_body(size: int = BATCH_RIDES, seed: int = 7) -> list[dict]:
    rng = np.random.default_rng(seed)
    zones, distances = rng.integers(1, 266, (size, 2)), rng.exponential(3.0, size).round(2)
    return [{"PULocationID": int(a), "DOLocationID": int(b), "trip_distance": float(d)}
            for (a, b), d in zip(zones.tolist(), distances, strict=True)]  # fmt: skip


def start_timed(name: str, workdir: Path, args: argparse.Namespace) -> tuple[servers.Started, float]:
    """Start `name` once to warm the caches, then `args.starts` times; keep the last one running."""
    app, own, _ = APPS[name]
    env = {"WEB_CONCURRENCY": str(args.workers), "MODEL_CACHE_DIR": str(workdir / "cache"), **own}
    label = "-".join(name.split()[:3]).strip(",(")
    servers.start(app, workdir / f"{label}-warm.log", **env).stop()  # fills the caches, compiles the model
    starts = []
    for attempt in range(args.starts):
        server = servers.start(app, workdir / f"{label}-{attempt}.log", **env)
        starts.append(server.seconds_to_first_prediction)
        if attempt < args.starts - 1:
            server.stop()
    print(f"{name}: started in {statistics.median(starts):.2f} s (median of {starts})", file=sys.stderr)
    check_live_drift(name, server.log)
    return server, statistics.median(starts)


def check_live_drift(name: str, log: Path) -> None:
    """Fail unless the server's log shows live drift as `name` says (on, off, or every second)."""
    expected = LIVE_DRIFT_LOG.get(name, ())
    lines = log.read_text().splitlines()
    if expected and not any(all(part in line for part in expected) for line in lines):
        said = [line for line in lines if "live drift" in line] or ["(no live drift line)"]
        raise RuntimeError(f"{name}: its log should say {' ... '.join(expected)!r}, but says:\n" + "\n".join(said))


def measure(names: list[str], workdir: Path, args: argparse.Namespace) -> dict[str, Result]:
    """Start every server, then load them in interleaved rounds: a shared machine's slowdowns hit all alike."""
    running: dict[str, tuple[servers.Started, float]] = {}
    try:
        for name in names:
            running[name] = start_timed(name, workdir, args)
        cases = {"saturated": (RIDE, 2, 32), "single": (RIDE, 1, 1), "batch": (batch_body(), 1, 1)}
        loads: dict[tuple[str, str], list[wrk.Load]] = {(n, c): [] for n in names for c in cases}
        pss: dict[str, float] = {}
        cpu: dict[str, list[float]] = {name: [] for name in names}  # µs per request at saturation
        for name in names:  # every worker warm before measuring
            wrk.run(f"{running[name][0].url}/predict", RIDE, 2, 32, min(2.0, args.seconds))
            servers.wait_idle(running[name][0].process.pid)
        for case, (body, threads, connections) in cases.items():
            for round_ in range(args.rounds):
                for name in names[round_ % len(names) :] + names[: round_ % len(names)]:  # rotate the order
                    url, pid = f"{running[name][0].url}/predict", running[name][0].process.pid
                    before = servers.cpu_seconds(pid)
                    loads[name, case].append(load := wrk.run(url, body, threads, connections, args.seconds))
                    if case == "saturated":  # CPU per request, and memory as it stands after serving at full load
                        cpu[name].append((servers.cpu_seconds(pid) - before) / max(load.requests, 1) * 1e6)
                        pss[name] = total_pss_mb(pid)
                    # A slow server is still answering what wrk left queued: the next must not share the CPU.
                    servers.wait_idle(running[name][0].process.pid)
            print(f"{case}: done", file=sys.stderr)
    finally:
        for server, _ in running.values():
            server.stop()
    return {
        name: _result(name, running[name][1], [loads[name, case] for case in cases], pss[name], cpu[name])
        for name in names
    }


def _result(name: str, start_s: float, cases: list[list[wrk.Load]], pss_mb: float, cpu_us: list[float]) -> Result:
    """Medians over the rounds of each case."""
    saturated, single, batch = ([statistics.median(getattr(load, field) for load in runs)
                                 for field in ("requests_per_s", "p50_ms", "p99_ms")] for runs in cases)  # fmt: skip
    failed = sum(load.failed for runs in cases for load in runs)
    rounds = {
        "saturated_rps": [load.requests_per_s for load in cases[0]],
        "single_p50_ms": [load.p50_ms for load in cases[1]],
        "batch_p50_ms": [load.p50_ms for load in cases[2]],
        "cpu_us_per_request": [round(us, 1) for us in cpu_us],
    }
    return Result(name, start_s, *saturated, *single[1:], *batch[1:], pss_mb, failed, statistics.median(cpu_us), rounds)


def check_exactness(rides_path: Path, workdir: Path, workers: int) -> str:
    """Every ride of the file through the compiled form and through scikit-learn, compared bit for bit."""
    from web_service.engine.compiled import TreeTable
    from web_service.features import RIDE_FIELDS, prepare_features_frame
    from web_service.schema import MAX_TRIP_DISTANCE
    from web_service_mlflow.data import read_rides
    from web_service_mlflow.flavor import load_run_model
    from web_service_mlflow.layout import run_artifacts
    from web_service_mlflow.loader import load_predictor
    from web_service_mlflow.settings import ModelSettings

    settings = ModelSettings.from_env(os.environ | {"MODEL_CACHE_DIR": str(workdir / "cache")})
    predictor = load_predictor(settings)
    assert isinstance(predictor.pipeline, TreeTable), predictor.engine
    artifacts = run_artifacts(Path(settings.artifact_root), settings.run_id)
    pipeline, _ = load_run_model(artifacts / "model", artifacts / "preprocessor", "bench")
    frame = read_rides(str(rides_path))
    features = prepare_features_frame(frame)
    fast, reference = predictor.pipeline.predict(features), pipeline.predict(features)
    same = int((fast.view(np.uint64) == reference.view(np.uint64)).sum())
    # Over HTTP, in requests of 1,000: the rides the contract accepts (it refuses odometer errors).
    accepted = (frame["trip_distance"] < MAX_TRIP_DISTANCE).to_numpy()
    rides = frame.loc[accepted, list(RIDE_FIELDS)].to_dict("records")
    server = servers.start(APPS[SERVICE][0], workdir / "exactness.log", WEB_CONCURRENCY=str(workers),
                           MODEL_CACHE_DIR=str(workdir / "cache"))  # fmt: skip
    try:
        served = []
        for first in range(0, len(rides), BATCH_RIDES):
            answer = requests.post(f"{server.url}/predict", json=rides[first : first + BATCH_RIDES], timeout=60)
            answer.raise_for_status()
            served += [item["duration"] for item in answer.json()]
    finally:
        server.stop()
    over_http = sum(a == b for a, b in zip(served, reference[accepted].tolist(), strict=True))
    return (
        f"{rides_path.name}: {same:,} of {len(frame):,} rides bit-identical to scikit-learn in-process; "
        f"over HTTP {over_http:,} of the {len(rides):,} rides the contract accepts "
        f"({len(frame) - len(rides)} are refused: trip_distance of {MAX_TRIP_DISTANCE:g} miles or more)"
    )


def table(results: dict[str, Result], args: argparse.Namespace) -> str:
    header = (
        f"{args.workers} workers, wrk {args.seconds:g} s per run, median of {args.rounds} interleaved rounds per case; "
        "saturation: 2 threads, 32 connections; "
        f"single client: 1 connection; batch: {BATCH_RIDES} rides per request, 1 connection.\n\n"
        "| server | req/s at saturation | p50 / p99 at saturation | single-client p50 / p99 | "
        "batch of 1,000: p50 / p99 | start to first prediction | total PSS | failed requests |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    rows = [
        f"| {r.server} | {r.saturated_rps:,.0f} | {r.saturated_p50_ms:.2f} / {r.saturated_p99_ms:.2f} ms | "
        f"{r.single_p50_ms:.2f} / {r.single_p99_ms:.2f} ms | {r.batch_p50_ms:.1f} / {r.batch_p99_ms:.1f} ms | "
        f"{r.start_s:.2f} s | {r.pss_mb:.0f} MB | {r.failed_requests} |"
        for r in results.values()
    ]
    return header + "\n".join(rows) + "\n"


def targets(results: dict[str, Result]) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for each of the issue's targets."""
    ours, base, empty, stock = results[SERVICE], results[BASELINE], results[EMPTY], results[STOCK_WORKER]
    off, every = results[DRIFT_OFF], results[DRIFT_EVERY_SECOND]
    return [
        ("throughput at least 0.95 x the same service on Gunicorn's stock sync worker",
         f"{ours.saturated_rps / stock.saturated_rps:.2f} x", ours.saturated_rps >= 0.95 * stock.saturated_rps),
        ("throughput at least 0.85 x the empty endpoint's", f"{ours.saturated_rps / empty.saturated_rps:.2f} x",
         ours.saturated_rps >= 0.85 * empty.saturated_rps),
        ("throughput at least 25 x the course baseline's (its n_jobs=-1)",
         f"{ours.saturated_rps / base.saturated_rps:.0f} x", ours.saturated_rps >= 25 * base.saturated_rps),
        ("single-client p50 at most 1.3 x the empty endpoint's", f"{ours.single_p50_ms / empty.single_p50_ms:.2f} x",
         ours.single_p50_ms <= 1.3 * empty.single_p50_ms),
        ("start to first prediction, model cached, at most 2.0 s", f"{ours.start_s:.2f} s", ours.start_s <= 2.0),
        ("master and workers: total PSS at most 400 MB", f"{ours.pss_mb:.0f} MB", ours.pss_mb <= 400),
        ("1,000 rides in one request: at most 50 ms", f"p50 {ours.batch_p50_ms:.1f} ms, p99 {ours.batch_p99_ms:.1f} ms",
         ours.batch_p99_ms <= 50),
        ("no failed request", f"{ours.failed_requests}", ours.failed_requests == 0),
        ("live drift every second: throughput at least 0.95 x live drift off",
         f"{every.saturated_rps / off.saturated_rps:.2f} x (off's rounds: {spread(off, 'saturated_rps')})",
         every.saturated_rps >= 0.95 * off.saturated_rps),
        ("live drift every second: server CPU per request at saturation at most 1.05 x live drift off",
         f"{every.cpu_us_per_request / off.cpu_us_per_request:.2f} x ({every.cpu_us_per_request:.0f} against "
         f"{off.cpu_us_per_request:.0f} µs; off's rounds: {spread(off, 'cpu_us_per_request')})",
         every.cpu_us_per_request <= 1.05 * off.cpu_us_per_request),
    ]  # fmt: skip


def spread(result: Result, measure: str) -> str:
    """The lowest and highest of a server's rounds of one measure, as ratios to their median."""
    values = result.rounds[measure]
    median = statistics.median(values)
    return f"{min(values) / median:.2f}-{max(values) / median:.2f} x their median"


def live_drift_ratios(results: dict[str, Result]) -> str:
    """Live drift on (at the default interval, and every second) against off, and whether that is noise."""
    off, cases = results[DRIFT_OFF], {"on every 30 s": SERVICE, "every second": DRIFT_EVERY_SECOND}
    parts = [
        f"{label}: {on.saturated_rps / off.saturated_rps:.2f}x the throughput, "
        f"{on.single_p50_ms / off.single_p50_ms:.2f}x the single-client p50, "
        f"{on.batch_p50_ms / off.batch_p50_ms:.2f}x the batch p50, "
        f"{on.cpu_us_per_request / off.cpu_us_per_request:.2f}x the server CPU per request at saturation "
        f"({on.cpu_us_per_request:.0f} against {off.cpu_us_per_request:.0f} µs), {on.pss_mb - off.pss_mb:+.0f} MB PSS"
        for label, on in ((label, results[name]) for label, name in cases.items())
    ]
    spreads = "; ".join(
        f"{label} {spread(results[name], 'saturated_rps')} in req/s, {spread(results[name], 'cpu_us_per_request')} "
        f"in CPU per request"
        for label, name in (*cases.items(), ("off", DRIFT_OFF))
    )
    return (
        f"Live drift against live drift off (DRIFT_MONITOR=false): {'; '.join(parts)}. "
        f"Each server's rounds at saturation: {spreads}.\n"
    )


def report(results: dict[str, Result], exactness: str | None, args: argparse.Namespace) -> str:
    ours, empty = results[SERVICE], results[EMPTY]
    ratios = (
        "\n"
        + "".join(
            f"This service against the {name}: {ours.saturated_rps / base.saturated_rps:.0f}x the throughput, "
            f"{base.single_p50_ms / ours.single_p50_ms:.0f}x lower single-client p50, "
            f"{base.start_s / ours.start_s:.1f}x faster start, {base.pss_mb / ours.pss_mb:.1f}x less memory.\n"
            for name, base in ((BASELINE, results[BASELINE]), (SINGLE_THREADED, results[SINGLE_THREADED]))
        )
        + (
            f"Against the empty endpoint: {ours.saturated_rps / empty.saturated_rps:.2f}x its throughput, "
            f"{ours.single_p50_ms / empty.single_p50_ms:.2f}x its single-client p50.\n"
        )
        + (
            f"Against the same service on Gunicorn's stock sync worker: "
            f"{ours.saturated_rps / results[STOCK_WORKER].saturated_rps:.2f}x its throughput, "
            f"{ours.single_p50_ms / results[STOCK_WORKER].single_p50_ms:.2f}x its single-client p50, "
            f"{ours.batch_p50_ms / results[STOCK_WORKER].batch_p50_ms:.2f}x its batch p50.\n"
        )
        + live_drift_ratios(results)
        + "\n"
    )
    rows = "\n".join(
        f"| {name} | {measured} | {'met' if met else '**missed**'} |" for name, measured, met in targets(results)
    )
    checks = "| target | measured | |\n|---|---|---|\n" + rows + "\n"
    exact = f"\nExactness: {exactness}\n" if exactness else "\nExactness: not checked (no --rides file)\n"
    return table(results, args) + ratios + checks + exact


def main(argv: list[str] | None = None) -> int:
    parser = wrk.load_parser(__doc__, seconds=10, rounds=3)
    parser.add_argument("--starts", type=int, default=3, help="timed starts per server (the median is reported)")
    parser.add_argument("--rides", type=Path, default=DEFAULT_RIDES, help="TLC parquet for the exactness check")
    parser.add_argument("--quick", action="store_true", help="one round of 3-second loads, one timed start")
    parser.add_argument(
        "--servers", nargs="+", choices=["service", "baseline", "empty"], default=["service", "baseline", "empty"],
        help="measure only these (the targets need all three)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "serving.md")
    args = parser.parse_args(argv)
    # Each case sets its own live drift; a DRIFT_* left in the shell would change "as shipped" unseen.
    for key in [key for key in os.environ if key.startswith("DRIFT_")]:
        print(f"ignoring {key}={os.environ.pop(key)}: each case sets its own live drift", file=sys.stderr)
    if args.quick:
        args.seconds, args.starts, args.rounds = 3, 1, 1
    wrk.require_wrk()
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        workdir = Path(tmp)
        chosen = [name for name, (_, _, choice) in APPS.items() if choice in args.servers]
        results = measure(chosen, workdir, args)
        if len(results) < len(APPS):
            sys.stdout.write(table(results, args))
            return 0
        exactness = check_exactness(args.rides, workdir, args.workers) if args.rides.is_file() else None
    text = report(results, exactness, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(f"# Serving benchmark ({servers.cpu_count()} cores)\n\n{text}")
    args.out.with_suffix(".json").write_text(json.dumps([asdict(r) for r in results.values()], indent=1) + "\n")
    sys.stdout.write(text)
    return 0 if all(met for _, _, met in targets(results)) else 1


if __name__ == "__main__":
    sys.exit(main())
