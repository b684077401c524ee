"""Outputs are written atomically: a failed or stopped run leaves the previous output, or nothing."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO
from tests.web_service_mlflow.batch.conftest import listing, write_tlc
from web_service.predictor import Predictor
from web_service_mlflow.batch import local, storage
from web_service_mlflow.batch.__main__ import main
from web_service_mlflow.batch.storage import OutputError, parquet_file

pytestmark = pytest.mark.usefixtures("model_environment")

BIG_ROWS = 2_000_000


@pytest.fixture
def folders(tmp_path) -> tuple[Path, Path]:
    """(inputs, outputs): two folders, so that a listing of the outputs' shows anything left behind."""
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    outputs.mkdir()
    return inputs, outputs


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones too) and its bytes."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def fail_on_second_call(monkeypatch, owner, name: str) -> None:
    original, calls = getattr(owner, name), []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the disk is on fire")
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, failing)


FAILURES = {
    "scoring a batch": lambda monkeypatch: fail_on_second_call(monkeypatch, local, "score_batch"),
    "the predictor": lambda monkeypatch: fail_on_second_call(monkeypatch, Predictor, "predict_columns"),
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
@pytest.mark.parametrize("inputs", [1, 2], ids=["file output", "folder output"])
def test_a_run_that_fails_midway_leaves_the_earlier_output_and_nothing_beside_it(folders, score, monkeypatch,
                                                                                 failure, inputs):  # fmt: skip
    source, out = folders
    paths = [write_tlc(source / f"green_tripdata_2021-0{i + 1}.parquet", rows=1000, seed=i) for i in range(inputs)]
    name = "scored.parquet" if inputs == 1 else "scored"
    argv = [*paths, "--output", out / name, "--rejects", out / f"rejects-{name}"]
    score(*argv)  # the earlier output
    before = snapshot(out)
    monkeypatch.setattr(local, "BATCH_ROWS", 300)
    FAILURES[failure](monkeypatch)

    with pytest.raises(Exception, match="the disk is on fire"):
        main([str(arg) for arg in argv])

    assert snapshot(out) == before
    assert listing(out) == sorted([name, f"rejects-{name}"])


@pytest.mark.parametrize("inputs", [1, 2], ids=["file output", "folder output"])
def test_a_first_run_that_fails_midway_leaves_no_output_at_all(folders, monkeypatch, inputs):
    source, out = folders
    paths = [write_tlc(source / f"green_tripdata_2021-0{i + 1}.parquet", rows=1000, seed=i) for i in range(inputs)]
    monkeypatch.setattr(local, "BATCH_ROWS", 300)
    fail_on_second_call(monkeypatch, local, "score_batch")

    with pytest.raises(Exception, match="the disk is on fire"):
        main([*map(str, paths), "--output", str(out / "scored"), "--rejects", str(out / "rejects")])

    assert listing(out) == []


def test_a_rerun_replaces_an_earlier_folder_output_whole(folders, score):
    source, out = folders
    paths = [write_tlc(source / f"green_tripdata_2021-0{i + 1}.parquet", rows=300, seed=i) for i in range(3)]
    score(*paths, "--output", out / "scored")

    summary = score(*paths[1:], "--output", out / "scored")

    assert listing(out) == ["scored"]
    assert listing(out / "scored") == ["_SUCCESS", "part-00000-green_tripdata_2021-02.parquet",
                                       "part-00001-green_tripdata_2021-03.parquet"]  # fmt: skip
    assert pq.read_table(out / "scored").num_rows == summary.scored


def test_a_rerun_replaces_an_earlier_file_output(folders, score):
    source, out = folders
    score(write_tlc(source / "green_tripdata_2021-01.parquet", rows=300), "--output", out / "scored.parquet")

    summary = score(write_tlc(source / "green_tripdata_2021-02.parquet", rows=200), "--output", out / "scored.parquet")

    assert listing(out) == ["scored.parquet"]
    assert pq.read_table(out / "scored.parquet").column("ride_id")[0].as_py() == "2021/02_1"  # row 0 is refused
    assert pq.read_metadata(out / "scored.parquet").num_rows == summary.scored


def test_an_empty_folder_is_a_folder_output(folders, score):
    source, out = folders
    (out / "scored").mkdir()
    paths = [write_tlc(source / f"green_tripdata_2021-0{i + 1}.parquet", rows=100, seed=i) for i in range(2)]

    score(*paths, "--output", out / "scored")

    assert (out / "scored" / "_SUCCESS").exists() and listing(out) == ["scored"]


def test_a_folder_output_refuses_a_folder_it_did_not_write(folders):
    source, out = folders
    paths = [write_tlc(source / f"green_tripdata_2021-0{i + 1}.parquet", rows=100, seed=i) for i in range(2)]
    (out / "mine").mkdir()
    (out / "mine" / "thesis.tex").write_text("years of work")

    with pytest.raises(OutputError) as refused:
        main([*map(str, paths), "--output", str(out / "mine")])

    assert str(refused.value) == (f"{out / 'mine'}: a folder that this command did not write (no _SUCCESS); "
                                  "name a new or empty folder")  # fmt: skip
    assert snapshot(out) == {"mine/thesis.tex": b"years of work"}


def test_a_file_output_refuses_a_folder_and_a_folder_output_a_file(folders):
    source, out = folders
    one = write_tlc(source / "green_tripdata_2021-01.parquet", rows=100)
    (out / "folder.parquet").mkdir()
    (out / "file").write_bytes(b"not mine")

    with pytest.raises(OutputError, match="folder.parquet: is a folder; one input on the local engine writes one file"):
        main([str(one), "--output", str(out / "folder.parquet")])
    with pytest.raises(OutputError, match="file: is a file, but several inputs .or Spark. write a folder"):
        main([str(one), str(one), "--output", str(out / "file")])

    assert listing(out) == ["file", "folder.parquet"] and listing(out / "folder.parquet") == []
    assert (out / "file").read_bytes() == b"not mine"


def test_an_output_named_with_a_trailing_slash_is_never_written_as_a_file(folders):
    # DOUBTFUL: Path() drops the slash (storage.py:163, 182), so with one input `--output scores/`
    # writes a parquet file named "scores". The slash says folder: write one there, or refuse.
    source, out = folders
    trips = write_tlc(source / "green_tripdata_2021-01.parquet", rows=100)

    with contextlib.suppress(OutputError):  # refusing is a fix too
        main([str(trips), "--output", f"{out / 'scores'}/"])

    assert not (out / "scores").is_file()


@pytest.mark.parametrize("clash", ["rejects", "input"])
def test_an_output_that_would_replace_the_rejects_or_an_input_is_refused(folders, clash):
    # BUG: plan() checks each destination alone. --rejects naming the --output silently replaces the
    # scored rides with the rejects; --output naming an input replaces the trip data with scores.
    source, out = folders
    trips = write_tlc(source / "green_tripdata_2021-01.parquet", rows=300)
    before = trips.read_bytes()
    target = out / "scored.parquet" if clash == "rejects" else trips

    with pytest.raises(OutputError):
        main([str(trips), "--output", str(target), "--rejects", str(out / "scored.parquet")])

    assert trips.read_bytes() == before and listing(out) == []


def test_a_commit_that_fails_between_its_two_renames_keeps_the_earlier_folder_output(folders, score, monkeypatch):
    # BUG: Destination.commit (storage.py:206-210) moves the earlier output aside before moving the
    # new one in; when the second rename fails, abort() removes the new one and nothing puts the
    # earlier one back: the output is gone, hidden as .scored.<token>.old.
    source, out = folders
    paths = [write_tlc(source / f"green_tripdata_2021-0{i + 1}.parquet", rows=100, seed=i) for i in range(2)]
    score(*paths, "--output", out / "scored")
    before = snapshot(out)
    replace = os.replace

    def failing_replace(src, dst):
        if Path(src).name.endswith(".tmp") and Path(dst) == out / "scored":
            raise OSError(28, "No space left on device")
        replace(src, dst)

    monkeypatch.setattr(storage.os, "replace", failing_replace)

    with pytest.raises(OSError, match="No space left"):
        main([*map(str, paths), "--output", str(out / "scored")])

    assert listing(out) == ["scored"]
    assert snapshot(out) == before


def test_an_error_while_a_file_is_open_is_not_blamed_on_the_file(folders):
    # BUG: parquet_file (storage.py:115-133) wraps the body of its `with` too, so that an error while
    # scoring or writing (the predictor, a full disk) is reported as "<input>: cannot read it (...)".
    source, _ = folders
    trips = write_tlc(source / "green_tripdata_2021-01.parquet", rows=10)

    with pytest.raises(OSError, match="No space left on device"), parquet_file(str(trips)):
        raise OSError(28, "No space left on device")


@pytest.fixture(scope="module")
def big_months(tmp_path_factory) -> list[Path]:
    """Six months of 2M rides each (one file, hard-linked under six names): a run of several seconds."""
    folder = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(9)
    pickup = np.datetime64("2021-01-01T00:00:00", "us") + rng.integers(0, 31 * 86400, BIG_ROWS).astype("m8[s]")
    table = pa.table(
        {
            "tpep_pickup_datetime": pa.array(pickup, pa.timestamp("us")),
            "tpep_dropoff_datetime": pa.array(pickup + np.timedelta64(600, "s"), pa.timestamp("us")),
            "PULocationID": pa.array(rng.integers(1, 266, BIG_ROWS), pa.int64()),
            "DOLocationID": pa.array(rng.integers(1, 266, BIG_ROWS), pa.int64()),
            "trip_distance": pa.array(rng.gamma(2.0, 1.5, BIG_ROWS).round(2), pa.float64()),
        }
    )
    first = folder / "yellow_tripdata_2021-01.parquet"
    pq.write_table(table, first)
    paths = [first]
    for month in range(2, 7):
        paths.append(folder / f"yellow_tripdata_2021-0{month}.parquet")
        os.link(first, paths[-1])
    return paths


def stop_mid_run(months: list[Path], out: Path, signum: int) -> tuple[subprocess.Popen, str, str]:
    """Run the command over `months`, send `signum` once the first is scored; (process, stdout, stderr)."""
    command = [sys.executable, "-m", "web_service_mlflow.batch", *map(str, months), "--output", str(out / "scored"),
               "--rejects", str(out / "rejects")]  # fmt: skip
    # SIGINT as at a terminal, even when the tests run in the background (where it is ignored, and inherited).
    default_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    with subprocess.Popen(command, cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint) as process:  # fmt: skip
        lines = []
        for line in process.stderr:  # the first month is written: the run is mid-way
            lines.append(line)
            if line.startswith(f"{months[0]}: "):
                break
        assert sorted(path.name.split(".")[1] for path in out.iterdir()) == ["rejects", "scored"]  # staged
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=60)
    return process, stdout, "".join(lines) + stderr


@pytest.mark.slow  # a subprocess
def test_sigterm_mid_run_leaves_nothing_behind_and_exits_non_zero(big_months, tmp_path):
    process, stdout, stderr = stop_mid_run(big_months, tmp_path, signal.SIGTERM)

    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr and stdout == ""
    assert stderr.splitlines()[-1] == "cannot score: interrupted; nothing was written, earlier output is untouched"
    assert listing(tmp_path) == []


@pytest.mark.slow  # a subprocess
def test_ctrl_c_mid_run_leaves_nothing_behind_and_exits_non_zero(big_months, tmp_path):
    process, stdout, stderr = stop_mid_run(big_months, tmp_path, signal.SIGINT)

    assert process.returncode == 128 + signal.SIGINT, stderr
    assert "Traceback" not in stderr and stdout == ""
    assert stderr.splitlines()[-1] == "cannot score: interrupted; nothing was written, earlier output is untouched"
    assert listing(tmp_path) == []
