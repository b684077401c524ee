"""Check that a running service answers exactly what its run gives in-process.

    RUN_ID=<run> python -m web_service_mlflow.parity --url http://localhost:9696/predict \\
        --rides green_tripdata_2021-02.parquet [--limit N]

Loads the model that the service's own variables name (RUN_ID, MODEL_URI, ...), scores the
file's rides in one batch the way training does, posts every ride to the service one at a time,
and compares the floats exactly. A ride the API contract refuses (real TLC files hold odometer
errors of thousands of miles) is expected to get exactly the contract's 400 body instead.
Exit code 0 only if every answer is the expected one and names the same model.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from web_service.environment import read
from web_service_mlflow.needs import MissingPackage, missing

try:
    import pandas as pd
    import requests

    from web_service.errors import InvalidRequest
    from web_service.features import RIDE_FIELDS, prepare_features_frame
    from web_service.predictor import DictPipeline
    from web_service.schema import parse_rides
    from web_service.trust import granting
    from web_service_mlflow.commands import run_command
    from web_service_mlflow.data import read_rides
    from web_service_mlflow.loader import load_predictor
    from web_service_mlflow.settings import ModelSettings
except (ModuleNotFoundError, MissingPackage) as error:  # a category `make run` leaves out: say which
    raise missing(error, "python -m web_service_mlflow.parity", "batch") from None


@dataclass(frozen=True)
class Rejected:
    """What the contract answers a ride it refuses: the status and the exact error body."""

    status: int
    body: dict


Expected = float | Rejected


@dataclass
class ParityReport:
    rides: int = 0
    identical: int = 0
    rejected: int = 0  # refused with exactly the contract's error, as expected
    mismatches: list[tuple[dict, Expected, object]] = field(default_factory=list)
    model_versions: set[str] = field(default_factory=set)

    def ok(self, expected_version: str) -> bool:
        return not self.mismatches and self.model_versions <= {expected_version}


def expected_answers(pipeline: DictPipeline, frame: pd.DataFrame) -> list[Expected]:
    """Per ride: the pipeline's float, scored in one batch as in training, or the contract's refusal."""
    expected: list[Expected | None] = []
    for ride in frame[list(RIDE_FIELDS)].to_dict("records"):
        try:
            parse_rides(ride, max_batch=1)
            expected.append(None)
        except InvalidRequest as error:
            expected.append(Rejected(error.status, error.to_dict()))
    accepted = [i for i, want in enumerate(expected) if want is None]
    predicted = list(pipeline.predict(prepare_features_frame(frame.iloc[accepted])))
    for i, duration in zip(accepted, predicted, strict=True):
        expected[i] = duration
    return expected


def post_all(url: str, rides: Sequence[dict], concurrency: int = 4) -> list[dict]:
    """POST each ride, `concurrency` at a time; return the decoded answers in ride order."""
    local = threading.local()

    def post(ride: dict) -> dict:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        response = local.session.post(url, json=ride, timeout=30)
        return response.json() if response.ok else {"status": response.status_code, "body": response.text}

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(post, rides))


def compare(answers: Sequence[dict], rides: Sequence[dict], expected: Sequence[Expected]) -> ParityReport:
    report = ParityReport(rides=len(rides))
    for ride, answer, want in zip(rides, answers, expected, strict=True):
        if isinstance(want, Rejected):
            if answer.get("status") == want.status and json.loads(answer.get("body", "null")) == want.body:
                report.rejected += 1
            else:
                report.mismatches.append((ride, want, answer))
            continue
        report.model_versions.add(str(answer.get("model_version")))
        if answer.get("duration") == want:
            report.identical += 1
        else:
            report.mismatches.append((ride, want, answer))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://localhost:9696/predict")
    parser.add_argument("--rides", required=True, help="TLC parquet: a path or a URL")
    parser.add_argument("--limit", type=int, help="only the first N rides")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args(argv)

    settings = ModelSettings.from_env(read())
    with granting(settings.trust):
        predictor = load_predictor(settings)
    frame = read_rides(args.rides).iloc[: args.limit]
    expected = expected_answers(predictor.pipeline, frame)
    rides = frame[list(RIDE_FIELDS)].to_dict("records")
    report = compare(post_all(args.url, rides, args.concurrency), rides, expected)
    print(
        f"{report.rides} rides: {report.identical} identical floats, {report.rejected} refused by the contract "
        f"with the expected 400, {len(report.mismatches)} differ; "
        f"served by {sorted(report.model_versions)}, expected {predictor.model_version}"
    )
    for ride, want, answer in report.mismatches[:5]:
        print(f"  {ride}: expected {want!r}, served {answer}")
    return 0 if report.ok(predictor.model_version) else 1


if __name__ == "__main__":
    sys.exit(run_command(main, "cannot check parity", requests.RequestException))
