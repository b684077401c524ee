"""The benchmark's own instruments: reading wrk's report, finding a server's processes, weighing them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench import wrk
from tests.processes import process_tree, total_pss_mb

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
