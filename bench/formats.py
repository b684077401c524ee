"""Models made elsewhere: start-up time and memory on each loading path, and exactness on real rides.

    pipenv run python -m bench.formats [--data ../shared/data] [--skip-real] [--workdir DIR]
                                       [--out bench/results/formats.md]

1. Start-up. For each path (a MODEL_PATH pickle from an older scikit-learn, runs laid out by MLflow
   1, 2 and 3 in a folder, MLflow 3 logged models straight from S3 (SeaweedFS), and the real-size
   models of part 2), Gunicorn with 2 workers is started twice, cold cache then warm, and timed
   from process start to its first answered prediction; total PSS (master and workers) is read
   right after. The embedded default run is measured alongside, as the yardstick.
2. Exactness on real rides (needs the TLC files and the fixtures' MLflow 1.26 environment, which
   tests/fixtures/make_fixtures.py builds): the course's forest (scikit-learn 1.0.2, pickled) and
   its xgboost booster (xgboost 1.5, logged by MLflow 1.26) are trained on January 2021 in that
   environment, which also scores every February ride the API accepts; the service then scores the
   same rides from those files, and the two are compared bit for bit.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import publish
from bench.servers import start
from harness.backends import BUCKET, s3_server
from harness.fixtures import FIXTURES, expected, store
from harness.processes import total_pss_mb

REPO = Path(__file__).resolve().parents[1]
WORKERS = "2"
MLFLOW_APP, FILE_APP = "web_service_mlflow.predict:app", "web_service.predict:app"


@dataclass(frozen=True)
class Case:
    label: str
    app: str
    variables: dict[str, str]


def fixture_cases() -> list[Case]:
    xgboost_3 = expected("mlflow3/xgboost")
    ubj = {"MODEL_URI": f"models:/{xgboost_3.record['models']['model']}", "MODEL_ARTIFACT_ROOT": str(store("mlflow3")),
           "ALLOW_PICKLE": "true"}  # fmt: skip

    def run(fixture: str, root: str, **extra: str) -> dict[str, str]:
        # Every fixture run but the skops one holds a pickle (its model or preprocessor.b): allowed explicitly.
        trust = {} if fixture == "mlflow3/skops" else {"ALLOW_PICKLE": "true"}
        return {"RUN_ID": expected(fixture).run_id, "MODEL_ARTIFACT_ROOT": str(store(root))} | trust | extra

    return [
        Case("embedded default run (yardstick)", MLFLOW_APP, {}),
        Case("MODEL_PATH lin_reg.bin, scikit-learn 1.0.2", FILE_APP,
             {"MODEL_PATH": str(FIXTURES / "sklearn-1.0.2/lin_reg/lin_reg.bin")}),
        Case("MODEL_PATH forest.bin, scikit-learn 0.24.2", FILE_APP,
             {"MODEL_PATH": str(FIXTURES / "sklearn-0.24/forest/forest.bin")}),
        Case("MLflow 1.26 run, scikit-learn 1.0.2, folder", MLFLOW_APP,
             run("mlflow1-sklearn-1.0.2", "mlflow1-sklearn-1.0.2")),
        Case("MLflow 1.26 run, xgboost 1.5 legacy binary, folder", MLFLOW_APP,
             run("mlflow1-xgboost-1.5", "mlflow1-xgboost-1.5")),
        Case("MLflow 2.9 run, scikit-learn 1.2.2 boosting, folder", MLFLOW_APP,
             run("mlflow2-sklearn-1.2.2/boosting", "mlflow2-sklearn-1.2.2")),
        Case("MLflow 3.17 logged model, skops, folder", MLFLOW_APP, run("mlflow3/skops", "mlflow3")),
        Case("MLflow 3.17 logged model, xgboost 3.2 UBJSON by model ID, folder", MLFLOW_APP, ubj),
    ]  # fmt: skip


def measure(case: Case, work: Path, cache: str) -> tuple[float, float]:
    """Seconds to the first prediction and total PSS in MB, with the cache folder given."""
    log = work / f"{re.sub(r'[^A-Za-z0-9]+', '_', case.label)}-{cache}.log"
    started = start(case.app, log, WEB_CONCURRENCY=WORKERS, MODEL_CACHE_DIR=str(work / cache), **case.variables)
    try:
        return started.seconds_to_first_prediction, total_pss_mb(started.process.pid)
    finally:
        started.stop()


def startup_rows(cases: list[Case], work: Path) -> list[str]:
    rows = []
    for index, case in enumerate(cases):
        shutil.rmtree(work / f"cache-{index}", ignore_errors=True)  # cold means cold, even in a reused --workdir
        cold = measure(case, work, f"cache-{index}")
        warm = measure(case, work, f"cache-{index}")
        rows.append(f"| {case.label} | {cold[0]:.2f} s | {warm[0]:.2f} s | {warm[1]:.0f} MB |")
    return rows


def s3_cases(s3, work: Path) -> list[Case]:
    """The MLflow 3 fixture store as a tracking server keeps it in S3: artifacts only, names unknown."""
    client = s3.client()
    root = store("mlflow3")
    for path in sorted(root.rglob("*")):
        if path.is_file() and "/artifacts/" in f"/{path.relative_to(root)}":
            client.upload_file(str(path), BUCKET, f"bench/{path.relative_to(root)}")
    skops, xgboost_3 = expected("mlflow3/skops"), expected("mlflow3/xgboost")
    base = {"MODEL_ARTIFACT_ROOT": f"s3://{BUCKET}/bench", **s3.env}
    return [
        Case("MLflow 3.17 logged model, skops, S3 (scans models/ for its run)", MLFLOW_APP,
             {"RUN_ID": skops.run_id, **base}),
        Case("MLflow 3.17 logged model, xgboost by model ID, S3", MLFLOW_APP,
             {"MODEL_URI": f"models:/{xgboost_3.record['models']['model']}", "ALLOW_PICKLE": "true", **base}),
    ]  # fmt: skip


# --- real rides -------------------------------------------------------------------------------


def real_models(data: Path, work: Path) -> tuple[Path, list[dict]]:
    """Train the course's models on January in the MLflow 1.26 environment; it scores February too."""
    from web_service.schema import MAX_TRIP_DISTANCE
    from web_service_mlflow.data import read_rides

    train = read_rides(str(data / "green_tripdata_2021-01.parquet"))
    score = read_rides(str(data / "green_tripdata_2021-02.parquet"))
    score = score[score["trip_distance"] < MAX_TRIP_DISTANCE]
    fields = ["PULocationID", "DOLocationID", "trip_distance"]
    rides = {
        "train": train[fields].to_dict("records"),
        "minutes": train["duration"].tolist(),
        "score": score[fields].to_dict("records"),
    }
    out = work / "real"
    if (out / "xgboost" / "expected.json").is_file():  # made by an earlier run with this --workdir
        return out, rides["score"]
    (work / "real.json").write_text(json.dumps(rides))
    command = [sys.executable, str(FIXTURES / "make_fixtures.py"), "--recipe", "mlflow-1.26", "real_rides", str(out),
               str(work / "real.json")]  # fmt: skip
    subprocess.run(command, check=True, cwd=work)
    return out, rides["score"]


def exactness_rows(out: Path, rides: list[dict], work: Path) -> list[str]:
    from web_service.bundle import load_bundle
    from web_service.trust import granting
    from web_service_mlflow.loader import load_predictor
    from web_service_mlflow.settings import ModelSettings

    forest = load_bundle(out / "forest.bin")
    booster_run = json.loads((out / "xgboost" / "expected.json").read_text())["run_id"]
    settings = ModelSettings.from_env({"RUN_ID": booster_run, "MODEL_ARTIFACT_ROOT": str(out / "mlruns"),
                                       "MODEL_CACHE_DIR": str(work / "c"), "ALLOW_PICKLE": "true"})  # fmt: skip
    with granting(settings.trust):  # the course's preprocessor.b is a pickle
        booster = load_predictor(settings)
    rows = []
    for label, predictor, folder in (
        ("course forest, scikit-learn 1.0.2 pickle (n_jobs=1)", forest, "forest"),
        ("course booster, xgboost 1.5 legacy binary via MLflow 1.26", booster, "xgboost"),
    ):
        record = json.loads((out / folder / "expected.json").read_text())
        wanted = np.array([float.fromhex(value) for value in record["predictions"]])
        got = np.asarray(predictor.predict(rides), dtype=np.float64)
        same = int((got.view(np.uint64) == wanted.view(np.uint64)).sum())
        rows.append(f"| {label} | {predictor.engine.name} | {same:,} of {len(rides):,} | "
                    f"{float(np.max(np.abs(got - wanted))):.3g} |")  # fmt: skip
    return rows


def real_cases(out: Path) -> list[Case]:
    booster_run = json.loads((out / "xgboost" / "expected.json").read_text())["run_id"]
    return [
        Case("real: course forest (100 trees), scikit-learn 1.0.2, MODEL_PATH", FILE_APP,
             {"MODEL_PATH": str(out / "forest.bin")}),
        Case("real: course booster (100 rounds, depth 30), xgboost 1.5, MLflow 1.26 folder", MLFLOW_APP,
             {"RUN_ID": booster_run, "MODEL_ARTIFACT_ROOT": str(out / "mlruns"), "ALLOW_PICKLE": "true"}),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--skip-real", action="store_true", help="only the committed fixtures")
    parser.add_argument("--workdir", type=Path, help="keep logs and the real models here, and reuse those")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "formats.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        cases, exact = fixture_cases(), []
        if not args.skip_real:
            out, rides = real_models(args.data, work)
            exact = exactness_rows(out, rides, work)
            cases += real_cases(out)
        with s3_server(work / "s3") as s3:
            rows = startup_rows(cases + s3_cases(s3, work), work)
    text = [f"Gunicorn with {WORKERS} workers; cold: empty model cache; warm: the same start again.", "",
            "| path | start to first prediction, cold | warm | total PSS (warm) |", "|---|---|---|---|",
            *rows]  # fmt: skip
    if exact:
        text += ["", "Real rides: every February 2021 green ride the API accepts, trained on January 2021.", "",
                 "| model | engine | bit-identical to the release that made it | largest difference (minutes) |",
                 "|---|---|---|---|", *exact]  # fmt: skip
    return publish(args.out, "\n".join(text) + "\n")


if __name__ == "__main__":
    sys.exit(main())
