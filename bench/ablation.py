"""The ablation benchmark: what each performance trick of the serving path buys, one trick off at a time.

    make bench-ablation              # or: pipenv run python -m bench.ablation
    pipenv run python -m bench.ablation --quick       # one round of 1-second loads: a smoke run

In one run, on the embedded default forest and the same Gunicorn settings as bench/serving.py
(gunicorn.conf.py with WEB_CONCURRENCY=5), it starts this service as shipped (twice: the second
copy measures the noise), the service with each trick off (bench/ablation_switches.py, one at a
time; the worker through Gunicorn's --worker-class, the others through Gunicorn's app argument,
`bench.apps.ablation:serve("name")`: no setting of the service), and the empty endpoint
(bench/apps/empty.py). Before measuring, each variant is checked: its answers to one ride, a batch
and /invocations equal the shipped service's; its log says the switch took effect (the worker
class, or the app's own account of the tricks off); /model names the engine it should; it writes
its request log. Then wrk loads them in interleaved rounds with the order rotated: saturated
(2 threads, 32 connections), then one client (1 connection), each server left to go idle before
the next. Medians of the rounds, the paired ratio to as shipped in each round, and the server's CPU
per request at saturation go to bench/results/ablation.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import requests

from bench import ablation_inprocess, servers, wrk
from bench.ablation_switches import SWITCHES
from bench.servers import RIDE

REPO = Path(__file__).resolve().parents[1]
SERVICE_APP = "web_service_mlflow.predict:app"
SHIPPED, AGAIN, EMPTY = "as shipped", "as shipped, a second copy (the noise)", "empty endpoint"
SHIPPED_WORKER = "web_service.server.worker.DrainingWorker"
# One more variant with these off at once: the two tricks under 3 % each for one ride, kept for
# what they save on batches (bench/results/ablation_batch.md).
TOGETHER = ("pending", "typed_dict")
COMPILED_ENGINE = "compiled tree_table"
# Checked on every variant: the same answers as shipped, to a ride, a batch (a zone as 14.0), /invocations.
BATCH = [RIDE, {"PULocationID": 14.0, "DOLocationID": 50, "trip_distance": 3.5},
         {"PULocationID": 264, "DOLocationID": 1, "trip_distance": 0.0}]  # fmt: skip
INVOCATION = {"dataframe_records": [RIDE, BATCH[1]]}


@dataclass(frozen=True)
class Variant:
    name: str
    app: str
    env: dict[str, str] = field(default_factory=dict)
    switches: tuple[str, ...] = ()  # the tricks it has off

    @property
    def switch(self) -> str | None:
        """The one trick it has off, if it has exactly one."""
        return self.switches[0] if len(self.switches) == 1 else None


def variants(names: list[str], together: list[str] | None = None) -> list[Variant]:
    """As shipped, its second copy, one variant per switch in `names`, `together` all off at once, the empty one."""
    found = [Variant(SHIPPED, SERVICE_APP), Variant(AGAIN, SERVICE_APP)]
    for name in names:
        switch = SWITCHES[name]
        if switch.gunicorn_args:
            found.append(Variant(name, SERVICE_APP, {"GUNICORN_CMD_ARGS": switch.gunicorn_args}, (name,)))
        else:
            found.append(Variant(name, f'bench.apps.ablation:serve("{name}")', {}, (name,)))
    if together:
        if any(SWITCHES[name].gunicorn_args for name in together):
            raise SystemExit("--together takes the app's switches only (not worker)")
        arguments = ", ".join(f'"{name}"' for name in together)
        found.append(Variant(f"together: {' + '.join(together)}", f"bench.apps.ablation:serve({arguments})", {},
                             tuple(together)))  # fmt: skip
    return [*found, Variant(EMPTY, "bench.apps.empty:app")]


@dataclass
class Rounds:
    """Each round's figures for one variant, in round order."""

    rps: list[float] = field(default_factory=list)
    single_p50_ms: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)  # server CPU per request at saturation
    app_us: list[float] = field(default_factory=list)  # the app's CPU per request, in-process
    failed: int = 0


def start(variant: Variant, workdir: Path, workers: int) -> servers.Started:
    label = variant.name.split(",")[0].replace(" ", "-")
    env = {"WEB_CONCURRENCY": str(workers), "MODEL_CACHE_DIR": str(workdir / "cache"), **variant.env}
    return servers.start(variant.app, workdir / f"{label}.log", **env)


def answers(url: str) -> dict[str, object]:
    """What a server answers to the checked requests, decoded."""
    found = {}
    for path, body in (("/predict", RIDE), ("/predict", BATCH), ("/invocations", INVOCATION)):
        answer = requests.post(f"{url}{path}", json=body, timeout=30)
        found[f"{path} {json.dumps(body)[:40]}"] = (answer.status_code, answer.json(), "X-Request-ID" in answer.headers)
    return found


def check(variant: Variant, server: servers.Started, expected: dict[str, object]) -> None:
    """Fail unless the variant answers as shipped and its switch (or none) took effect."""
    problems = []
    if variant.app != "bench.apps.empty:app":
        if (got := answers(server.url)) != expected:
            problems.append(f"answers differ from as shipped: {got} against {expected}")
        engine = requests.get(f"{server.url}/model", timeout=30).json()["engine"]["name"]
        wanted_engine = "scikit-learn" if "compiled" in variant.switches else COMPILED_ENGINE
        if engine != wanted_engine:
            problems.append(f"/model says engine {engine!r}, not {wanted_engine!r}")
        log = server.log.read_text()
        worker = "sync" if "worker" in variant.switches else SHIPPED_WORKER
        if f"Using worker: {worker}\n" not in log:
            problems.append(f"its log does not say 'Using worker: {worker}'")
        if variant.app.startswith("bench.apps.ablation"):
            said = f"ablation: tricks off in this app: {', '.join(n for n in SWITCHES if n in variant.switches)}\n"
            if said not in log:
                lines = [line for line in log.splitlines() if "ablation:" in line] or ["(no ablation line)"]
                problems.append(f"its log should say {said.strip()!r}, but says: {lines}")
        if '"route": "/predict", "status": 200' not in log:
            problems.append("no request log line for /predict")
    if problems:
        raise RuntimeError(f"{variant.name}: " + "; ".join(problems) + f" (log: {server.log})")


def measure(chosen: list[Variant], workdir: Path, args: argparse.Namespace) -> dict[str, Rounds]:
    running: dict[str, servers.Started] = {}
    try:
        expected: dict[str, object] = {}
        for variant in chosen:  # as shipped first: it fills the cache with the compiled form
            running[variant.name] = start(variant, workdir, args.workers)
            expected = expected or answers(running[variant.name].url)
            check(variant, running[variant.name], expected)
            print(f"{variant.name}: started and checked", file=sys.stderr)
        for variant in chosen:  # every worker warm before measuring
            wrk.run(f"{running[variant.name].url}/predict", RIDE, 2, 32, min(2.0, args.seconds))
            servers.wait_idle(running[variant.name].process.pid)
        results = {variant.name: Rounds() for variant in chosen}
        for round_ in range(args.rounds):
            for variant in chosen[round_ % len(chosen) :] + chosen[: round_ % len(chosen)]:  # rotate the order
                server, found = running[variant.name], results[variant.name]
                url, pid = f"{server.url}/predict", server.process.pid
                before = servers.cpu_seconds(pid)
                load = wrk.run(url, RIDE, 2, 32, args.seconds)
                found.cpu_us.append((servers.cpu_seconds(pid) - before) / max(load.requests, 1) * 1e6)
                found.rps.append(load.requests_per_s)
                servers.wait_idle(pid)  # what wrk left queued must not share the CPU with the next load
                single = wrk.run(url, RIDE, 1, 1, args.seconds)
                found.single_p50_ms.append(single.p50_ms)
                found.failed += load.failed + single.failed
                servers.wait_idle(pid)
            print(f"round {round_ + 1} of {args.rounds}: done", file=sys.stderr)
    finally:
        for server in running.values():
            server.stop()
    # The same variants in-process, the app alone (the worker has no in-process form).
    inprocess = {v.name: "empty" if v.name == EMPTY else ",".join(v.switches) or None
                 for v in chosen if "worker" not in v.switches}  # fmt: skip
    for name, values in ablation_inprocess.measure(inprocess, workdir, args.app_rounds, args.app_seconds).items():
        results[name].app_us = values
    print("in-process: done", file=sys.stderr)
    return results


def spread(values: list[float]) -> str:
    """The lowest and highest round against the median, in %."""
    median = statistics.median(values)
    return f"{(min(values) / median - 1) * 100:+.0f}/{(max(values) / median - 1) * 100:+.0f} %"


def paired(values: list[float], shipped: list[float]) -> list[float]:
    """Each round's value over as shipped's in the same round."""
    return [value / base for value, base in zip(values, shipped, strict=True)]


def table(results: dict[str, Rounds], chosen: list[Variant]) -> str:
    """Under wrk: throughput, single-client p50 and server CPU per request, against as shipped."""
    base = results[SHIPPED]
    rps0, p500, cpu0 = (statistics.median(v) for v in (base.rps, base.single_p50_ms, base.cpu_us))
    header = (
        "| trick off | req/s at saturation (spread) | throughput lost with the trick off | "
        "paired rounds: req/s over as shipped's, lowest-highest (median) | single-client p50 (spread) | "
        "p50 change | server CPU per request | CPU change | failed requests |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for variant in chosen:
        r, shipped = results[variant.name], variant.name == SHIPPED
        rps, p50, cpu = (statistics.median(v) for v in (r.rps, r.single_p50_ms, r.cpu_us))
        ratios = paired(r.rps, base.rps)
        lost = "" if shipped else f"{(1 - rps / rps0) * 100:+.1f} %"
        pairs = "" if shipped else f"{min(ratios):.2f}-{max(ratios):.2f} ({statistics.median(ratios):.2f})"
        p50_change = "" if shipped else f"{(p50 / p500 - 1) * 100:+.1f} %"
        cpu_change = "" if shipped else f"{(cpu / cpu0 - 1) * 100:+.1f} %"
        rows.append(
            f"| {variant.name} | {rps:,.0f} ({spread(r.rps)}) | {lost} | {pairs} | "
            f"{p50:.3f} ms ({spread(r.single_p50_ms)}) | {p50_change} | {cpu:.0f} µs | {cpu_change} | {r.failed} |"
        )
    return header + "\n".join(rows) + "\n"


def inprocess_table(results: dict[str, Rounds], chosen: list[Variant]) -> str:
    """In-process: the app's CPU per request, paired round by round with as shipped, and what it implies."""
    base = results[SHIPPED]
    app0, cpu0 = statistics.median(base.app_us), statistics.median(base.cpu_us)
    header = (
        "| trick off | the app's CPU per request (spread) | paired rounds: over as shipped's, lowest-highest "
        "(median) | app CPU added with the trick off | throughput lost, estimated |\n|---|---|---|---|---|\n"
    )
    rows = []
    for variant in chosen:
        r = results[variant.name]
        if not r.app_us:
            continue
        ratios = paired(r.app_us, base.app_us)
        added = (statistics.median(ratios) - 1) * app0
        estimate = added / (cpu0 + added) * 100
        columns = (
            ["", "", ""]
            if variant.name == SHIPPED
            else [
                f"{min(ratios):.2f}-{max(ratios):.2f} ({statistics.median(ratios):.2f})",
                f"{added:+.0f} µs",
                f"{estimate:+.1f} %",
            ]
        )
        rows.append(
            f"| {variant.name} | {statistics.median(r.app_us):.0f} µs ({spread(r.app_us)}) | "
            + " | ".join(columns)
            + " |"
        )
    return header + "\n".join(rows) + "\n"


def by_round(results: dict[str, Rounds], chosen: list[Variant]) -> str:
    """Every round's figures, in round order (each round's order of servers is rotated by one)."""
    header = (
        "| variant | req/s at saturation | single-client p50, ms | server CPU per request, µs | "
        "in-process, µs |\n|---|---|---|---|---|\n"
    )
    rows = [
        f"| {v.name} | {' '.join(f'{x:,.0f}' for x in r.rps)} | {' '.join(f'{x:.3f}' for x in r.single_p50_ms)} | "
        f"{' '.join(f'{x:.0f}' for x in r.cpu_us)} | {' '.join(f'{x:.0f}' for x in r.app_us) or '-'} |"
        for v, r in ((v, results[v.name]) for v in chosen)
    ]
    return header + "\n".join(rows) + "\n"


def what_is_off(chosen: list[Variant]) -> str:
    rows = [
        f"| {v.name} | {SWITCHES[v.switch].trick} | {SWITCHES[v.switch].off} | `{v.app}`"
        + (f" with `GUNICORN_CMD_ARGS={v.env['GUNICORN_CMD_ARGS']}`" if v.env else "")
        + " |"
        for v in chosen
        if v.switch
    ] + [f"| {v.name} | all of those at once | each one's plain implementation | `{v.app}` |" for v in chosen
         if len(v.switches) > 1]  # fmt: skip
    header = "| switch | the trick | off: the plain implementation | started as |\n|---|---|---|---|\n"
    return header + "\n".join(rows) + "\n"


def report(results: dict[str, Rounds], chosen: list[Variant], args: argparse.Namespace, command: str) -> str:
    return (
        f"# Ablation: what each trick of the serving path buys ({servers.cpu_count()} cores)\n\n"
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M')} UTC, `{command}`. {args.workers} workers "
        f"(gunicorn.conf.py, as bench/serving.py), the embedded forest, one ride per request; "
        f"wrk {args.seconds:g} s per load, {args.rounds} interleaved rounds with the order rotated, each round "
        "a saturated load (2 threads, 32 connections) then a single-client one (1 connection) per server. "
        "Medians of the rounds; (spread) is the lowest and highest round against that median. "
        '"Throughput lost with the trick off" is 1 - (median req/s off / median req/s as shipped): what the '
        "trick buys. The paired column divides each round by as shipped's in the same round. Server CPU per "
        "request is the master's, the workers' and their threads' CPU time over the requests answered at "
        "saturation. The second copy of as shipped measures the noise: a trick whose figures fall inside its "
        "row's cannot be told from nothing.\n\n"
        "Each variant was checked before it was measured: the same answers as shipped to a ride, a batch and "
        "/invocations; its log naming the switch that took effect (or the worker class); /model naming the "
        "engine; a request log line.\n\n" + table(results, chosen) + "\n## In-process: the app alone\n\n"
        "bench/ablation_inprocess.py: the WSGI app built as the Gunicorn master builds it, called directly with "
        "the same request; the process's CPU per request (its metrics-flush and live-drift threads included) "
        f"in the cheapest of 25 bursts per round, {args.app_rounds} interleaved rounds of {args.app_seconds:g} s "
        "with the order rotated. Gunicorn's worker, the kernel and wrk are left out, so that an app-level "
        "trick's cost shows on its own, finer than wrk can see it on a shared machine. \"Throughput lost, "
        "estimated\" is the app CPU added over as shipped's whole server CPU per request at saturation (the "
        "table above) plus that: what throughput loses if the server is CPU-bound; an estimate, not a "
        "measurement. The worker has no in-process form.\n\n"
        + inprocess_table(results, chosen)
        + "\n## What each switch turns off\n\n"
        + what_is_off(chosen)
        + "\n## Every round\n\n"
        + by_round(results, chosen)
    )


def main(argv: list[str] | None = None) -> int:
    parser = wrk.load_parser(__doc__, seconds=3, rounds=5)
    parser.add_argument("--app-seconds", type=float, default=0.6, help="in-process: time per variant and round")
    parser.add_argument("--app-rounds", type=int, default=15, help="in-process: interleaved rounds")
    parser.add_argument(
        "--together",
        nargs="*",
        choices=[name for name, s in SWITCHES.items() if not s.gunicorn_args],
        default=list(TOGETHER),
        help="also one variant with all these off at once (none: leave it out)",
    )
    parser.add_argument("--switches", nargs="+", choices=list(SWITCHES), default=list(SWITCHES),
                        help="the tricks to switch off, one variant each (default: all)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="one round of 1-second loads; writes no result")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "ablation.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds, args.app_seconds, args.app_rounds = 1, 1, 0.3, 2
    # Each variant sets what it needs; a DRIFT_* or GUNICORN_CMD_ARGS left in the shell would change them unseen.
    for key in [key for key in os.environ if key.startswith(("DRIFT_", "GUNICORN_CMD_ARGS"))]:
        print(f"ignoring {key}={os.environ.pop(key)}", file=sys.stderr)
    wrk.require_wrk()
    chosen = variants(args.switches, args.together)
    with tempfile.TemporaryDirectory(prefix="bench-ablation-") as tmp:
        results = measure(chosen, Path(tmp), args)
    command = "python -m bench.ablation " + shlex.join(argv if argv is not None else sys.argv[1:])
    text = report(results, chosen, args, command.strip())
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    sys.stdout.write(text)
    # The variants' failed requests are in the table (wrk's 2 s timeout, for scikit-learn under 32 connections).
    return 0 if results[SHIPPED].failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
