"""The local engine: record batches in file order, one part per input, parts in input order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from tests.web_service_mlflow.batch.conftest import expected_reasons, listing, write_pandas_trips, write_tlc
from web_service_mlflow.batch import local

pytestmark = pytest.mark.usefixtures("model_environment")


def test_ride_ids_count_every_row_of_the_file_across_row_groups_and_batches(tmp_path, score, monkeypatch):
    source = write_tlc(tmp_path / "green_tripdata_2021-03.parquet", rows=2000, seed=4, row_group_size=700)
    assert [pq.ParquetFile(source).metadata.row_group(i).num_rows for i in range(3)] == [700, 700, 600]
    monkeypatch.setattr(local, "BATCH_ROWS", 256)  # batches end inside row groups
    batches = []
    original = local.score_batch

    def spy(batch, trip, first_row, *rest):
        batches.append((first_row, batch.num_rows))
        return original(batch, trip, first_row, *rest)

    monkeypatch.setattr(local, "score_batch", spy)

    score(source, "--output", tmp_path / "scored.parquet", "--rejects", tmp_path / "rejects.parquet")

    assert batches[:4] == [(0, 256), (256, 256), (512, 188), (700, 256)] and len(batches) == 9
    trips = pq.read_table(source).to_pandas()
    scored, rejects = (pq.read_table(tmp_path / name).to_pandas() for name in ("scored.parquet", "rejects.parquet"))
    ids = list(scored["ride_id"]) + list(rejects["ride_id"])
    assert sorted(ids) == sorted(f"2021/03_{row}" for row in range(2000))  # each row once, refused ones too
    assert len(rejects) == sum(reason is not None for reason in expected_reasons(pq.read_table(source))) > 40
    for frame in (scored, rejects):  # in file order, each id on its own row's values
        rows = scored_rows(frame)
        assert rows == sorted(rows)
        np.testing.assert_array_equal(frame["pickup_datetime"], trips["lpep_pickup_datetime"].iloc[rows])
        np.testing.assert_array_equal(frame["trip_distance"], trips["trip_distance"].iloc[rows])
    np.testing.assert_array_equal(scored["PULocationID"], trips["PULocationID"].iloc[scored_rows(scored)])


def scored_rows(frame: pd.DataFrame) -> list[int]:
    return frame["ride_id"].str.split("_").str[1].astype(int).tolist()


def test_several_inputs_write_one_dataset_in_input_order_with_a_success_marker(tmp_path, score):
    inputs = [
        write_tlc(tmp_path / "green_tripdata_2021-01.parquet", rows=700, seed=1),
        write_tlc(tmp_path / "yellow_tripdata_2021-02.parquet", rows=500, seed=2, color="yellow"),
        write_pandas_trips(tmp_path / "green_tripdata_2021-03.parquet", rows=400),
    ]
    refused = [sum(r is not None for r in expected_reasons(pq.read_table(path))) for path in inputs]

    summary = score(*inputs, "--output", tmp_path / "scored", "--rejects", tmp_path / "rejects")

    assert (summary.files, summary.scored, summary.rejected) == (3, 1600 - sum(refused), sum(refused))
    for folder, rows in (("scored", summary.scored), ("rejects", summary.rejected)):
        names = listing(tmp_path / folder)
        assert names == [
            "_SUCCESS",
            "part-00000-green_tripdata_2021-01.parquet",
            "part-00001-yellow_tripdata_2021-02.parquet",
            "part-00002-green_tripdata_2021-03.parquet",
        ]
        frame = pd.read_parquet(tmp_path / folder)
        assert len(frame) == ds.dataset(tmp_path / folder, format="parquet").to_table().num_rows == rows
        months = frame["ride_id"].str[:7]
        assert months.is_monotonic_increasing and set(months) == {"2021/01", "2021/02", "2021/03"}
    rejects = pd.read_parquet(tmp_path / "rejects")
    assert rejects.groupby("source", sort=False).size().to_dict() == dict(zip(map(str, inputs), refused, strict=True))
    assert listing(tmp_path) == sorted([path.name for path in inputs] + ["rejects", "scored"])  # no staging left


def test_the_same_file_twice_is_two_parts_of_the_dataset(tmp_path, score):
    source = write_tlc(tmp_path / "green_tripdata_2021-01.parquet", rows=300)

    summary = score(source, source, "--output", tmp_path / "scored")

    assert listing(tmp_path / "scored") == ["_SUCCESS", "part-00000-green_tripdata_2021-01.parquet",
                                            "part-00001-green_tripdata_2021-01.parquet"]  # fmt: skip
    assert len(pd.read_parquet(tmp_path / "scored")) == summary.scored == 2 * pq.read_metadata(
        tmp_path / "scored" / "part-00000-green_tripdata_2021-01.parquet").num_rows  # fmt: skip
