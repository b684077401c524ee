"""The report command as a scheduler runs it: a real process, its exit code, its files and its one-line refusals.

Every command of this module runs once, all at the same time (`reports`, `refusals`), and the
tests read what they left: a process mostly waits on its imports, and 20 of them in a row would
take most of a minute.
"""

from __future__ import annotations

from functools import partial

import pytest

from tests.web_service_mlflow.monitor.conftest import DEFAULT_RUN, Data, Result, monitor, run_all
from web_service_mlflow.monitor.__main__ import UsageError, parse_args, thresholds

pytestmark = pytest.mark.slow  # the monitor's reports, from real-size profiles

UNKNOWN_RUN = "0123456789abcdef0123456789abcdef"
COLUMNS_CHECKED = [("trip_distance", "psi"), ("trip_distance", "ks"), ("PULocationID", "js"),
                   ("DOLocationID", "js"), ("predicted_duration", "psi"), ("predicted_duration", "ks")]  # fmt: skip


# --- the verdict --------------------------------------------------------------------------------


def test_same_distribution_exits_0_with_no_column_drifted(reports):
    result = reports["same"]
    assert result.code == 0, result.stderr
    report = result.report
    assert report["drift_detected"] is False and report["drifted_columns"] == []
    assert [(check["column"], check["method"]) for check in report["checks"]] == [*COLUMNS_CHECKED,
                                                                                  ("error", "rmse_ratio")]  # fmt: skip
    assert report["warnings"] == []


@pytest.mark.parametrize(("case", "column"), [("longer", "trip_distance"), ("moved", "PULocationID")])
def test_shifted_rides_exit_1_naming_the_drifted_column(reports, case, column):
    result = reports[case]
    assert result.code == 1, result.stderr
    report = result.report
    assert report["drift_detected"] is True
    assert column in report["drifted_columns"]
    drifted = [check for check in report["checks"] if check["column"] == column]
    assert drifted and all(check["drifted"] and check["statistic"] > check["threshold"] for check in drifted)
    assert f"drift detected in {', '.join(report['drifted_columns'])}" in result.stdout


def test_moved_pickups_show_in_the_top_moved_zones(reports):
    pickups = next(check for check in reports["moved"].report["checks"] if check["column"] == "PULocationID")
    moved = pickups["detail"]["top_moved"]
    assert moved[0]["current_share"] != moved[0]["reference_share"]
    assert {"zone", "reference_share", "current_share"} <= set(moved[0])
    dropoffs = next(check for check in reports["moved"].report["checks"] if check["column"] == "DOLocationID")
    assert not dropoffs["drifted"]


def test_stdout_has_a_line_per_check_the_verdict_and_the_report(reports):
    lines = reports["same"].stdout.strip().splitlines()
    assert len(lines) == len(COLUMNS_CHECKED) + 1 + 2
    assert lines[0].startswith("trip_distance") and lines[0].endswith("ok")
    assert lines[-2].startswith("no drift: ")
    assert lines[-1].startswith("report: ") and lines[-1].endswith("report.html (and report.json)")


def test_too_few_rides_give_no_verdict_and_a_note(reports):
    result = reports["run and file"]  # --min-rides 20000
    assert result.code == 0, result.stderr
    assert result.report["thresholds"]["min_rides"] == 20_000
    for check in result.report["checks"]:
        assert check["statistic"] is None and check["drifted"] is False
        assert "note" in check["detail"]


# --- report.json ----------------------------------------------------------------------------------


def test_report_json_has_every_field_typed(reports, data):
    report = reports["same"].report
    assert isinstance(report["drift_detected"], bool) and isinstance(report["drifted_columns"], list)
    assert report["reference"] | {"source": None} == {
        "kind": "trip data", "source": None, "rides": 12_000, "skipped": 0,
        "model_version": DEFAULT_RUN, "run_id": DEFAULT_RUN,
    }  # fmt: skip
    assert report["reference"]["source"] == str(data.reference)
    assert report["current"] == {"sources": [str(data.same)], "kinds": ["trip data"], "rides": 12_000,
                                 "skipped": 0, "model_versions": [DEFAULT_RUN]}  # fmt: skip
    assert report["model"]["model_version"] == DEFAULT_RUN and isinstance(report["model"]["source"], str)
    assert report["thresholds"] == {"psi": 0.03, "ks": 0.06, "js": 0.1, "rmse_ratio": 1.25, "min_rides": 5000}
    for check in report["checks"]:
        assert set(check) == {"column", "method", "statistic", "threshold", "drifted", "detail"}
        assert isinstance(check["statistic"], float) and isinstance(check["threshold"], float)
        assert isinstance(check["drifted"], bool) and check["detail"]["rides"] > 0
    assert isinstance(report["seconds"], float) and 0 < report["seconds"] < 120


def test_errors_and_error_over_time_when_actual_durations_exist(reports):
    report = reports["same"].report
    errors = report["errors"]
    assert set(errors) == {"rmse", "mae", "rides", "valid_rmse", "valid_mae"}
    assert 3 < errors["rmse"] < 5  # the generator's noise: 4 minutes
    assert errors["mae"] < errors["rmse"] and errors["rides"] == 12_000
    assert errors["valid_rmse"] == pytest.approx(6.7558, abs=1e-4)
    error = next(check for check in report["checks"] if check["column"] == "error")
    assert error["statistic"] == pytest.approx(errors["rmse"] / errors["valid_rmse"], rel=1e-5)
    days = report["error_over_time"]
    assert len(days) == 31 and days[0]["day"] == "2021-01-01"
    assert sum(day["rides"] for day in days) == errors["rides"]
    assert all(set(day) == {"day", "rides", "rmse", "mae"} and day["rmse"] > 0 for day in days)


# --- what the current rides can be ----------------------------------------------------------------


def test_a_prediction_log_is_read_without_errors_and_warns_of_its_other_model(reports, data):
    result = reports["log"]
    assert result.code == 0, result.stderr
    report = result.report
    assert report["current"]["kinds"] == ["prediction log"] and report["current"]["rides"] == 12_000
    assert report["current"]["skipped"] == 1  # the torn line
    assert report["errors"] is None and report["error_over_time"] == []
    assert "error" not in {check["column"] for check in report["checks"]}
    assert report["current"]["model_versions"] == ["0" * 32]
    (warning,) = report["warnings"]
    assert "0" * 32 in warning and DEFAULT_RUN in warning
    assert f"warning: {warning}" in result.stderr


def test_a_batch_output_made_by_the_batch_command_is_read_as_scored(reports):
    result = reports["batch output"]
    assert result.code == 0, result.stderr
    report = result.report
    assert report["current"]["kinds"] == ["batch output"] and report["current"]["rides"] == 12_000
    assert report["current"]["model_versions"] == [DEFAULT_RUN] and report["warnings"] == []
    assert len(report["error_over_time"]) == 31
    same = reports["same"].report  # the same rides, scored by the same model in this process or in batch
    assert [check["statistic"] for check in report["checks"]] == [check["statistic"] for check in same["checks"]]


def test_files_and_logs_mix_and_the_output_folder_is_created(reports):
    result = reports["mixed"]
    assert result.code == 0, result.stderr
    report = result.report
    assert report["current"]["kinds"] == ["trip data", "prediction log"]
    assert report["current"]["rides"] == 24_000
    assert report["errors"]["rides"] == 12_000  # only the file's rides have a drop-off time
    assert sorted(path.name for path in result.output.iterdir()) == ["report.html", "report.json"]  # no temp file


# --- the reference --------------------------------------------------------------------------------


def test_run_id_with_a_reference_file_uses_the_runs_model_and_the_files_profile(reports, data):
    result = reports["run and file"]
    assert result.code == 0, result.stderr
    reference = result.report["reference"]
    assert reference["kind"] == "trip data" and reference["run_id"] == DEFAULT_RUN
    assert reference["source"] == str(data.reference)


def test_run_id_alone_compares_with_the_runs_logged_profile(reports):
    result = reports["run profile"]
    assert result.code == 1, result.stderr
    report = result.report
    assert report["reference"]["kind"] == "run profile" and report["reference"]["rides"] == 12_000
    assert report["reference"]["profile"]["source"] == "reference.parquet"
    assert "trip_distance" in report["drifted_columns"]
    assert report["errors"]["valid_rmse"] == 6.7558


# --- refusals: exit 2, one line -------------------------------------------------------------------


@pytest.fixture(scope="module")
def refusals(tmp_path_factory, data: Data, stores, model_cache) -> dict[str, Result]:
    where = tmp_path_factory.mktemp("refusals")
    (where / "notes.txt").write_text("PULocationID,DOLocationID\n1,2\n")
    (where / "folder.parquet").mkdir()
    run = partial(monitor, model_cache)
    ref, out = ("--reference", data.reference), {"output": where / "out"}
    cur = ("--current", data.same)
    return run_all({
        "missing": partial(run, *ref, "--current", where / "missing.parquet", **out),
        "folder": partial(run, *ref, "--current", where / "folder.parquet", **out),
        "not parquet": partial(run, *ref, "--current", where / "notes.txt", **out),
        "missing log": partial(run, "--reference", where / "missing.jsonl", *cur, **out),
        "unwritable output": partial(run, *ref, *cur, output=data.reference / "report"),
        "negative threshold": partial(run, *ref, *cur, "--psi", "-0.1", **out),
        "no reference": partial(run, *cur, **out),
        "unknown run": partial(run, "--run-id", UNKNOWN_RUN, *cur, **out),
        "run without a profile": partial(run, "--run-id", DEFAULT_RUN, *cur, **out,
                                         MODEL_ARTIFACT_ROOT=str(stores["bare"])),
    })  # fmt: skip


REFUSALS = {
    "missing": "missing.parquet: no such file",
    "folder": "folder.parquet: is a folder; name the parquet files in it",
    "not parquet": "notes.txt: not a parquet file (",
    "missing log": "missing.jsonl: no such file",
    "unwritable output": "reference.parquet is a file, not a folder",
    "negative threshold": "--psi -0.1: must be a number above 0",
    "no reference": "give --reference FILE, or --run-id RUN_ID to compare with the run's own profile (see --help)",
    "unknown run": f"run {UNKNOWN_RUN}: no model",
    "run without a profile": f"run {DEFAULT_RUN} has no reference profile (reference/profile.json); give --reference "
    "with the run's training file, or give the run one with python -m web_service_mlflow.monitor.profile --run-id",
}


@pytest.mark.parametrize("case", REFUSALS)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(refusals, case):
    result = refusals[case]
    assert result.code == 2, result.stdout + result.stderr
    assert result.stderr.startswith("cannot report: ") and result.stderr.endswith("\n")
    assert result.stderr.count("\n") == 1, result.stderr  # one line, no traceback
    assert REFUSALS[case] in result.stderr
    assert result.stdout == ""
    assert not result.output.exists()


# The other refusals of flags, in this process: the same code as the command's, without its start-up.
@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--ks", "1.5"], "--ks 1.5: must be a number above 0 and at most 1"),
        (["--js", "0"], "--js 0: must be a number above 0 and at most 1"),
        (["--rmse-ratio", "nan"], "--rmse-ratio nan: must be a number above 0"),
        (["--psi", "inf"], "--psi inf: must be a number above 0"),
        (["--min-rides", "0"], "--min-rides 0: must be at least 1"),
    ],
)
def test_thresholds_that_could_never_or_always_fire_are_refused(flags, says):
    args = parse_args(["--reference", "jan.parquet", "--current", "feb.parquet", "--output", "out", *flags])
    with pytest.raises(UsageError) as refused:
        thresholds(args)
    assert str(refused.value) == says


def test_a_threshold_that_is_not_a_number_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as stopped:
        parse_args(["--reference", "jan.parquet", "--current", "feb.parquet", "--output", "out", "--js", "high"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err == "cannot report: argument --js: invalid float value: 'high' (see --help)\n"


def test_flags_override_the_default_thresholds_one_by_one():
    args = parse_args(["--run-id", DEFAULT_RUN, "--current", "f.parquet", "--output", "o", "--psi", "0.1",
                       "--min-rides", "100"])  # fmt: skip
    assert thresholds(args).psi == 0.1 and thresholds(args).min_rides == 100 and thresholds(args).ks == 0.06
