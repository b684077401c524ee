"""What the event-loop worker costs per request: server CPU time, beside Gunicorn's stock sync worker.

    pipenv run python -m bench.worker_cost            # about 2 minutes; writes bench/results/worker_cost.md

wrk's latency on a shared 2-core machine moves by a third from one run to the next. The CPU time a
server spends per request moves less, and it is what the worker's event loop could add: this
runs the same service with one worker on each worker class, and sends each the same requests from
one client (a new connection per request, as Gunicorn closes each one), in alternating rounds.
It reports the median CPU time of the whole server (master and worker) per request, and the
median wall time per request.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import servers

APP = "web_service_mlflow.predict:app"
RESULTS = Path(__file__).resolve().parent / "results" / "worker_cost.md"
BODY = json.dumps(servers.RIDE).encode()
REQUEST = b"POST /predict HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)
WORKERS = {
    "event-loop worker (web_service.server.worker.DrainingWorker)": {},
    "Gunicorn's stock sync worker": {"GUNICORN_CMD_ARGS": "--worker-class sync"},
}


def send(port: int, count: int) -> None:
    """`count` predictions, one connection each, each answer read to the end."""
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(REQUEST)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            if not answer.startswith(b"HTTP/1.1 200 "):
                raise RuntimeError(f"not a prediction: {answer[:200]!r}")


def measure(requests: int, rounds: int) -> dict[str, tuple[list[float], list[float]]]:
    """Per worker class: CPU µs per request and wall µs per request, one of each per round."""
    results: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in WORKERS}
    with tempfile.TemporaryDirectory() as folder:
        started = {name: servers.start(APP, Path(folder) / f"{number}.log", WEB_CONCURRENCY="1", **variables)
                   for number, (name, variables) in enumerate(WORKERS.items())}  # fmt: skip
        try:
            for _ in range(rounds):
                for name, server in started.items():
                    port = int(server.url.rsplit(":", 1)[1])
                    servers.wait_idle(server.process.pid)
                    cpu, wall = servers.cpu_seconds(server.process.pid), time.perf_counter()
                    send(port, requests)
                    cpu, wall = servers.cpu_seconds(server.process.pid) - cpu, time.perf_counter() - wall
                    results[name][0].append(cpu / requests * 1e6)
                    results[name][1].append(wall / requests * 1e6)
        finally:
            for server in started.values():
                server.stop()
    return results


def report(results: dict[str, tuple[list[float], list[float]]], requests: int, rounds: int) -> str:
    lines = [
        "# The worker's cost per request",
        "",
        f"One worker each, {rounds} alternating rounds of {requests:,} predictions from one client "
        "(a connection per request); medians of the rounds (every round in brackets).",
        "",
        "| worker | server CPU per request | wall time per request |",
        "|---|---|---|",
    ]
    for name, (cpu, wall) in results.items():
        lines.append(f"| {name} | {statistics.median(cpu):.0f} µs ({', '.join(f'{v:.0f}' for v in cpu)}) | "
                     f"{statistics.median(wall):.0f} µs ({', '.join(f'{v:.0f}' for v in wall)}) |")  # fmt: skip
    ours, stock = (statistics.median(cpu) for cpu, _ in results.values())
    lines += ["", f"The event-loop worker uses {ours / stock:.2f}x the stock worker's CPU per request.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000, help="predictions per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    text = report(measure(args.requests, args.rounds), args.requests, args.rounds)
    RESULTS.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
