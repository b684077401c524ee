"""The drift benchmark's machinery: the shifts, the splits, the report, a whole run on two small months."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench import drift as bench
from tests.web_service_mlflow.batch.conftest import tlc_table
from web_service import drift
from web_service.drift import Thresholds

pytestmark = pytest.mark.slow  # the drift benchmark and the monitor command

ZONES = np.arange(1, 266)
ZONE_SHARES = np.random.default_rng(7).permutation(1.0 / ZONES**1.1)  # skewed, as in the TLC months
ZONE_SHARES /= ZONE_SHARES.sum()


def small_month(path, rows: int, seed: int):
    """A TLC-typed green month with skewed zones and no drop-off times (so no error check)."""
    table = tlc_table(rows, seed=seed, dropoff=False)
    rng = np.random.default_rng(seed)
    for name in ("PULocationID", "DOLocationID"):
        zones = pa.array(rng.choice(ZONES, rows, p=ZONE_SHARES), pa.int64())
        table = table.set_column(table.schema.get_field_index(name), name, zones)
    pq.write_table(table, path)


@pytest.fixture(scope="module")
def greens(tmp_path_factory):
    """Two small green months named as the TLC names them, in a folder of their own."""
    data = tmp_path_factory.mktemp("data")
    small_month(data / bench.GREEN_MONTHS[0], 14_000, seed=1)
    small_month(data / bench.GREEN_MONTHS[1], 12_000, seed=2)
    return data


@pytest.fixture(autouse=True)
def model_cache(tmp_path_factory, monkeypatch):
    """The embedded default run, compiled once for the module's tests."""
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "drift-bench-model-cache"))


class Doubling:
    """A stand-in model: twice the distance plus a minute per pickup zone."""

    model_version = "doubling"

    def predict_columns(self, pickup, dropoff, distance):
        assert pickup.dtype == dropoff.dtype == np.int64
        return 2.0 * distance + pickup


def columns(rides: int = 30_000, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    pickup = rng.choice(ZONES, rides, p=ZONE_SHARES).astype(float)
    distance = rng.gamma(2.0, 1.5, rides).round(2)
    return {
        "PULocationID": pickup,
        "DOLocationID": rng.choice(ZONES, rides, p=ZONE_SHARES).astype(float),
        "trip_distance": distance,
        "predicted_duration": 2.0 * distance + pickup,
        "time": np.datetime64("2021-02-01", "us") + rng.integers(0, 28 * 86400, rides).astype("timedelta64[s]"),
    }


def test_longer_distances_are_rounded_to_the_hundredth_and_rescored():
    rides = columns()

    longer = bench.scaled_distances(rides, 1.3, Doubling())

    assert np.array_equal(longer["trip_distance"], (rides["trip_distance"] * 1.3).round(2))
    assert np.array_equal(longer["predicted_duration"], 2.0 * longer["trip_distance"] + rides["PULocationID"])
    assert np.array_equal(longer["PULocationID"], rides["PULocationID"])


def test_a_third_of_pickups_move_each_to_a_zone_other_than_its_own():
    rides = columns()

    moved = bench.moved_pickups(rides, 1 / 3, np.random.default_rng(0), Doubling())

    changed = moved["PULocationID"] != rides["PULocationID"]
    assert changed.mean() == pytest.approx(1 / 3, abs=0.01)
    assert set(np.unique(moved["PULocationID"])) <= set(ZONES.astype(float))
    assert len(np.unique(moved["PULocationID"][changed])) > 250  # spread over (nearly) every zone
    assert np.array_equal(moved["predicted_duration"], 2.0 * moved["trip_distance"] + moved["PULocationID"])
    assert np.array_equal(moved["DOLocationID"], rides["DOLocationID"])


def test_halves_split_the_rides_in_two_without_overlap():
    rides = columns(1001)
    rides["ride"] = np.arange(1001)

    first, second = bench.halves(rides, seed=3)

    assert (len(first["ride"]), len(second["ride"])) == (501, 500)
    assert sorted([*first["ride"], *second["ride"]]) == list(range(1001))


def test_live_windows_of_the_reference_itself_do_not_alarm_and_a_shift_alarms_in_each():
    rides = columns()
    reference = drift.build_profile(rides)
    longer = bench.scaled_distances(rides, 1.3, Doubling())

    args = (reference, rides, 10_000, 10, Thresholds(), 0)
    quiet = [bench.window_rate("same", *args), bench.window_rate("same", *args, consecutive=True)]
    loud = bench.window_rate("longer", reference, longer, 10_000, 10, Thresholds(), 0, consecutive=True)

    assert [(rate.alarms, rate.windows) for rate in quiet] == [(0, 10), (0, 10)]
    assert loud.alarms == 10 and loud.fired["trip_distance ks"] == 10 and loud.kind == "consecutive"


def test_the_noise_floor_gives_median_and_max_of_every_statistic_per_size():
    rides = columns()

    noise = bench.noise_floor(drift.build_profile(rides), rides, (500, 5000), 3, Thresholds(), seed=0)

    assert list(noise) == [500, 5000]
    assert set(noise[500]["statistics"]) == {f"{name} {method}" for name, method in bench.STATISTICS}
    for found in noise.values():
        assert found["draws"] == 3
        assert all(value["median"] <= value["max"] for value in found["statistics"].values())
    distance_ks = [noise[size]["statistics"]["trip_distance ks"]["median"] for size in (500, 5000)]
    assert distance_ks[0] > distance_ks[1] > 0  # fewer rides, more noise


def test_the_embedded_runs_validation_rmse_is_read_from_the_tracking_database():
    run_id = (bench.LOCAL_STORE / "default_run_id").read_text().strip()

    assert bench.validation_rmse(run_id) == pytest.approx(6.7558, abs=1e-4)
    assert bench.validation_rmse("0" * 32) is None


def test_with_no_command_runs_asked_for_its_timing_is_left_out_and_said_so(tmp_path):
    cli = bench.cli_runs(tmp_path / "jan.parquet", tmp_path / "feb.parquet", 0, tmp_path)

    assert cli == {"measured": False, "note": "not asked for (--cli-reps 0)"}
    assert bench.timing_lines({"build_profile_s": 0.01, "compare_s": 0.02, "read_and_score_s": 0.03}, cli, 5)[-1] == (
        "- The monitor's command end to end: not measured, not asked for (--cli-reps 0)."
    )


def test_a_false_alarm_is_reported_as_a_contradiction():
    months = bench.Comparison("February", 100, 100, {}, ["PULocationID js"])
    results = bench.Results(Thresholds(), {}, months, [], [], {}, [], {}, {})

    assert results.expectations()[0] == ("January against February is quiet (drift: PULocationID js)", False)


def test_without_the_green_months_the_benchmark_says_so_in_one_line(tmp_path, capsys):
    status = bench.main(["--data", str(tmp_path), "--out", str(tmp_path / "drift.md")])

    error = capsys.readouterr().err
    assert status == 1
    assert error.startswith("cannot benchmark: no ") and error.count("\n") == 1
    assert not (tmp_path / "drift.md").exists()


def test_a_small_run_reports_every_comparison_and_its_calibration_holds(greens, tmp_path, capsys):
    out = tmp_path / "results" / "drift.md"
    argv = ["--data", str(greens), "--windows", "4", "--window-rides", "6000", "--draws", "3",
            "--sizes", "1000,5000", "--reps", "1", "--cli-reps", "0", "--out", str(out)]  # fmt: skip

    status = bench.main(argv)

    text, results = out.read_text(), json.loads(out.with_suffix(".json").read_text())
    assert status == 0, capsys.readouterr().err
    assert (
        "Thresholds (the defaults of `web_service.drift.Thresholds`): PSI > 0.03, KS D > 0.06, JS distance > 0.1"
        in text
    )
    assert "| February | 13," in text and "| quiet |" in text
    assert text.count("| January halves, seed") == 5
    assert "February, distances x1.3" in text and "February, a third of pickups moved" in text
    assert "Why min_rides is 5,000: at 1,000 rides" in text
    assert "- The monitor's command end to end: not measured, not asked for (--cli-reps 0)." in text
    assert "make bench-drift" in text and "pipenv run python -m bench.drift --data" in text
    assert results["thresholds"] == {"psi": 0.03, "ks": 0.06, "js": 0.1, "rmse_ratio": 1.25, "min_rides": 5000}
    assert results["reference"]["rescored_max_abs_difference"] == 0.0
    shifts = {shift["label"]: set(shift["fired"]) for shift in results["shifts"]}
    assert {"trip_distance psi", "trip_distance ks"} <= shifts["February, distances x1.3"]
    assert shifts["February, a third of pickups moved"] == {"PULocationID js"}
    assert [window["alarms"] for window in results["windows"]] == [0, 4, 4, 0, 4, 4]
    assert all(expectation["held"] for expectation in results["expectations"])


def test_the_monitor_command_is_timed_from_start_to_exit(greens, tmp_path):
    january, february = (greens / name for name in bench.GREEN_MONTHS)

    cli = bench.cli_runs(january, february, 1, tmp_path)

    assert cli["measured"] and len(cli["seconds"]) == 1 and cli["seconds"][0] > 0
    assert cli["returncodes"] == [0], cli["stderr_tail"]
    assert bench.timing_lines({"build_profile_s": 0.01, "compare_s": 0.02, "read_and_score_s": 0.03}, cli, 1)[
        -1
    ].startswith("- `python -m web_service_mlflow.monitor --reference JAN --current FEB --output DIR`, end to end")


def test_parse_args_reads_sizes_with_or_without_underscores():
    assert bench.parse_args(["--sizes", "1_000,5000"]).sizes == (1000, 5000)
    assert isinstance(bench.parse_args([]), argparse.Namespace) and bench.parse_args([]).sizes == bench.SIZES
