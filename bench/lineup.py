"""What a shadow costs, and how a canary splits: the embedded model alone, with a shadow, with a canary.

    python -m bench.lineup          # `make bench-lineup`: about 3 minutes, writes bench/results/lineup.md

Three Gunicorn servers (2 workers each) serve the embedded default run: alone; with the same run
as SHADOW_RUN_ID (every request scored twice, the shadow's answer logged and measured, never
returned); and with it as CANARY_MODEL_URI=runs:/<run>/model at CANARY_PERCENT=10 (the same
model, answering as "<run>/model", so that its answers can be counted). The single-client p50 (wrk, one
connection) is measured in interleaved rounds, the order rotating, so that a shared machine's
slow spells hit all alike; the target is a shadow adding at most 10 % to it. The canary server
then answers 10,000 requests without a key (split by request ID) and 2,000 keys three times
each (X-Canary-Key): its share, and whether any key saw both models.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
from pathlib import Path

from bench import publish, servers, wrk
from web_service.lineup import CANARY_KEY_HEADER
from web_service_mlflow.layout import LOCAL_STORE
from web_service_mlflow.settings import default_run_id

RESULTS = Path(__file__).parent / "results" / "lineup.md"
APP = "web_service_mlflow.predict:app"
RIDE = servers.RIDE
CANARY_PERCENT = 10


def variants(run_id: str) -> dict[str, dict[str, str]]:
    return {
        "alone": {},
        "with a shadow": {"SHADOW_RUN_ID": run_id},
        # The same model named by its artifact path: its answers say "<run>/model", the primary's "<run>".
        f"with a canary at {CANARY_PERCENT} %": {
            "CANARY_MODEL_URI": f"runs:/{run_id}/model",
            "CANARY_PERCENT": str(CANARY_PERCENT),
        },
    }


def single_client_p50(running: dict[str, servers.Started], rounds: int, seconds: float) -> dict[str, list[float]]:
    """p50 in ms per round per server, one wrk connection, servers in rotating order."""
    names, found = list(running), {name: [] for name in running}
    for name in names:  # warm
        wrk.run(f"{running[name].url}/predict", RIDE, 1, 1, 1.0)
    for round_ in range(rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            load = wrk.run(f"{running[name].url}/predict", RIDE, 1, 1, seconds)
            assert load.failed == 0, (name, load)
            found[name].append(load.p50_ms)
            servers.wait_idle(running[name].process.pid)
    return found


def canary_split(url: str, requests: int = 10_000, keys: int = 2_000) -> dict[str, float | int]:
    """The canary's share of `requests` without a key, and of `keys` keys each sent three times."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)

    def version(headers: dict[str, str]) -> str:
        connection.request("POST", "/predict", json.dumps(RIDE), {"Content-Type": "application/json", **headers})
        response = connection.getresponse()
        return json.loads(response.read())["model_version"]

    answers = [version({}) for _ in range(requests)]
    by_key = [{version({CANARY_KEY_HEADER: f"customer-{k}"}) for _ in range(3)} for k in range(keys)]
    connection.close()
    canary = _canary_version(url)
    return {
        "requests": requests,
        "canary_answers": answers.count(canary),
        "canary_percent": round(100 * answers.count(canary) / requests, 2),
        "keys": keys,
        "keys_on_canary": sum(1 for seen in by_key if seen == {canary}),
        "keys_seeing_both": sum(1 for seen in by_key if len(seen) > 1),
    }


def _canary_version(url: str) -> str:
    import requests

    return requests.get(f"{url}/model", timeout=10).json()["canary"]["model_version"]


def table(p50: dict[str, list[float]], split: dict[str, float | int], rounds: int, seconds: float) -> str:
    alone = statistics.median(p50["alone"])
    lines = [
        "# Shadow and canary (bench/lineup.py)",
        "",
        f"The embedded default run, Gunicorn with 2 workers; single client (wrk, 1 connection), {rounds} interleaved "
        f"rounds of {seconds:g} s, median of the rounds' p50.",
        "",
        "| server | single-client p50 | vs alone | rounds' p50 (ms) |",
        "|---|---|---|---|",
    ]
    for name, values in p50.items():
        median = statistics.median(values)
        shown = ", ".join(f"{v:.3f}" for v in values)
        lines.append(f"| {name} | {median:.3f} ms | {median / alone:.2f}x | {shown} |")
    lines += [
        "",
        f"Target: a shadow adds at most 10 % to the single-client p50: "
        f"{statistics.median(p50['with a shadow']) / alone:.2f}x.",
        "",
        f"Canary at {CANARY_PERCENT} %: {split['canary_answers']:,} of {split['requests']:,} requests without a key "
        f"({split['canary_percent']:.2f} %); {split['keys_on_canary']:,} of {split['keys']:,} keys sent three times "
        f"each on the canary, {split['keys_seeing_both']} saw both models.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    run_id = default_run_id(LOCAL_STORE)
    running: dict[str, servers.Started] = {}
    with tempfile.TemporaryDirectory(prefix="bench-lineup-") as folder:
        try:
            for name, variables in variants(run_id).items():
                log = Path(folder) / f"{name.split()[-1]}.log"
                running[name] = servers.start(APP, log, WEB_CONCURRENCY="2", MODEL_CACHE_DIR=f"{folder}/cache",
                                              **variables)  # fmt: skip
            p50 = single_client_p50(running, args.rounds, args.seconds)
            split = canary_split(running[f"with a canary at {CANARY_PERCENT} %"].url)
        finally:
            for server in running.values():
                server.stop()
    print(f"p50: {p50}\nsplit: {split}", file=sys.stderr)
    publish(args.out, table(p50, split, args.rounds, args.seconds), {"p50_ms": p50, "canary": split})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
