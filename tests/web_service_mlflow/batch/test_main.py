"""The command: bad input ends in one line before the model loads; the model is chosen as the service chooses it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.processes import as_user
from tests.conftest import REPO
from tests.privileges import NOBODY
from tests.web_service_mlflow.batch.conftest import DEFAULT_RUN, batch_command, listing, tlc_table, write_tlc
from web_service_mlflow.batch.__main__ import main, model_environment, parse_args
from web_service_mlflow.commands import run_command
from web_service_mlflow.layout import LOCAL_STORE
from web_service_mlflow.loader import load_from_env

# slow: the batch command, in subprocesses
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("model_environment")]

UNKNOWN_RUN = "0123456789abcdef0123456789abcdef"


def drop(table: pa.Table, name: str) -> pa.Table:
    return table.drop_columns([name])


def text_file(path: Path) -> Path:
    path.write_text("VendorID,PULocationID\n1,10\n")
    return path


def table_file(change):
    def make(path: Path) -> Path:
        pq.write_table(change(tlc_table(20)), path)
        return path

    return make


def folder(path: Path) -> Path:
    path.mkdir()
    return path


GREEN = "green_tripdata_2021-01.parquet"
# name: (file name, how to make it (None: leave it missing), the start of the message after "cannot score: <path>: ")
BAD_INPUTS = {
    "missing": (GREEN, None, "no such file"),
    "not parquet": (GREEN, text_file, "not a parquet file ("),
    "no trip_distance": (GREEN, table_file(lambda t: drop(t, "trip_distance")),
                         "no column trip_distance; is this TLC trip data?"),
    "zones as strings": (GREEN, table_file(lambda t: t.set_column(3, "PULocationID", t.column(3).cast(pa.string()))),
                         "column PULocationID holds string, expected numbers"),
    "no pickup time": (GREEN, table_file(lambda t: drop(t, "lpep_pickup_datetime")),
                       "no pickup time column (lpep_pickup_datetime for green cabs, tpep_pickup_datetime for yellow, "
                       "or pickup_datetime); is this TLC trip data?"),
    "pickup time as text": (GREEN, table_file(lambda t: t.set_column(1, "lpep_pickup_datetime",
                                                                       t.column(1).cast(pa.string()))),
                            "column lpep_pickup_datetime holds string, expected timestamps"),
    "a folder": (GREEN, folder, "is a folder; name the parquet files in it"),
    "no month in the name": ("trips.parquet", table_file(lambda t: t), "cannot tell its month for the ride ids"),
}  # fmt: skip


def always_tuple(says: str | tuple[str, ...]) -> tuple[str, ...]:
    return says if isinstance(says, tuple) else (says,)


def score_failing(capsys, *argv: str | Path) -> str:
    """Run the command as __main__ does; its exit code must be 1 and its stderr one line, returned."""
    assert run_command(lambda: main([str(arg) for arg in argv]), "cannot score") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_ends_in_one_line_naming_the_file_and_the_problem(tmp_path, capsys, case):
    name, make, says = BAD_INPUTS[case]
    path = tmp_path / "in" / name
    path.parent.mkdir()
    if make:
        make(path)
    good = write_tlc(tmp_path / "in" / "green_tripdata_2021-02.parquet", rows=20)
    (tmp_path / "out").mkdir()

    # The bad file second: every input is checked before anything is written or loaded.
    line = score_failing(capsys, good, path, "--output", tmp_path / "out" / "scored")

    assert line.startswith(tuple(f"cannot score: {path}: {start}" for start in always_tuple(says))), line
    assert listing(tmp_path / "out") == []


def test_an_unreadable_file_ends_in_one_line(tmp_path):
    # Root reads a file whatever its mode: as root, the command runs as nobody, with no capabilities.
    folder = Path(tempfile.mkdtemp(prefix="unreadable-", dir="/tmp"))
    try:
        folder.chmod(0o777)
        path = write_tlc(folder / GREEN, rows=20)
        path.chmod(0)
        user = NOBODY if os.geteuid() == 0 else None
        done = subprocess.run(
            [*as_user(user), sys.executable, "-m", "web_service_mlflow.batch", str(path),
             "--output", str(folder / "scored.parquet")],
            cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120,
            check=False,
        )  # fmt: skip
    finally:
        shutil.rmtree(folder)

    assert done.returncode == 1, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"cannot score: {path}: cannot read it (") and line.endswith("Permission denied)")


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--output", "{tmp}/nowhere/scored.parquet"],
         "{tmp}/nowhere/scored.parquet: the folder {tmp}/nowhere does not exist"),
        (["--output", "{tmp}/scored.parquet", "--rejects", "{tmp}/nowhere/r.parquet"],
         "{tmp}/nowhere/r.parquet: the folder {tmp}/nowhere does not exist"),
        (["--output", "{tmp}/scored.parquet", "--period", "2021-13"],
         "--period must be YYYY-MM, like 2021-01; got '2021-13'"),
        (["--output", "{tmp}/scored.parquet", "--run-id", "latest"],
         "RUN_ID must be an MLflow run ID (32 lowercase hex digits), got 'latest'"),
    ],
)  # fmt: skip
def test_a_bad_option_ends_in_one_line_and_writes_nothing(tmp_path, capsys, argv, says):
    source = write_tlc(tmp_path / GREEN, rows=20)

    line = score_failing(capsys, source, *(arg.format(tmp=tmp_path) for arg in argv))

    assert line == f"cannot score: {says.format(tmp=tmp_path)}"
    assert listing(tmp_path) == [GREEN]


@pytest.mark.parametrize("case", ["missing", "not parquet", "a folder"])
def test_the_command_exits_1_with_one_line_and_no_traceback(tmp_path, case):
    name, make, says = BAD_INPUTS[case]
    path = tmp_path / name
    if make:
        make(path)

    done = batch_command(path, "--output", tmp_path / "scored.parquet")

    assert done.returncode == 1 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith(tuple(f"cannot score: {path}: {start}" for start in always_tuple(says)))


def test_an_unknown_run_id_ends_in_one_line_naming_run_and_store(tmp_path):
    source = write_tlc(tmp_path / GREEN, rows=20)

    done = batch_command(source, "--output", tmp_path / "scored.parquet", "--run-id", UNKNOWN_RUN)

    assert done.returncode == 1 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f"cannot score: local store {LOCAL_STORE}, run {UNKNOWN_RUN}: no model: nothing under [<experiment id>/]"
        f"{UNKNOWN_RUN}/artifacts/ and no MLflow 3 logged model of this run under [<experiment id>/]models/; "
        "check RUN_ID and MODEL_ARTIFACT_ROOT"
    ]
    assert listing(tmp_path) == [GREEN]


# --- which model -----------------------------------------------------------------------------------


def environment_for(*options: str, **environ: str) -> dict[str, str]:
    return model_environment(parse_args(["in.parquet", "--output", "out.parquet", *options]), environ)


def test_run_id_option_replaces_run_id_and_model_uri_of_the_environment():
    environ = {"RUN_ID": "a" * 32, "MODEL_URI": "models:/taxi@production", "MLFLOW_TRACKING_URI": "http://mlflow"}

    chosen = model_environment(parse_args(["in.parquet", "--output", "o", "--run-id", "b" * 32]), environ)

    assert chosen == {"RUN_ID": "b" * 32, "MLFLOW_TRACKING_URI": "http://mlflow"}
    assert environ["RUN_ID"] == "a" * 32  # the caller's environment stays as it was


def test_model_uri_option_replaces_run_id_and_model_uri_of_the_environment():
    chosen = environment_for("--model-uri", "models:/taxi/3", RUN_ID="a" * 32, MODEL_ARTIFACT_ROOT="s3://b/1")

    assert chosen == {"MODEL_URI": "models:/taxi/3", "MODEL_ARTIFACT_ROOT": "s3://b/1"}


def test_without_a_model_option_the_environment_chooses():
    assert environment_for(RUN_ID="a" * 32, MODEL_URI="x") == {"RUN_ID": "a" * 32, "MODEL_URI": "x"}


def test_run_id_and_model_uri_options_together_are_refused(capsys):
    with pytest.raises(SystemExit) as refused:
        parse_args(["in.parquet", "--output", "o", "--run-id", "a" * 32, "--model-uri", "runs:/x/model"])

    assert refused.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, trained_run) -> tuple[Path, str]:
    """(a folder store holding the embedded default run and a run trained by the tests, that run's ID)."""
    store = tmp_path_factory.mktemp("store")
    for root, run_id in ((LOCAL_STORE, DEFAULT_RUN), (trained_run.store, trained_run.run_id)):
        run = next(root.glob(f"*/{run_id}"))
        shutil.copytree(run, store / run.parent.name / run_id)
    return store, trained_run.run_id


@pytest.fixture
def trips(tmp_path) -> Path:
    return write_tlc(tmp_path / GREEN, rows=400, seed=6)


def model_versions(path: Path) -> set[str]:
    return set(pq.read_table(path, columns=["model_version"]).column(0).to_pylist())


def test_run_id_option_overrides_run_id_in_the_environment(tmp_path, score, monkeypatch, two_runs, trips):
    store, trained = two_runs
    monkeypatch.setenv("MODEL_ARTIFACT_ROOT", str(store))
    monkeypatch.setenv("RUN_ID", DEFAULT_RUN)

    score(trips, "--output", tmp_path / "scored.parquet", "--run-id", trained)

    assert model_versions(tmp_path / "scored.parquet") == {trained}


def test_model_uri_option_overrides_run_id_in_the_environment(tmp_path, score, monkeypatch, two_runs, trips):
    store, trained = two_runs
    monkeypatch.setenv("MODEL_ARTIFACT_ROOT", str(store))
    monkeypatch.setenv("RUN_ID", DEFAULT_RUN)

    score(trips, "--output", tmp_path / "scored.parquet", "--model-uri", f"runs:/{trained}/model")

    # As POST /predict says it: the run, and the artifact path that named the model.
    assert model_versions(tmp_path / "scored.parquet") == {f"{trained}/model"}


def test_run_id_option_overrides_model_uri_in_the_environment(tmp_path, score, monkeypatch, two_runs, trips):
    store, trained = two_runs
    monkeypatch.setenv("MODEL_ARTIFACT_ROOT", str(store))
    monkeypatch.setenv("MODEL_URI", f"runs:/{trained}/model")

    score(trips, "--output", tmp_path / "by-environment.parquet")
    score(trips, "--output", tmp_path / "by-option.parquet", "--run-id", DEFAULT_RUN)

    assert model_versions(tmp_path / "by-environment.parquet") == {f"{trained}/model"}
    assert model_versions(tmp_path / "by-option.parquet") == {DEFAULT_RUN}


def test_a_rollback_scores_with_the_previous_run_and_says_so_in_every_row(tmp_path, score, monkeypatch, two_runs,
                                                                          trips, default_predictor):  # fmt: skip
    store, trained = two_runs
    monkeypatch.setenv("MODEL_ARTIFACT_ROOT", str(store))
    monkeypatch.setenv("RUN_ID", trained)  # production serves the new run
    score(trips, "--output", tmp_path / "new.parquet")

    score(trips, "--output", tmp_path / "previous.parquet", "--run-id", DEFAULT_RUN)

    new, previous = (pd.read_parquet(tmp_path / name) for name in ("new.parquet", "previous.parquet"))
    assert set(new["model_version"]) == {trained} and set(previous["model_version"]) == {DEFAULT_RUN}
    assert list(new["ride_id"]) == list(previous["ride_id"])
    assert not np.array_equal(new["predicted_duration"], previous["predicted_duration"])
    embedded = default_predictor.predict_columns(*(previous[name].to_numpy() for name in
                                                   ("PULocationID", "DOLocationID", "trip_distance")))  # fmt: skip
    assert np.array_equal(previous["predicted_duration"].to_numpy().view(np.uint64), embedded.view(np.uint64))
    trained_predictor = load_from_env({"RUN_ID": trained, "MODEL_ARTIFACT_ROOT": str(store),
                                       "MODEL_CACHE_DIR": os.environ["MODEL_CACHE_DIR"]})[1]  # fmt: skip
    assert trained_predictor.model_version == trained
    assert list(new["predicted_duration"]) == trained_predictor.predict(new.to_dict("records"))
