"""The Spark engine, in local mode on two cores, against the local engine: the same rows and floats.

Real Spark 4 (pyspark from the "spark" Pipfile category, Java 17); nothing is mocked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.trips import make_trips
from tests.conftest import REPO
from web_service_mlflow.batch.spark import package_zip
from web_service_mlflow.layout import LOCAL_STORE
from web_service_mlflow.settings import default_run_id

pytestmark = pytest.mark.slow  # a Spark session: 30 s to start

MONTHS = ("2021-01", "2021-02", "2021-03")


def batch(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "web_service_mlflow.batch", *args],
        cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def three_months(tmp_path_factory) -> list[Path]:
    """Green, yellow and green files with several row groups each and rides the API refuses."""
    folder = tmp_path_factory.mktemp("months")
    paths = []
    for seed, (month, color) in enumerate(zip(MONTHS, ("green", "yellow", "green"), strict=True)):
        trips = make_trips(rows=3000 + 500 * seed, seed=seed, color=color)
        trips.loc[10, "trip_distance"] = 612.0
        trips.loc[11, "PULocationID"] = 0
        trips.loc[12, "trip_distance"] = -1.5
        path = folder / f"{color}_tripdata_{month}.parquet"
        pq.write_table(pa.Table.from_pandas(trips, preserve_index=False), path, row_group_size=1000)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def both_engines(three_months, tmp_path_factory) -> dict[str, tuple[Path, Path, subprocess.CompletedProcess]]:
    out = tmp_path_factory.mktemp("out")
    runs = {}
    for engine in ("local", "spark"):
        scored, rejects = out / f"{engine}-scored", out / f"{engine}-rejects"
        extra = ["--spark-master", "local[2]"] if engine == "spark" else []
        done = batch(*map(str, three_months), "--output", str(scored), "--rejects", str(rejects),
                     "--engine", engine, *extra)  # fmt: skip
        assert done.returncode == 0, done.stderr
        runs[engine] = (scored, rejects, done)
    return runs


def _sorted(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(folder).sort_values("ride_id").reset_index(drop=True)


def test_spark_gives_exactly_the_local_engines_rows_and_floats(both_engines) -> None:
    local, spark = both_engines["local"], both_engines["spark"]
    expected, got = _sorted(local[0]), _sorted(spark[0])
    assert len(got) == len(expected) > 10_000
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    pd.testing.assert_frame_equal(_sorted(spark[1]), _sorted(local[1]), check_exact=True)


def test_spark_reports_the_same_summary_as_the_local_engine(both_engines) -> None:
    def counts(done: subprocess.CompletedProcess) -> str:
        last = done.stdout.strip().splitlines()[-1]
        return last.split(" in ")[0]  # "scored N rides, rejected M (...), from 3 files"

    assert counts(both_engines["spark"][2]) == counts(both_engines["local"][2])
    assert "rejected 9 (" in counts(both_engines["spark"][2])


def test_spark_loads_the_model_once_per_python_worker(both_engines, three_months) -> None:
    stderr = both_engines["spark"][2].stderr
    found = re.search(r"Spark: (\d+) row groups on (\d+) Python worker\(s\), (\d+) model load\(s\)", stderr)
    assert found, stderr
    groups, workers, loads = map(int, found.groups())
    assert groups == sum(pq.ParquetFile(path).metadata.num_row_groups for path in three_months) == 11
    assert 1 <= workers <= 2  # local[2]: Spark reuses its Python workers
    assert loads == workers


def test_spark_writes_a_folder_even_for_one_input(three_months, tmp_path) -> None:
    done = batch(str(three_months[0]), "--output", str(tmp_path / "one"), "--engine", "spark",
                 "--spark-master", "local[2]")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "one" / "_SUCCESS").exists()
    assert len(pd.read_parquet(tmp_path / "one")) == 3000 - 3


def test_the_executors_run_this_python_though_the_environment_names_none(three_months, tmp_path) -> None:
    # PySpark's executors run PYSPARK_PYTHON, else `python3` from PATH: here one that cannot score. The
    # command tells the session its own interpreter instead, without writing PYSPARK_PYTHON anywhere.
    shadow = tmp_path / "bin"
    shadow.mkdir()
    (shadow / "python3").write_text("#!/bin/sh\necho 'the python3 on PATH ran' >&2\nexit 1\n")
    (shadow / "python3").chmod(0o755)
    env = {name: value for name, value in os.environ.items() if name != "PYSPARK_PYTHON"} | {
        "PYTHONPATH": str(REPO), "PATH": f"{shadow}:{os.environ['PATH']}",
        "PYSPARK_DRIVER_PYTHON": sys.executable,  # Spark's launcher scripts look for a Python too
    }  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "web_service_mlflow.batch", str(three_months[0]), "--output", str(tmp_path / "out"),
         "--engine", "spark", "--spark-master", "local[1]"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    assert len(pd.read_parquet(tmp_path / "out")) == 3000 - 3


def test_a_failing_spark_task_is_one_line_and_leaves_no_output(three_months, tmp_path) -> None:
    # A file the driver could read, gone before the tasks run: the executors fail reading it.
    doomed = tmp_path / "green_tripdata_2021-04.parquet"
    doomed.write_bytes(three_months[0].read_bytes())
    script = (
        "import sys, pathlib\n"
        "import web_service_mlflow.batch.spark as spark\n"
        "original = spark.start_session\n"
        "def start(*args):\n"
        f"    pathlib.Path({str(doomed)!r}).unlink()\n"
        "    return original(*args)\n"
        "spark.start_session = start\n"
        "from web_service_mlflow.batch.__main__ import main\n"
        "from web_service_mlflow.commands import run_command\n"
        "sys.exit(run_command(main, 'cannot score'))\n"
    )
    argv = [str(doomed), "--output", str(tmp_path / "out"), "--engine", "spark", "--spark-master", "local[2]"]
    done = subprocess.run([sys.executable, "-c", script, *argv], cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("cannot score: Spark job failed: ")
    assert last.endswith("green_tripdata_2021-04.parquet: no such file")
    # None of ours. PySpark's own worker daemon may print a BrokenPipeError when the failed job's
    # Python workers are torn down (seen once in ~10 runs): Spark's noise, not this command's.
    tracebacks = done.stderr.split("Traceback (most recent call last):")[1:]
    assert all("pyspark/daemon.py" in block.split("Error:")[0] for block in tracebacks), done.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_the_job_submitted_with_spark_submit_as_to_a_cluster_gives_the_same_rows(both_engines, three_months, tmp_path):
    # As docs/batch.md submits it: the packages as --py-files, the model by RUN_ID from a store the
    # executors reach (here the repo's folder store), the master given to spark-submit alone.
    bundle = tmp_path / "ride_duration.zip"
    package_zip(tmp_path)
    run_id = default_run_id(LOCAL_STORE)
    env = os.environ | {"RUN_ID": run_id, "MODEL_ARTIFACT_ROOT": str(LOCAL_STORE), "ALLOW_PICKLE": "1",
                        "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}  # fmt: skip
    env.pop("PYTHONPATH", None)
    submit = Path(sys.executable).with_name("spark-submit")
    done = subprocess.run(
        [str(submit), "--master", "local[2]", "--py-files", str(bundle), "--conf", "spark.ui.enabled=false",
         str(REPO / "web_service_mlflow" / "batch" / "__main__.py"), *map(str, three_months),
         "--output", str(tmp_path / "out"), "--engine", "spark"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    pd.testing.assert_frame_equal(_sorted(tmp_path / "out"), _sorted(both_engines["local"][0]), check_exact=True)
