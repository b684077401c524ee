"""JSON nested past Python's recursion limit, sent to a real Gunicorn: a 400 in the error shape, no traceback."""

from __future__ import annotations

import pytest
import requests

from harness.gunicorn import gunicorn

pytestmark = pytest.mark.e2e
MLFLOW_APP = "web_service_mlflow.predict:app"
TOO_DEEP = {
    "error": {
        "code": "invalid_request",
        "message": "the body is JSON nested too deeply",
        "details": [
            {
                "field": "body",
                "expected": "JSON nested at most 900 levels deep (a list of rides is 2)",
                "received": "deeper nesting",
            }
        ],
    }
}


def post_nested(url: str, wrap: str, depth: int) -> requests.Response:
    body = wrap.format("[" * depth + "]" * depth)
    return requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=30)


def test_json_nested_971_levels_and_more_gets_400_on_both_endpoints_and_900_parses(tmp_path):
    with gunicorn(MLFLOW_APP, tmp_path / "server.log") as server:
        answers = {
            (path, depth): post_nested(f"{server.url}{path}", wrap, depth)
            for path, wrap in (("/predict", "{}"), ("/invocations", '{{"inputs": {}}}'))
            for depth in (900, 971, 100_000)
        }
        log = server.output()

    assert {key: answer.status_code for key, answer in answers.items()} == dict.fromkeys(answers, 400)
    too_deep = [key for key, answer in answers.items() if answer.json() == TOO_DEEP]
    assert sorted(too_deep) == [(path, depth) for path in ("/invocations", "/predict") for depth in (971, 100_000)]
    # 900 levels parse: they are refused for what they are, a list that holds no ride.
    assert answers["/predict", 900].json()["error"]["message"] == "invalid rides: [0]"
    assert "Traceback" not in log and "RecursionError" not in log
