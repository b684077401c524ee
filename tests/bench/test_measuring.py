"""The benchmark's own instruments: reading wrk's report, finding a server's processes, weighing them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench import wrk
from harness.processes import process_tree, total_pss_mb

# wrk 4.1's report for `wrk -t2 -c32 -d10s --latency -s post.lua URL`, as printed.
REPORT = """Running 10s test @ http://127.0.0.1:40000/predict
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     7.57ms    1.21ms  22.05ms   84.31%
    Req/Sec     2.08k   120.55     2.35k    71.00%
  Latency Distribution
     50%  635.00us
     75%    7.95ms
     90%    8.79ms
     99%    1.20s
  41473 requests in 10.01s, 8.98MB read
  Socket errors: connect 0, read 3, write 1, timeout 2
  Non-2xx or 3xx responses: 5
Requests/sec:   4143.47
Transfer/sec:      0.90MB
"""


def test_wrk_report_is_read_with_its_units_and_failures():
    load = wrk.parse(REPORT)

    assert load == wrk.Load(requests_per_s=4143.47, p50_ms=0.635, p99_ms=1200.0, requests=41473, failed=11)


def test_a_report_without_errors_counts_no_failure():
    clean = "\n".join(line for line in REPORT.splitlines() if "errors" not in line and "Non-2xx" not in line)

    assert wrk.parse(clean).failed == 0


def test_a_process_tree_holds_the_children_and_their_memory_adds_up():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        tree = process_tree(os.getpid())
        alone = total_pss_mb(child.pid)
        together = total_pss_mb(os.getpid())
    finally:
        child.kill()
        child.wait()

    assert child.pid in tree and tree[0] == os.getpid()
    assert 1 < alone < together


@pytest.mark.parametrize("n_jobs", ["-1", "none"])
def test_the_benchmark_names_a_baseline_per_threading_choice(n_jobs):
    from bench.serving import APPS

    assert sum(env.get("BASELINE_N_JOBS") == n_jobs for _, env, _ in APPS.values()) == 1


def test_the_worker_cost_report_gives_medians_and_the_ratio_of_the_medians():
    from bench.worker_cost import WORKERS, report

    ours, stock = WORKERS
    text = report({ours: ([900.0, 600.0, 700.0], [1.0, 1.0, 1.0]), stock: ([500.0, 800.0, 700.0], [1.0] * 3)}, 10, 3)

    assert "| 700 µs (900, 600, 700) |" in text
    assert "uses 1.00x the stock worker's CPU per request" in text


def _result(server, rps, cpu_us=600.0, pss=97.0):
    from bench.serving import Result

    rounds = {
        "saturated_rps": [rps * 0.98, rps, rps * 1.02],
        "single_p50_ms": [0.6] * 3,
        "batch_p50_ms": [5.0] * 3,
        "cpu_us_per_request": [cpu_us * 0.99, cpu_us, cpu_us * 1.01],
    }
    return Result(server, 0.6, rps, 10.0, 30.0, 0.6, 1.3, 5.0, 10.0, pss, 0, cpu_us, rounds)


def test_the_service_choice_measures_live_drift_as_shipped_off_and_every_second():
    from bench.serving import APPS, DRIFT_EVERY_SECOND, DRIFT_OFF, LIVE_DRIFT_LOG, SERVICE

    service = {name: env for name, (app, env, choice) in APPS.items() if choice == "service"}

    assert {SERVICE, DRIFT_OFF, DRIFT_EVERY_SECOND} <= set(service)
    assert not any(key.startswith("DRIFT_") for key in service[SERVICE])  # as shipped: the defaults
    assert service[DRIFT_OFF] == {"DRIFT_MONITOR": "false"}
    assert service[DRIFT_EVERY_SECOND] == {"DRIFT_INTERVAL_SECONDS": "1"}
    assert set(LIVE_DRIFT_LOG) == {SERVICE, DRIFT_OFF, DRIFT_EVERY_SECOND}


def test_a_live_drift_case_whose_log_says_otherwise_is_not_measured(tmp_path):
    from bench.serving import DRIFT_EVERY_SECOND, DRIFT_OFF, SERVICE, check_live_drift

    on = "2026-11-26 01:35:56,319 [2813] [INFO] web_service.livedrift: live drift: each worker compares its last "
    log = tmp_path / "on.log"
    log.write_text(on + "10000 rides with the 76463-ride reference profile every 30 s\n")
    check_live_drift(SERVICE, log)
    with pytest.raises(RuntimeError, match="every 1 s"):
        check_live_drift(DRIFT_EVERY_SECOND, log)
    log.write_text("[WARNING] web_service.livedrift: live drift is off: model 97e7 has no reference profile\n")
    with pytest.raises(RuntimeError, match="no reference profile"):
        check_live_drift(SERVICE, log)
    with pytest.raises(RuntimeError, match="DRIFT_MONITOR=false"):
        check_live_drift(DRIFT_OFF, log)


def test_the_report_sets_live_drift_beside_live_drift_off_with_the_noise_of_the_rounds():
    import argparse

    from bench import serving

    results = {
        name: _result(name, rps)
        for name, rps in {
            serving.SERVICE: 2800.0, serving.DRIFT_OFF: 2800.0, serving.DRIFT_EVERY_SECOND: 2520.0,
            serving.STOCK_WORKER: 2200.0, serving.BASELINE: 75.0, serving.SINGLE_THREADED: 136.0,
            serving.EMPTY: 3100.0,
        }.items()
    }  # fmt: skip
    results[serving.DRIFT_EVERY_SECOND] = _result(serving.DRIFT_EVERY_SECOND, 2520.0, cpu_us=618.0, pss=101.0)
    text = serving.report(results, None, argparse.Namespace(workers=5, seconds=10, rounds=3))

    assert (
        "Live drift against live drift off (DRIFT_MONITOR=false): on every 30 s: 1.00x the throughput, "
        "1.00x the single-client p50, 1.00x the batch p50, 1.00x the server CPU per request at saturation "
        "(600 against 600 µs), +0 MB PSS; every second: 0.90x the throughput"
    ) in text
    assert "1.03x the server CPU per request at saturation (618 against 600 µs), +4 MB PSS" in text
    assert "off 0.98-1.02 x their median in req/s, 0.99-1.01 x their median in CPU per request" in text
    assert (
        "| live drift every second: throughput at least 0.95 x live drift off | "
        "0.90 x (off's rounds: 0.98-1.02 x their median) | **missed** |"
    ) in text
    assert (
        "| live drift every second: server CPU per request at saturation at most 1.05 x live drift off | "
        "1.03 x (618 against 600 µs; off's rounds: 0.99-1.01 x their median) | met |"
    ) in text
    assert f"| {serving.DRIFT_OFF} | 2,800 |" in text
