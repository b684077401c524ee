"""The app's own CPU per request, in-process, with each trick off: finer than wrk on a shared machine.

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
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# A round of `seconds` is cut in this many bursts; the cheapest per request is reported.
BURSTS = 25
BODY = json.dumps({"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40}).encode()


def child(switch: str | None, result_fd: int) -> None:
    """Build the app, then answer each command (seconds to run) with CPU µs per request and the count."""
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
        "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(BODY)), "HTTP_HOST": "127.0.0.1:9696",
        "wsgi.url_scheme": "http", "wsgi.version": (1, 0), "wsgi.errors": sys.stderr,
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }  # fmt: skip
    statuses = []

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        statuses.append(status)

    def one() -> None:
        environ = dict(base)
        environ["wsgi.input"] = io.BytesIO(BODY)
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
def started(switch: str | None, workdir: Path) -> Iterator[tuple[subprocess.Popen, io.TextIOWrapper]]:
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


def measure(names: dict[str, str | None], workdir: Path, rounds: int, seconds: float) -> dict[str, list[float]]:
    """Each variant's CPU µs per request in each round: {variant name: [round 1, ...]}."""
    found: dict[str, list[float]] = {name: [] for name in names}
    with ExitStack() as stack:
        children = {name: stack.enter_context(started(switch, workdir)) for name, switch in names.items()}
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", help="run as the child for these switches, comma-separated ('shipped': none)")
    parser.add_argument("--result-fd", type=int)
    args = parser.parse_args(argv)
    child(None if args.child == "shipped" else args.child, args.result_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
