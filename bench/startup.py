"""Time from `gunicorn` start to first successful prediction, for each model source.

    pipenv run python -m bench.startup [--workers 2] [--out bench/results/startup.md]

Starts real SeaweedFS (S3) and `mlflow server` on loopback (harness.backends), copies
the embedded default run into them through the tracking server, registers it, then starts the
service once per case: cold cache, warm cache, and tracking server down.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from bench import publish, servers
from harness.backends import s3_server, tracking_server
from web_service_mlflow.layout import LOCAL_STORE, run_artifacts
from web_service_mlflow.settings import default_run_id

NAME = "ride-duration-bench"


def time_to_first_prediction(workdir: Path, label: str, workers: int, **variables: str) -> float:
    """Start the service, poll /predict until it answers 200, stop it; return the seconds taken."""
    log = workdir / f"{re.sub(r'[^A-Za-z0-9]+', '_', label)}.log"
    started = servers.start("web_service_mlflow.predict:app", log, WEB_CONCURRENCY=str(workers), **variables)
    started.stop()
    return started.seconds_to_first_prediction


def copy_default_run(tracking_url: str) -> tuple[str, str]:
    """Log the embedded run's artifacts as a new run on the tracking server; register it."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(tracking_url)
    experiment = client.create_experiment("startup-bench")
    run_id = client.create_run(experiment).info.run_id
    artifacts = run_artifacts(LOCAL_STORE, default_run_id(LOCAL_STORE))
    for name in ("model", "preprocessor"):
        client.log_artifacts(run_id, str(artifacts / name), name)
    client.set_terminated(run_id)
    mlflow.set_tracking_uri(tracking_url)
    version = mlflow.register_model(f"runs:/{run_id}/model", NAME).version
    client.set_registered_model_alias(NAME, "production", version)
    return run_id, experiment


def measure(workers: int, workdir: Path | None) -> list[tuple[str, float]]:
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = workdir or Path(tmp)
        # The first start compiles the forest and keeps the verified form in the cache; the next reuses it.
        for label in ("embedded default (local mlruns/), first start", "embedded default, second start"):
            cache = str(work / "cache" / "local")
            rows.append((label, time_to_first_prediction(work, label, workers, MODEL_CACHE_DIR=cache)))
        with s3_server(work / "s3") as s3:
            with tracking_server(work / "tracking", s3) as tracking:
                run_id, experiment = copy_default_run(tracking.url)
                by_run = {"RUN_ID": run_id, "MLFLOW_TRACKING_URI": tracking.url}
                by_alias = {"MODEL_URI": f"models:/{NAME}@production", "MLFLOW_TRACKING_URI": tracking.url}
                for label, variables, cache in [
                    ("tracking server, cold cache", by_run, "tracking"),
                    ("tracking server, warm cache", by_run, "tracking"),
                    ("registry alias, cold cache", by_alias, "registry"),
                    ("registry alias, warm cache", by_alias, "registry"),
                ]:
                    rows.append(
                        (
                            label,
                            time_to_first_prediction(
                                work, label, workers, MODEL_CACHE_DIR=str(work / "cache" / cache), **variables
                            ),
                        )
                    )
            # The tracking server is down from here on.
            rows.append(
                (
                    "tracking server down, warm cache",
                    time_to_first_prediction(
                        work, "down", workers, MODEL_CACHE_DIR=str(work / "cache" / "tracking"), **by_run
                    ),
                )
            )
            by_s3 = {"RUN_ID": run_id, "MODEL_ARTIFACT_ROOT": f"s3://mlflow/{experiment}", **s3.env}
            for label in ("S3 direct, cold cache", "S3 direct, warm cache"):
                rows.append(
                    (
                        label,
                        time_to_first_prediction(
                            work, label, workers, MODEL_CACHE_DIR=str(work / "cache" / "s3"), **by_s3
                        ),
                    )
                )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, help="keep servers' data and logs here (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/startup.md"))
    args = parser.parse_args(argv)
    rows = measure(args.workers, args.workdir)
    table = [f"| source ({args.workers} workers) | start to first prediction |", "|---|---|"]
    table += [f"| {label} | {seconds:.2f} s |" for label, seconds in rows]
    return publish(args.out, "\n".join(table) + "\n")


if __name__ == "__main__":
    sys.exit(main())
