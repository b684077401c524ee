"""Batch scoring and POST /predict agree on every ride: the same float, bit for bit, or both refuse it.

The batch command runs as a user runs it (a subprocess on a parquet file) and Gunicorn serves the
same model; every ride of the file is then posted, in lists and one at a time.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

from harness.gunicorn import MODEL_VARIABLES, gunicorn
from harness.trips import make_trips
from tests.conftest import REPO
from web_service.features import RIDE_FIELDS, prepare_features_frame
from web_service_mlflow.layout import LOCAL_STORE
from web_service_mlflow.settings import default_run_id

pytestmark = pytest.mark.e2e
APP = "web_service_mlflow.predict:app"
FIELDS = list(RIDE_FIELDS)
# Rides the contract refuses (PULocationID, DOLocationID, trip_distance); None is a null in the file.
REFUSED = [
    (10, 50, 600.0), (10, 50, 500.0), (10, 50, 1e9), (10, 50, -1.0), (10, 50, float("nan")),
    (10, 50, float("inf")), (10, 50, None), (0, 50, 1.0), (266, 50, 1.0), (-5, 50, 1.0), (None, 50, 1.0),
    (10, 0, 1.0), (10, 300, 1.0), (10, None, 1.0), (0, None, 600.0), (None, None, None),
]  # fmt: skip
# Rides it takes at its edges: distance 0 (and -0.0), just under the limit, tiny, unknown zones.
EDGES = [
    (10, 50, 0.0), (10, 50, -0.0), (265, 264, 499.99), (1, 1, 499.99999999), (132, 265, 250.0),
    (74, 75, 1e-9), (264, 264, 0.0), (43, 237, 120.5), (1, 265, 5e-324),
]  # fmt: skip
# Refused only as floats: a zone with a fractional part, and one far out of range.
REFUSED_AS_FLOATS = [(10.5, 50.0, 1.0), (10.0, 1e20, 1.0), (264.999, 1.0, 2.0)]
INTEGERS = pa.int64()
LIST_SIZES = (1000, 1, 2, 8, 9, 37, 500, 3)  # both sides of the compiled table's scalar path (8 rides)


@dataclass(frozen=True)
class Scoring:
    """The batch command's results on one file, by row of the file."""

    table: pa.Table  # the input
    scored: dict[int, tuple[float, str]]  # row -> (predicted_duration, model_version)
    rejected: dict[int, str]  # row -> reason
    summary: str


def trips_table(rows: int, seed: int, color: str, zones: pa.DataType = INTEGERS) -> pa.Table:
    """TLC-like trips: random zones 1..265, distances from 0 to 499.99, plus REFUSED and EDGES scattered."""
    rng = np.random.default_rng(seed)
    frame = make_trips(rows, seed=seed, color=color)
    distance = rng.exponential(3.0, rows).round(2)
    distance[rng.integers(0, rows, rows // 20)] = 0.0
    distance[rng.integers(0, rows, rows // 50)] = rng.uniform(60, 499.99, rows // 50).round(2)
    special = REFUSED + EDGES + (REFUSED_AS_FLOATS if pa.types.is_floating(zones) else [])
    where = rng.choice(rows, len(special), replace=False)
    pickup, dropoff = frame["PULocationID"].tolist(), frame["DOLocationID"].tolist()
    distance = distance.tolist()
    for row, (pu, do, miles) in zip(where.tolist(), special, strict=True):
        pickup[row], dropoff[row], distance[row] = pu, do, miles
    prefix = {"green": "lpep", "yellow": "tpep"}[color]
    times = {name: pa.array(frame[name].to_numpy("datetime64[us]"), pa.timestamp("us"))
             for name in (f"{prefix}_pickup_datetime", f"{prefix}_dropoff_datetime")}  # fmt: skip
    return pa.table(times | {
        "PULocationID": pa.array(pickup, zones),
        "DOLocationID": pa.array(dropoff, zones),
        "trip_distance": pa.array(distance, pa.float64()),
        "fare_amount": pa.array(frame["fare_amount"], pa.float64()),
    })  # fmt: skip


def batch_env(cache: Path, **variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in MODEL_VARIABLES}
    return env | {"PYTHONPATH": str(REPO), "MODEL_CACHE_DIR": str(cache)} | variables


def score(table: pa.Table, name: str, folder: Path, cache: Path, **variables: str) -> Scoring:
    """Write `table` as `folder`/`name` in row groups of 700 and run the batch command on it."""
    source = folder / name
    pq.write_table(table, source, row_group_size=700)
    output, rejects = folder / "scored.parquet", folder / "rejects.parquet"
    done = subprocess.run(
        [sys.executable, "-m", "web_service_mlflow.batch", str(source), "--output", str(output),
         "--rejects", str(rejects)],
        cwd=REPO, env=batch_env(cache, **variables), capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    scored = pq.read_table(output).to_pydict()
    refused = pq.read_table(rejects).to_pydict()
    assert set(refused["source"]) == {str(source)}
    year, month = re.search(r"_(\d{4})-(\d{2})\.parquet$", name).groups()  # the ride ids' month: the file's
    assert all(ride_id.startswith(f"{year}/{month}_") for ride_id in scored["ride_id"] + refused["ride_id"])
    return Scoring(
        table,
        {
            row_of(i): (d, v)
            for i, d, v in zip(scored["ride_id"], scored["predicted_duration"], scored["model_version"], strict=True)
        },
        {row_of(i): reason for i, reason in zip(refused["ride_id"], refused["reason"], strict=True)},
        done.stdout.strip().splitlines()[-1],
    )


def row_of(ride_id: str) -> int:
    return int(ride_id.rsplit("_", 1)[1])


def rides_of(table: pa.Table) -> list[dict]:
    """The file's rides as a client would post them: nulls as null, NaN and infinities as Python's json writes them."""
    return table.select(FIELDS).to_pylist()


def post(session: requests.Session, url: str, body) -> requests.Response:
    # json.dumps writes NaN and Infinity, which the service's JSON reader takes and its contract refuses.
    return session.post(url, data=json.dumps(body), headers={"Content-Type": "application/json"}, timeout=60)


def served_by_lists(url: str, rides: list[dict], rows: list[int]) -> dict[int, dict]:
    """POST the rides at `rows` as JSON lists of LIST_SIZES in turn; the answers by row."""
    answers, start, turn = {}, 0, 0
    with requests.Session() as session:
        while start < len(rows):
            chunk = rows[start : start + LIST_SIZES[turn % len(LIST_SIZES)]]
            response = post(session, url, [rides[row] for row in chunk])
            assert response.status_code == 200, response.text
            answers |= dict(zip(chunk, response.json(), strict=True))
            start, turn = start + len(chunk), turn + 1
    return answers


def served_alone(url: str, rides: list[dict], rows: list[int]) -> dict[int, requests.Response]:
    with requests.Session() as session:
        return {row: post(session, url, rides[row]) for row in rows}


def bits(value: float) -> str:
    return float(value).hex()  # tells 0.0 from -0.0 and every last bit apart


def assert_batch_equals_service(url: str, scoring: Scoring, model_version: str) -> None:
    rides, rows = rides_of(scoring.table), scoring.table.num_rows
    scored, rejected = sorted(scoring.scored), sorted(scoring.rejected)

    in_lists = served_by_lists(url, rides, scored)
    alone = served_alone(url, rides, scored[::10] + rejected)

    # Every row is either scored or rejected, once, and the summary line counts them the same way.
    assert sorted(scored + rejected) == list(range(rows))
    assert scoring.summary.startswith(f"scored {len(scored):,} rides, rejected {len(rejected):,} (")
    # Scored: the very float and model version /predict answers, in a list and alone.
    batch = {row: (bits(duration), version) for row, (duration, version) in scoring.scored.items()}
    listed = {row: (bits(answer["duration"]), answer["model_version"]) for row, answer in in_lists.items()}
    assert listed == batch
    assert {row: alone[row].status_code for row in scored[::10]} == dict.fromkeys(scored[::10], 200)
    single = {row: (bits(alone[row].json()["duration"]), alone[row].json()["model_version"]) for row in scored[::10]}
    assert single == {row: batch[row] for row in scored[::10]}
    assert {version for _, version in batch.values()} == {model_version}
    # Rejected: a 400 from /predict, whose details name the field the batch's reason names.
    assert {row: alone[row].status_code for row in rejected} == dict.fromkeys(rejected, 400)
    named = {row: reason_field(scoring.rejected[row]) in error_fields(alone[row]) for row in rejected}
    assert named == dict.fromkeys(rejected, True), {row: (rides[row], alone[row].text) for row in rejected}


def reason_field(reason: str) -> str:
    return next(name for name in FIELDS if reason.startswith(f"{name}_"))


def error_fields(response: requests.Response) -> set[str]:
    return {detail["field"] for detail in response.json()["error"]["details"]}


@pytest.fixture(scope="module")
def default_server(tmp_path_factory):
    with gunicorn(APP, tmp_path_factory.mktemp("gunicorn") / "default.log") as server:
        yield server


@pytest.fixture(scope="module")
def batch_cache(tmp_path_factory) -> Path:
    """The batch command's own model cache: it compiles its table apart from the server's."""
    return tmp_path_factory.mktemp("batch-cache")


@pytest.mark.parametrize(
    ("color", "rows", "zones"),
    [("green", 3000, INTEGERS), ("yellow", 800, INTEGERS), ("green", 500, pa.float64())],
    ids=["green", "yellow", "green-float-zones"],
)
def test_every_ride_gets_from_the_batch_exactly_what_predict_answers_or_both_refuse_it(
    default_server, batch_cache, tmp_path, color, rows, zones
):
    table = trips_table(rows, seed=rows, color=color, zones=zones)
    scoring = score(table, f"{color}_tripdata_2021-0{rows % 7 + 1}.parquet", tmp_path, batch_cache)

    assert len(scoring.rejected) >= len(REFUSED)
    assert_batch_equals_service(f"{default_server.url}/predict", scoring, default_run_id(LOCAL_STORE))


# --- a model with no compiled form: scikit-learn itself answers, in the batch and in the service ---

KNN_RUN = "5c1e4b11" * 4


@pytest.fixture(scope="module")
def knn_store(tmp_path_factory) -> Path:
    """A run folder holding Pipeline(DictVectorizer, KNeighborsRegressor), which nothing compiles."""
    import mlflow.sklearn
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import make_pipeline

    trips = make_trips(1500, seed=21)
    minutes = (trips["lpep_dropoff_datetime"] - trips["lpep_pickup_datetime"]).dt.total_seconds() / 60
    pipeline = make_pipeline(DictVectorizer(), KNeighborsRegressor(n_neighbors=5))
    pipeline.fit(prepare_features_frame(trips), minutes)
    root = tmp_path_factory.mktemp("knn-store")
    mlflow.sklearn.save_model(pipeline, root / "1" / KNN_RUN / "artifacts" / "model",
                              serialization_format="pickle", pip_requirements=["scikit-learn"])  # fmt: skip
    return root


def test_a_model_scikit_learn_serves_gets_the_same_floats_from_the_batch_as_from_predict(knn_store, tmp_path):
    model = {"RUN_ID": KNN_RUN, "MODEL_ARTIFACT_ROOT": str(knn_store), "ALLOW_PICKLE": "true"}
    table = trips_table(1500, seed=22, color="green")
    scoring = score(table, "green_tripdata_2021-02.parquet", tmp_path, tmp_path / "cache", **model)

    with gunicorn(APP, tmp_path / "knn.log", **model) as server:
        engine = requests.get(f"{server.url}/model", timeout=10).json()["engine"]
        assert_batch_equals_service(f"{server.url}/predict", scoring, KNN_RUN)

    assert engine["name"] == "scikit-learn"
    assert re.search(r"no fast form for KNeighborsRegressor", engine["detail"])
