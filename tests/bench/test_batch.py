"""The batch benchmark's machinery: timing and weighing children, the yellow month, the whole run on small files."""

from __future__ import annotations

import json
import sys

import pyarrow.parquet as pq
import pytest

from bench import batch
from harness.trips import write_trips

pytestmark = pytest.mark.slow  # the batch benchmark's children, in subprocesses

LIMITS = batch.Limits(memory_gb=2.0, timeout_s=60.0)


@pytest.fixture
def greens(tmp_path):
    """Two small green months named as the TLC names them, in a folder of their own."""
    data = tmp_path / "data"
    data.mkdir()
    write_trips(data / batch.GREEN_MONTHS[0], rows=3000, seed=3)
    write_trips(data / batch.GREEN_MONTHS[1], rows=2000, seed=4)
    return data


def test_a_child_is_timed_from_start_to_exit_and_weighed_by_its_peak_rss(tmp_path):
    command = [sys.executable, "-c", "import time; b = b'x' * (300 << 20); time.sleep(0.2); print('done')"]

    run = batch.run_child(command, {}, LIMITS, tmp_path / "child")

    assert run.ok and run.last_line == "done"
    assert run.seconds >= 0.2
    assert 300 < run.peak_rss_mb < 600


def test_a_child_past_its_address_space_limit_is_reported_as_out_of_memory(tmp_path):
    command = [sys.executable, "-c", "b = b'x' * (3 << 30)"]

    run = batch.run_child(command, {}, LIMITS, tmp_path / "child")

    assert not run.ok
    assert LIMITS.describe_failure(run).startswith("died of MemoryError under the 2 GB address-space limit")


def test_a_child_past_its_timeout_is_killed_and_reported(tmp_path):
    limits = batch.Limits(memory_gb=2.0, timeout_s=0.5)

    run = batch.run_child([sys.executable, "-c", "import time; time.sleep(30)"], {}, limits, tmp_path / "child")

    assert run.timed_out and run.seconds < 10
    assert limits.describe_failure(run).startswith("killed at the 0 s timeout")


def test_the_yellow_month_repeats_green_rides_under_yellow_names_in_million_ride_row_groups(greens, tmp_path):
    target = tmp_path / batch.YELLOW_NAME

    rows = batch.build_yellow([greens / name for name in batch.GREEN_MONTHS], target, 12_000, row_group_rides=5000)

    parquet = pq.ParquetFile(target)
    assert rows == parquet.metadata.num_rows == 12_000
    assert [parquet.metadata.row_group(i).num_rows for i in range(parquet.metadata.num_row_groups)] == [
        5000,
        5000,
        2000,
    ]
    assert {"tpep_pickup_datetime", "tpep_dropoff_datetime", "airport_fee"} <= set(parquet.schema_arrow.names)
    assert not any(name.startswith("lpep_") for name in parquet.schema_arrow.names)
    yellow = parquet.read().to_pandas()
    green = pq.read_table(greens / batch.GREEN_MONTHS[0]).to_pandas()
    assert yellow["tpep_pickup_datetime"].is_monotonic_increasing
    assert yellow["tpep_pickup_datetime"].dt.month.unique().tolist() == [3]
    # The 5,000 green rides, then the same rides again: each keeps its zones, distance and duration.
    again = yellow.iloc[5000:8000].reset_index(drop=True)
    assert again["trip_distance"].tolist() == green["trip_distance"].tolist()
    durations = again["tpep_dropoff_datetime"] - again["tpep_pickup_datetime"]
    expected = (green["lpep_dropoff_datetime"] - green["lpep_pickup_datetime"]).dt.floor("us")  # microseconds, as TLC
    assert (durations == expected).all()


def test_without_the_green_months_the_benchmark_says_so_in_one_line(tmp_path, capsys):
    status = batch.main(["--data", str(tmp_path), "--out", str(tmp_path / "batch.md")])

    error = capsys.readouterr().err
    assert status == 1
    assert error.startswith("cannot benchmark: no ") and error.count("\n") == 1
    assert not (tmp_path / "batch.md").exists()


def test_a_small_run_times_both_sides_and_finds_their_predictions_equal(greens, tmp_path, monkeypatch):
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "model-cache"))
    out = tmp_path / "results" / "batch.md"
    argv = ["--data", str(greens), "--reps", "1", "--warmups", "0", "--yellow-rides", "8000"]

    status = batch.main([*argv, "--workdir", str(tmp_path / "work"), "--out", str(out)])

    text, results = out.read_text(), json.loads(out.with_suffix(".json").read_text())
    assert status == 0
    assert "| green 2021-01 (3,000 rides) |" in text and "| yellow 2021-03, built (8,000 rides) |" in text
    assert text.count("max abs difference 0 (equal)") == 2
    assert "cores, noisy: ratios hold" in text
    green, yellow = results["rows"]
    assert green["agreement"]["compared"] == 3000 and yellow["agreement"]["compared"] == 8000
    assert all(run["peak_rss_mb"] > 50 for row in results["rows"] for side in ("ours", "course") for run in row[side])
    assert (tmp_path / "work" / batch.YELLOW_NAME).is_file()


def test_a_course_run_that_did_not_finish_is_reported_and_not_compared():
    run = batch.Run(seconds=1.0, cpu_seconds=0.9, peak_rss_mb=200.0, returncode=0, timed_out=False,
                    last_line="scored 10 rides", stderr_tail="")  # fmt: skip
    green = batch.Row("green 2021-01", 10, [run], [run], batch.Agreement(10, 0, 0, 0.0))
    yellow = batch.Row("yellow 2021-03, built", 100, [run], [], None, "killed at the 5 s timeout")
    args = batch.parse_args(["--reps", "1"])

    text = batch.report([green, yellow], args, "today", "python -m bench.batch", (0.5, 0.7))

    assert "| yellow 2021-03, built (100 rides) | 1.00 | did not finish: killed at the 5 s timeout | - |" in text
    assert "yellow 2021-03, built: not compared (the course style did not finish)." in text
    assert "green 2021-01: 10 rides scored by both, max abs difference 0 (equal)" in text
