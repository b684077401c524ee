import json
import select
from urllib.parse import unquote

import pytest

from web_service.observe import REQUEST_ID_HEADER

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


def test_a_request_refused_before_its_view_still_gets_an_id_and_a_line(predictor, capsys):
    # The hooks wrap every other one: a 401 from the token check is identified and logged too.
    from web_service.app import create_app
    from web_service.settings import AppSettings

    client = create_app(AppSettings(api_tokens=("alpha-token",)), predictor).test_client()

    response = client.post("/predict", json=RIDE, headers={REQUEST_ID_HEADER: "refused-1"})

    assert (response.status_code, response.headers[REQUEST_ID_HEADER]) == (401, "refused-1")
    [line] = log_lines(capsys)
    assert (line["request_id"], line["route"], line["status"], line["batch_size"]) == (
        "refused-1",
        "/predict",
        401,
        None,
    )


def test_a_line_stays_valid_json_whatever_path_a_client_sends(client, capsys):
    client.get('/quote"and\\backslash')
    client.get("/caf\u00e9")  # WSGI hands the path over latin-1 decoded: still one valid line

    quoted, accented = log_lines(capsys)
    assert quoted["route"] == '/quote"and\\backslash'
    assert (quoted["status"], accented["status"]) == (404, 404)


def test_generated_request_ids_differ_between_requests_and_processes(client):
    import os

    from web_service.server import process

    ids = {client.get("/health").headers[REQUEST_ID_HEADER] for _ in range(50)}
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the child's first ID must not repeat the parent's sequence
        os.write(writer, process.new_request_id().encode())
        os._exit(0)
    os.waitpid(child, 0)
    from_child = os.read(reader, 64).decode()

    assert len(ids) == 50 and all(len(i) == 32 for i in ids)
    assert from_child not in ids and from_child[:16] != next(iter(ids))[:16]


@pytest.mark.parametrize("escaped", ["x", "%01", "%22"])  # 1, 6 and 2 characters of JSON per path character
def test_a_line_for_a_long_path_fits_one_atomic_pipe_write_and_says_it_was_cut(client, capsys, escaped):
    path = "/" + escaped * 5000

    client.get(path)

    [text] = capsys.readouterr().out.splitlines(keepends=True)
    line = json.loads(text)
    assert select.PIPE_BUF - 20 < len(text.encode()) <= select.PIPE_BUF  # cut only as much as it takes
    assert line["truncated"] == ["route"] and line["status"] == 404
    assert unquote(path, encoding="latin-1").startswith(line["route"]) and len(line["route"]) > 500


def test_a_long_method_is_cut_too(client, capsys):
    client.open("/health", method="X" * 5000)

    [text] = capsys.readouterr().out.splitlines(keepends=True)
    line = json.loads(text)
    assert len(text) <= select.PIPE_BUF
    assert line["method"] == "X" * 62 and line["truncated"] == ["method"]


def test_a_normal_line_is_not_marked(client, capsys):
    client.get("/health")

    assert "truncated" not in log_lines(capsys)[0]


def test_each_line_is_one_write_to_stdouts_descriptor(client, capfd, monkeypatch):
    import os

    writes = []
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: writes.append(data) or real_write(fd, data))

    client.get("/health")
    client.get("/" + "y" * 9000)

    out = capfd.readouterr().out
    assert [json.loads(data)["status"] for data in writes] == [200, 404]
    assert all(data.endswith(b"\n") and len(data) <= select.PIPE_BUF for data in writes)
    assert out.encode() == b"".join(writes)
