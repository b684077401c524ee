"""The app's own CPU per request, in-process, with each trick off: finer than wrk on a shared machine.

    python -m bench.ablation_inprocess --rides 1000    # standalone: batches; writes bench/results/ablation_batch.md

One child process per variant builds the app as Gunicorn's master would (as shipped, or
`bench.apps.ablation:serve(name)`; metrics in multiprocess mode, the request log to a file), then
on each command calls the WSGI app directly with POST /predict of one ride for a given time and
reports the CPU time it used per request: process CPU (the metrics flush thread's and live drift's
included), in the cheapest of 25 bursts, as timeit takes the best of its repeats: on a shared
machine other processes' load makes some bursts dearer, never cheaper. The parent rotates the
variants over interleaved rounds.
Gunicorn's worker, the kernel's sockets and wrk are left out: what remains is exactly what the
app-level switches change. The worker switch has no in-process form.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from bench import publish

REPO = Path(__file__).resolve().parents[1]
# The tricks kept for batches (docs/performance.md): what a standalone run switches off by default.
BATCH_SWITCHES = ("pending", "typed_dict")
# A round of `seconds` is cut in this many bursts; the cheapest per request is reported.
BURSTS = 25
RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40}


def body(rides: int) -> bytes:
    """One ride as a JSON object, or a batch of `rides` as the serving benchmark sends it."""
    if rides == 1:
        return json.dumps(RIDE).encode()
    from bench.serving import batch_body

    return json.dumps(batch_body(rides)).encode()


def child(switch: str | None, result_fd: int, rides: int = 1) -> None:
    """Build the app, then answer each command (seconds to run) with CPU µs per request and the count."""
    sent = body(rides)
    if switch is None:
        from web_service_mlflow.predict import app
    elif switch == "empty":
        from bench.apps.empty import app
    else:
        from bench.apps.ablation import serve

        app = serve(*switch.split(","))
    base = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/predict", "SCRIPT_NAME": "", "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "9696", "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(sent)), "HTTP_HOST": "127.0.0.1:9696",
        "wsgi.url_scheme": "http", "wsgi.version": (1, 0), "wsgi.errors": sys.stderr,
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }  # fmt: skip
    statuses = []

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        statuses.append(status)

    def one() -> None:
        environ = dict(base)
        environ["wsgi.input"] = io.BytesIO(sent)
        body = app(environ, start_response)
        b"".join(body)
        getattr(body, "close", lambda: None)()

    with os.fdopen(result_fd, "w", buffering=1) as results:
        for line in sys.stdin:
            seconds, bursts = float(line), []
            statuses.clear()
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline or len(bursts) < 3:
                started, count = time.process_time(), 0
                while time.process_time() - started < seconds / BURSTS:
                    for _ in range(5):
                        one()
                    count += 5
                bursts.append((time.process_time() - started) / count * 1e6)
            ok = all(status.startswith("200") for status in statuses)
            # The cheapest burst: the cost of a request, with as little of the machine's other load as can be seen.
            results.write(json.dumps({"cpu_us": min(bursts), "bursts": len(bursts), "ok": ok}) + "\n")


@contextmanager
def started(switch: str | None, workdir: Path, rides: int) -> Iterator[tuple[subprocess.Popen, io.TextIOWrapper]]:
    read, write = os.pipe()
    label = switch or "shipped"
    label = label if len(label) < 40 else "together"
    metrics = workdir / f"metrics-{label}-{os.urandom(4).hex()}"
    metrics.mkdir()
    env = os.environ | {"PYTHONPATH": str(REPO), "PROMETHEUS_MULTIPROC_DIR": str(metrics),
                        "MODEL_CACHE_DIR": str(workdir / "cache")}  # fmt: skip
    command = [
        sys.executable,
        "-m",
        "bench.ablation_inprocess",
        "--child",
        switch or "shipped",
        "--result-fd",
        str(write),
        "--rides",
        str(rides),
    ]
    with (workdir / f"inprocess-{label}.log").open("a") as log:
        process = subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=log, stderr=log,
                                   pass_fds=(write,), text=True, cwd=REPO)  # fmt: skip
    os.close(write)
    results = os.fdopen(read)
    try:
        yield process, results
    finally:
        process.stdin.close()
        process.wait(timeout=60)
        results.close()


def measure(
    names: dict[str, str | None], workdir: Path, rounds: int, seconds: float, rides: int = 1
) -> dict[str, list[float]]:
    """Each variant's CPU µs per request of `rides` rides in each round: {variant name: [round 1, ...]}."""
    found: dict[str, list[float]] = {name: [] for name in names}
    with ExitStack() as stack:
        children = {name: stack.enter_context(started(switch, workdir, rides)) for name, switch in names.items()}
        order = list(names)
        for name in order:  # warm: the first requests fill caches
            _run(children[name], min(seconds, 0.5), name)
        for round_ in range(rounds):
            for name in order[round_ % len(order) :] + order[: round_ % len(order)]:
                found[name].append(_run(children[name], seconds, name))
    return found


def _run(child_: tuple[subprocess.Popen, io.TextIOWrapper], seconds: float, name: str) -> float:
    process, results = child_
    process.stdin.write(f"{seconds}\n")
    process.stdin.flush()
    line = results.readline()
    if not line:
        raise RuntimeError(f"{name}: the in-process child exited ({process.poll()}); see its log")
    answer = json.loads(line)
    if not answer["ok"]:
        raise RuntimeError(f"{name}: a request was not answered 200 in-process")
    return answer["cpu_us"]


def batch_table(found: dict[str, list[float]], rides: int, rounds: int, seconds: float) -> str:
    """The standalone run's report: each variant's app CPU per request of `rides` rides, paired with as shipped's."""
    shipped = found["as shipped"]
    rows = []
    for name, values in found.items():
        median = statistics.median(values)
        paired = sorted(value / base for value, base in zip(values, shipped, strict=True))
        added = "" if name == "as shipped" else f"+{median - statistics.median(shipped):,.0f} µs"
        ratio = "" if name == "as shipped" else f"{paired[0]:.2f}-{paired[-1]:.2f} ({statistics.median(paired):.2f})"
        rows.append(f"| {name} | {median:,.0f} µs | {ratio} | {added} |")
    return (
        f"# Ablation, in-process: a batch of {rides:,} rides per request (2 cores)\n\n"
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `python -m bench.ablation_inprocess --rides {rides}`. "
        f"The app built as the Gunicorn master builds it, called directly with POST /predict of {rides:,} rides "
        f"(bench/serving.py's batch); the process's CPU per request in the cheapest of {BURSTS} bursts per round, "
        f"{rounds} interleaved rounds of {seconds:g} s with the order rotated; medians. bench/ablation.py measures "
        "one ride per request; these tricks are kept for what they save on batches.\n\n"
        "| trick off | the app's CPU per request | paired rounds: over as shipped's, lowest-highest (median) "
        "| app CPU added with the trick off |\n|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help="run as the child for these switches, comma-separated ('shipped': none)")
    parser.add_argument("--result-fd", type=int)
    parser.add_argument("--rides", type=int, default=1, help="rides per request")
    parser.add_argument("--switches", nargs="+", default=list(BATCH_SWITCHES),
                        help="standalone: the tricks to switch off, one variant each")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=9, help="standalone: interleaved rounds")
    parser.add_argument("--seconds", type=float, default=1.0, help="standalone: time per variant and round")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "ablation_batch.md")
    args = parser.parse_args(argv)
    if args.child:
        child(None if args.child == "shipped" else args.child, args.result_fd, args.rides)
        return 0
    names = {"as shipped": None} | {name: name for name in args.switches}
    with tempfile.TemporaryDirectory(prefix="bench-ablation-batch-") as tmp:
        found = measure(names, Path(tmp), args.rounds, args.seconds, args.rides)
    return publish(args.out, batch_table(found, args.rides, args.rounds, args.seconds))


if __name__ == "__main__":
    sys.exit(main())
