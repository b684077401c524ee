"""Batch scoring against real S3 (SeaweedFS): inputs read by range, outputs committed atomically.

What a run writes to S3 must equal what the same run writes to local files; a failed run leaves
the previous output or nothing; a location it cannot use ends the command in one line.
"""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.backends import BUCKET, S3Server
from harness.gunicorn import MODEL_VARIABLES
from harness.processes import free_port
from harness.trips import make_trips
from tests.conftest import REPO, SUMMARY
from web_service_mlflow.batch.__main__ import main
from web_service_mlflow.data import TripDataError

pytestmark = pytest.mark.integration
OUT = "scores"  # the bucket the tests write to; inputs stay in BUCKET
AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_ENDPOINT_URL_S3",
                 "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL", "AWS_SESSION_TOKEN")  # fmt: skip
# Rides the API refuses, put at the head of every file (PULocationID, DOLocationID, trip_distance).
REFUSED = [(10, 50, 600.0), (0, 50, 1.0), (10, 266, 2.0), (None, 50, 1.0), (10, 50, None), (10, 50, -1.0)]
NAMES = ("green_tripdata_2021-01.parquet", "green_tripdata_2021-02.parquet", "yellow_tripdata_2021-03.parquet")


def tlc_table(rows: int, seed: int, color: str) -> pa.Table:
    """TLC-typed trips (timestamp[us] times, int64 zones, float64 miles) led by REFUSED rides."""
    frame = make_trips(rows, seed=seed, color=color)
    prefix = {"green": "lpep", "yellow": "tpep"}[color]
    columns = {name: pa.array(frame[name].to_numpy("datetime64[us]"), pa.timestamp("us"))
               for name in (f"{prefix}_pickup_datetime", f"{prefix}_dropoff_datetime")}  # fmt: skip
    pickup, dropoff = frame["PULocationID"].tolist(), frame["DOLocationID"].tolist()
    distance = [0.0 if row % 97 == 50 else miles for row, miles in enumerate(frame["trip_distance"].tolist())]
    for row, (pu, do, miles) in enumerate(REFUSED):
        pickup[row], dropoff[row], distance[row] = pu, do, miles
    return pa.table(columns | {
        "PULocationID": pa.array(pickup, pa.int64()),
        "DOLocationID": pa.array(dropoff, pa.int64()),
        "trip_distance": pa.array(distance, pa.float64()),
    })  # fmt: skip


def tlc_file(path: Path, rows: int, seed: int) -> Path:
    """Write a TLC-like file whose color comes from its name, in row groups of 400."""
    pq.write_table(tlc_table(rows, seed, path.name.split("_")[0]), path, row_group_size=400)
    return path


# --- running the command -----------------------------------------------------------------------


def batch_env(s3: S3Server, cache: Path, **variables: str) -> dict[str, str]:
    """The test's environment without model or AWS settings, plus the S3 server's and a model cache."""
    env = {k: v for k, v in os.environ.items() if k not in MODEL_VARIABLES + AWS_VARIABLES}
    no_file = str(cache.parent / "no-aws-file")  # no profile or config from the machine running the tests
    own = {"PYTHONPATH": str(REPO), "MODEL_CACHE_DIR": str(cache), "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_CONFIG_FILE": no_file, "AWS_SHARED_CREDENTIALS_FILE": no_file}  # fmt: skip
    return env | s3.env | own | variables


def batch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "web_service_mlflow.batch", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def scored(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    done = batch(env, *args)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def in_process(s3, cache, monkeypatch):
    """The environment `main` runs under when called in-process, as the subprocess runs would see it."""
    for name in MODEL_VARIABLES + AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in batch_env(s3, cache).items():
        if name.startswith(("AWS_", "MLFLOW_", "MODEL_")):
            monkeypatch.setenv(name, value)
    return monkeypatch


# --- S3 and local files ------------------------------------------------------------------------


def keys(s3: S3Server, prefix: str, bucket: str = OUT) -> list[str]:
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def s3_objects(s3: S3Server, prefix: str) -> dict[str, bytes]:
    client = s3.client()
    return {key: client.get_object(Bucket=OUT, Key=key)["Body"].read() for key in keys(s3, prefix)}


def table_of(content: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(content))


def s3_folder(s3: S3Server, prefix: str) -> dict[str, pa.Table | bytes]:
    """An S3 folder output: parquet parts as tables, the rest (_SUCCESS) as bytes, by name in the folder."""
    found = s3_objects(s3, prefix.rstrip("/") + "/")
    return {key.rsplit("/", 1)[1]: table_of(body) if key.endswith(".parquet") else body for key, body in found.items()}


def local_folder(path: Path) -> dict[str, pa.Table | bytes]:
    return {p.name: pq.read_table(p) if p.suffix == ".parquet" else p.read_bytes() for p in sorted(path.iterdir())}


def parts(names: list[str] | tuple[str, ...]) -> list[str]:
    """The names in a folder output of these inputs, in key order: _SUCCESS, then a part per input."""
    return ["_SUCCESS"] + [f"part-{i:05d}-{name}" for i, name in enumerate(names)]


def without_source(table: pa.Table) -> pa.Table:
    return table.drop_columns(["source"])


def same(table: pa.Table, other: pa.Table) -> bool:
    """Equal schemas and exactly equal values, NaN matching NaN in the same place (Table.equals says NaN != NaN)."""
    return table.schema == other.schema and table.to_pandas().equals(other.to_pandas())


@dataclass(frozen=True)
class Inputs:
    local: dict[str, Path]  # name -> local file
    url: dict[str, str]  # name -> s3://BUCKET/trips/<name>


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("batch") / "model-cache"


@pytest.fixture(scope="module")
def inputs(s3, tmp_path_factory) -> Inputs:
    """Three TLC-like files, kept locally and uploaded to s3://mlflow/trips/; a bucket for the outputs."""
    folder = tmp_path_factory.mktemp("trips")
    client = s3.client()
    client.create_bucket(Bucket=OUT)
    sizes = zip(NAMES, (1300, 900, 700), (1, 2, 3), strict=True)
    local = {name: tlc_file(folder / name, rows, seed) for name, rows, seed in sizes}
    for name, path in local.items():
        client.upload_file(str(path), BUCKET, f"trips/{name}")
    return Inputs(local, {name: f"s3://{BUCKET}/trips/{name}" for name in NAMES})


def upload(s3: S3Server, path: Path, key: str) -> str:
    s3.client().upload_file(str(path), BUCKET, key)
    return f"s3://{BUCKET}/{key}"


def deleting_after_plan(monkeypatch, s3: S3Server, key: str) -> None:
    """Delete s3://BUCKET/<key> once the inputs are checked, as the model loads: it fails during scoring."""
    import web_service_mlflow.loader as loader

    honest = loader.load_from_env

    def load_then_delete(environ):
        s3.client().delete_object(Bucket=BUCKET, Key=key)
        return honest(environ)

    monkeypatch.setattr(loader, "load_from_env", load_then_delete)


# --- outputs -----------------------------------------------------------------------------------


def test_an_s3_input_scored_into_s3_files_equals_the_local_run(s3, inputs, cache, in_process, tmp_path):
    name, env = NAMES[0], batch_env(s3, cache)
    output, rejects = f"s3://{OUT}/file/scored.parquet", f"s3://{OUT}/file/rejects.parquet"

    scored(env, inputs.url[name], "--output", output, "--rejects", rejects)
    main([str(inputs.local[name]), "--output", str(tmp_path / "scored.parquet"),
          "--rejects", str(tmp_path / "rejects.parquet")])  # fmt: skip

    written = s3_objects(s3, "file/")
    assert sorted(written) == ["file/rejects.parquet", "file/scored.parquet"]  # nothing left under _temporary/
    local_rejects = pq.read_table(tmp_path / "rejects.parquet")
    assert same(table_of(written["file/scored.parquet"]), pq.read_table(tmp_path / "scored.parquet"))
    assert same(without_source(table_of(written["file/rejects.parquet"])), without_source(local_rejects))
    assert set(table_of(written["file/rejects.parquet"])["source"].to_pylist()) == {inputs.url[name]}
    assert local_rejects.num_rows == len(REFUSED)


def test_s3_inputs_scored_into_s3_folders_equal_the_local_run(s3, inputs, cache, in_process, tmp_path):
    env = batch_env(s3, cache)

    scored(env, *inputs.url.values(), "--output", f"s3://{OUT}/folder/scored/",
           "--rejects", f"s3://{OUT}/folder/rejects")  # fmt: skip
    main(
        [*map(str, inputs.local.values()), "--output", str(tmp_path / "scored"), "--rejects", str(tmp_path / "rejects")]
    )

    assert [key for key in keys(s3, "folder/") if "_temporary" in key] == []
    on_s3, local = s3_folder(s3, "folder/scored"), local_folder(tmp_path / "scored")
    assert list(on_s3) == list(local) == parts(NAMES)
    assert all(same(on_s3[part], local[part]) for part in parts(NAMES)[1:])
    rejects_on_s3, local_rejects = s3_folder(s3, "folder/rejects"), local_folder(tmp_path / "rejects")
    assert list(rejects_on_s3) == list(local_rejects)
    assert all(same(without_source(rejects_on_s3[part]), without_source(local_rejects[part]))
               for part in parts(NAMES)[1:])  # fmt: skip


def test_a_rerun_into_an_s3_folder_replaces_it_and_removes_the_parts_of_a_bigger_earlier_run(
    s3, inputs, cache, in_process, tmp_path
):
    env = batch_env(s3, cache)
    smaller = [NAMES[2], NAMES[0]]
    scored(env, *inputs.url.values(), "--output", f"s3://{OUT}/rerun/scored", "--rejects", f"s3://{OUT}/rerun/rej")

    scored(env, *(inputs.url[name] for name in smaller), "--output", f"s3://{OUT}/rerun/scored",
           "--rejects", f"s3://{OUT}/rerun/rej")  # fmt: skip
    main([*(str(inputs.local[name]) for name in smaller), "--output", str(tmp_path / "scored")])

    on_s3, local = s3_folder(s3, "rerun/scored"), local_folder(tmp_path / "scored")
    assert list(on_s3) == list(local) == parts(smaller)
    assert all(same(on_s3[part], local[part]) for part in parts(smaller)[1:])
    assert list(s3_folder(s3, "rerun/rej")) == list(local)
    assert [key for key in keys(s3, "rerun/") if "_temporary" in key] == []


def test_a_rerun_into_an_s3_file_replaces_it(s3, inputs, cache, in_process, tmp_path):
    env, output = batch_env(s3, cache), f"s3://{OUT}/again/scored.parquet"
    scored(env, inputs.url[NAMES[0]], "--output", output)

    scored(env, inputs.url[NAMES[1]], "--output", output)
    main([str(inputs.local[NAMES[1]]), "--output", str(tmp_path / "scored.parquet")])

    written = s3_objects(s3, "again/")
    assert list(written) == ["again/scored.parquet"]
    assert same(table_of(written["again/scored.parquet"]), pq.read_table(tmp_path / "scored.parquet"))


# --- failed runs -------------------------------------------------------------------------------


def test_a_run_that_fails_while_scoring_leaves_no_key_under_its_s3_outputs(s3, inputs, in_process, tmp_path):
    second = upload(s3, inputs.local[NAMES[1]], f"vanishing/{NAMES[1]}")
    deleting_after_plan(in_process, s3, f"vanishing/{NAMES[1]}")

    with pytest.raises(TripDataError) as failed:
        main([inputs.url[NAMES[0]], second, "--output", f"s3://{OUT}/failed/scored/",
              "--rejects", f"s3://{OUT}/failed/rejects/"])  # fmt: skip

    assert str(failed.value).startswith(f"{second}: ")  # the first input was scored and staged before this
    assert keys(s3, "failed/") == []  # nor anything under <output>/_temporary/


def test_a_failed_rerun_leaves_the_previous_s3_output_as_it_was(s3, inputs, in_process, tmp_path):
    second = upload(s3, inputs.local[NAMES[1]], f"flaky/{NAMES[1]}")
    main([inputs.url[NAMES[0]], second, "--output", f"s3://{OUT}/kept/scored", "--rejects", f"s3://{OUT}/kept/rej"])
    before = s3_objects(s3, "kept/")
    deleting_after_plan(in_process, s3, f"flaky/{NAMES[1]}")

    with pytest.raises(TripDataError):
        main([inputs.url[NAMES[2]], second, "--output", f"s3://{OUT}/kept/scored", "--rejects", f"s3://{OUT}/kept/rej"])

    assert s3_objects(s3, "kept/") == before
    assert sorted(before) == [f"kept/{folder}/{name}" for folder in ("rej", "scored") for name in parts(NAMES[:2])]


class FailingCopies:
    """A real S3 client whose connection drops on copy_object after `succeeding` copies."""

    def __init__(self, client, succeeding: int) -> None:
        self._client, self._left = client, succeeding

    def copy_object(self, **kwargs):
        from botocore.exceptions import EndpointConnectionError

        if self._left == 0:
            raise EndpointConnectionError(endpoint_url=self._client.meta.endpoint_url)
        self._left -= 1
        return self._client.copy_object(**kwargs)

    def __getattr__(self, name: str):
        return getattr(self._client, name)


def fail_a_commit_halfway(s3, inputs, monkeypatch, tmp_path, prefix: str) -> tuple[dict[str, bytes], Exception]:
    """Score two files into s3://OUT/<prefix>/scored, then rescore corrected files of the same names (new
    rides) with the connection dropping on the second part's copy into place; the keys before, and the error."""
    import web_service_mlflow.batch.storage as storage

    urls = [upload(s3, inputs.local[name], f"{prefix}-trips/{name}") for name in NAMES[:2]]
    main([*urls, "--output", f"s3://{OUT}/{prefix}/scored"])
    before = s3_objects(s3, f"{prefix}/")
    for name, seed in zip(NAMES[:2], (11, 12), strict=True):
        upload(s3, tlc_file(tmp_path / name, 500, seed), f"{prefix}-trips/{name}")
    client = FailingCopies(s3.client(), succeeding=1)
    monkeypatch.setattr(storage, "s3_client", lambda: client)
    with pytest.raises(Exception) as failed:  # noqa: B017 (what it raises is for the tests to judge)
        main([*urls, "--output", f"s3://{OUT}/{prefix}/scored"])
    return before, failed.value


def test_a_commit_that_fails_halfway_does_not_leave_a_folder_marked_complete(s3, inputs, in_process, tmp_path):
    before, _ = fail_a_commit_halfway(s3, inputs, in_process, tmp_path, "half")

    after = s3_objects(s3, "half/")
    # "A failed run leaves the previous output, or nothing" (storage.py): at least no _SUCCESS over a mix of runs.
    assert after == before or "half/scored/_SUCCESS" not in after, sorted(after)
    assert [key for key in after if "_temporary" in key] == []


def test_a_commit_that_fails_halfway_ends_in_one_line_naming_the_output(s3, inputs, in_process, tmp_path):
    _, error = fail_a_commit_halfway(s3, inputs, in_process, tmp_path, "loud")

    # run_command prints a TripDataError (OutputError is one) as one line; anything else is a traceback.
    assert isinstance(error, TripDataError), repr(error)
    assert str(error).startswith(f"s3://{OUT}/loud/scored"), str(error)


# --- locations it cannot use -------------------------------------------------------------------


def one_line(done: subprocess.CompletedProcess) -> str:
    """The command's last line, after checking that it failed with that line alone and no traceback."""
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("cannot ")]
    assert len(errors) == 1 and done.stderr.splitlines()[-1] == errors[0], done.stderr
    return errors[0]


UNREADABLE = {
    # case: (input, environment, what the line says)
    "no-such-bucket": (f"s3://no-such-bucket/{NAMES[0]}", {}, r"404|[Nn]ot [Ff]ound|[Nn]o such bucket"),
    "no-such-key": (f"s3://{BUCKET}/trips/green_tripdata_2020-12.parquet", {}, r"404|[Nn]ot [Ff]ound|[Nn]o such"),
    "wrong-credentials": (
        f"s3://{BUCKET}/trips/{NAMES[0]}",
        {"AWS_SECRET_ACCESS_KEY": "not-the-secret"},
        r"403|Forbidden|[Aa]ccess [Dd]enied",
    ),
    "endpoint-down": (f"s3://{BUCKET}/trips/{NAMES[0]}", {"MLFLOW_S3_ENDPOINT_URL": "closed"}, r"[Cc]onnect"),
}


def with_closed_endpoint(variables: dict[str, str]) -> dict[str, str]:
    if variables.get("MLFLOW_S3_ENDPOINT_URL") == "closed":
        return variables | {"MLFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}  # nothing listens there
    return variables


@pytest.mark.parametrize("case", list(UNREADABLE))
def test_an_s3_input_it_cannot_read_ends_in_one_line_naming_it(s3, inputs, cache, tmp_path, request, case):
    location, variables, says = UNREADABLE[case]
    started = time.monotonic()

    done = batch(batch_env(s3, cache, **with_closed_endpoint(variables)), location,
                 "--output", str(tmp_path / "scored.parquet"))  # fmt: skip
    seconds = time.monotonic() - started

    line = one_line(done)
    assert line.startswith(f"cannot score: {location}: "), line
    assert re.search(says, line), line
    assert seconds < 20
    assert list(tmp_path.iterdir()) == []
    request.config.stash.setdefault(SUMMARY, []).append(f"batch, S3 input {case}: exit 1 in {seconds:.1f} s: {line}")


UNWRITABLE = {
    "wrong-credentials": {"AWS_SECRET_ACCESS_KEY": "not-the-secret"},
    "endpoint-down": {"MLFLOW_S3_ENDPOINT_URL": "closed"},
}


@pytest.mark.parametrize("case", list(UNWRITABLE))
def test_an_s3_output_it_cannot_write_ends_in_one_line_naming_it(s3, inputs, cache, case):
    output = f"s3://{OUT}/unwritable/scored.parquet"

    done = batch(batch_env(s3, cache, **with_closed_endpoint(UNWRITABLE[case])), str(inputs.local[NAMES[0]]),
                 "--output", output)  # fmt: skip

    assert one_line(done).startswith(f"cannot score: {output}")  # the output, or a key staged under it


@pytest.mark.parametrize("form", ["file", "folder"])
def test_an_s3_output_it_cannot_write_is_refused_before_the_model_loads(s3, inputs, cache, form):
    # plan() checks every input and output "before the model loads: bad input costs a second, not a run".
    output = f"s3://{OUT}/unwritable/scored" + (".parquet" if form == "file" else "/")
    files = [str(inputs.local[name]) for name in (NAMES[:1] if form == "file" else NAMES[:2])]

    done = batch(batch_env(s3, cache, **UNWRITABLE["wrong-credentials"]), *files, "--output", output)

    assert done.returncode == 1
    assert "loaded " not in done.stderr and "rides, " not in done.stderr, done.stderr


def test_an_s3_endpoint_that_drops_every_connection_is_tried_once(s3, cache, tmp_path):
    # s3_client() asks for connect_timeout=5, read_timeout=30 and one attempt: botocore's "max_attempts"
    # counts retries, so a second attempt doubles every wait (60 s on an endpoint that accepts and never answers).
    with socket.create_server(("127.0.0.1", 0)) as listener:
        attempts = []

        def drop() -> None:
            while True:
                try:
                    connection, _ = listener.accept()
                except OSError:  # the listener is closed: the test is over
                    return
                attempts.append(time.monotonic())
                connection.close()

        threading.Thread(target=drop, daemon=True).start()
        env = batch_env(s3, cache, MLFLOW_S3_ENDPOINT_URL=f"http://127.0.0.1:{listener.getsockname()[1]}")
        done = batch(env, f"s3://{BUCKET}/trips/{NAMES[0]}", "--output", str(tmp_path / "scored.parquet"))
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() above

    assert one_line(done).startswith(f"cannot score: s3://{BUCKET}/trips/{NAMES[0]}: ")
    assert len(attempts) == 1
