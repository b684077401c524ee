import json

import pytest

from web_service.requestlog import REQUEST_ID_HEADER

RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40}


def log_lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def test_a_callers_request_id_is_echoed_and_logged(client, capsys):
    response = client.post("/predict", json=[RIDE, RIDE], headers={REQUEST_ID_HEADER: "caller-7"})

    assert response.headers[REQUEST_ID_HEADER] == "caller-7"
    [line] = log_lines(capsys)
    assert {k: line[k] for k in ("request_id", "method", "route", "status", "batch_size", "model_version")} == {
        "request_id": "caller-7", "method": "POST", "route": "/predict", "status": 200, "batch_size": 2,
        "model_version": "test-model-1",
    }  # fmt: skip
    assert line["latency_ms"] > 0 and line["ts"].endswith("+00:00")


@pytest.mark.parametrize("given", [None, "", "has spaces", "x" * 129, "<script>"])
def test_a_missing_or_unsafe_request_id_is_replaced_by_a_generated_one(client, capsys, given):
    headers = {REQUEST_ID_HEADER: given} if given is not None else {}

    response = client.get("/health", headers=headers)

    generated = response.headers[REQUEST_ID_HEADER]
    assert len(generated) == 32 and generated != given
    assert log_lines(capsys)[0]["request_id"] == generated


def test_errors_are_logged_with_their_status_and_route(client, capsys):
    client.post("/predict", json={"PULocationID": 1})
    client.get("/nope")

    assert [(line["route"], line["status"]) for line in log_lines(capsys)] == [("/predict", 400), ("/nope", 404)]
