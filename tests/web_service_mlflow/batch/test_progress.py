"""What a run tells: plain lines off a terminal, a bar on one, and a last summary line on stdout."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from collections import Counter

import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO
from tests.web_service_mlflow.batch.conftest import batch_command, expected_reasons, parse_summary, write_tlc
from web_service_mlflow.batch import progress
from web_service_mlflow.batch.progress import Progress, Totals

# slow: the batch command, in subprocesses
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("model_environment")]


def test_off_a_terminal_progress_is_a_plain_line_at_most_every_ten_seconds(monkeypatch):
    clock = iter([0.0, 4.0, 9.9, 10.5, 12.0, 21.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    stream = io.StringIO()
    shown = Progress(1000, stream=stream)

    for _ in range(5):
        shown.advance(100)
    shown.file_done("green_tripdata_2021-01.parquet", Totals(scored=480, reasons=Counter(trip_distance_missing=20)))

    assert stream.getvalue().splitlines() == [
        "300 of 1,000 rides (30%), 10.5 s",
        "500 of 1,000 rides (50%), 21.0 s",
        "green_tripdata_2021-01.parquet: 500 rides, 480 scored, 20 rejected",
    ]


def test_the_summary_counts_each_reason_in_order_and_the_rate():
    totals = Totals(files=2, scored=1_234_567, reasons=Counter(trip_distance_too_large=3, PULocationID_missing=1_000))

    assert totals.summary(2.0) == (
        "scored 1,234,567 rides, rejected 1,003 (PULocationID_missing 1,000, trip_distance_too_large 3), "
        "from 2 files in 2.00 s: 617,785 rides/s"
    )
    assert Totals(files=1, scored=5).summary(1.0) == "scored 5 rides, rejected 0, from 1 file in 1.00 s: 5 rides/s"


def test_a_run_off_a_terminal_prints_plain_lines_and_a_summary_matching_what_it_wrote(tmp_path):
    inputs = [
        write_tlc(tmp_path / f"green_tripdata_2021-0{i + 1}.parquet", rows=500 + 100 * i, seed=i) for i in range(2)
    ]
    reasons = Counter(r for path in inputs for r in expected_reasons(pq.read_table(path)) if r)

    done = batch_command(*inputs, "--output", tmp_path / "scored", "--rejects", tmp_path / "rejects")

    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines[-2:] == [
        f"{inputs[0]}: 500 rides, {500 - 14} scored, 14 rejected",
        f"{inputs[1]}: 600 rides, {600 - 17} scored, 17 rejected",
    ]
    summary = parse_summary(done.stdout.splitlines()[-1])
    assert (summary.files, summary.reasons, summary.rejected) == (2, reasons, 31)
    assert summary.scored == pq.read_table(tmp_path / "scored").num_rows == 1100 - 31
    assert summary.rejected == pq.read_table(tmp_path / "rejects").num_rows
    assert summary.rate > 0 and summary.seconds > 0


def test_a_run_on_a_terminal_draws_a_bar_and_still_ends_with_the_summary(tmp_path):
    source = write_tlc(tmp_path / "green_tripdata_2021-01.parquet", rows=500)
    controller, terminal = pty.openpty()
    command = [sys.executable, "-m", "web_service_mlflow.batch", str(source), "--output", str(tmp_path / "s.parquet")]
    with subprocess.Popen(command, cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                          stderr=terminal, text=True) as process:  # fmt: skip
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the command closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        stdout = process.stdout.read()
    os.close(controller)

    assert process.returncode == 0, shown
    text = shown.decode()
    assert f"\r[{'#' * 30}] 100% 500/500 rides " in text
    assert "\r\x1b[K" + f"{source}: 500 rides, 486 scored, 14 rejected" in text
    assert parse_summary(stdout.splitlines()[-1]).scored == 486 == pq.read_metadata(tmp_path / "s.parquet").num_rows
