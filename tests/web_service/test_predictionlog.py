import json
import threading

from web_service.app import create_app
from web_service.predictionlog import PredictionLog
from web_service.settings import AppSettings
from web_service.views import serving

RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40.0}


def read_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_prediction_is_logged_with_inputs_outputs_and_request_id(tmp_path, predictor):
    path = tmp_path / "logs" / "predictions.jsonl"
    app = create_app(AppSettings(prediction_log=path), predictor)
    client = app.test_client()

    single = client.post("/predict", json=RIDE | {"fare_amount": 9}, headers={"X-Request-ID": "one"}).json
    batch = client.post("/predict", json=[RIDE, RIDE | {"trip_distance": 2.0}], headers={"X-Request-ID": "two"}).json
    client.post("/predict", json={"PULocationID": 1})  # invalid: nothing predicted, nothing logged
    assert serving(app).prediction_log.flush()

    lines = read_lines(path)
    assert [(line["request_id"], line["model_version"]) for line in lines] == [
        ("one", "test-model-1"),
        ("two", "test-model-1"),
    ]
    assert lines[0]["rides"] == [RIDE] and lines[0]["durations"] == [single["duration"]]
    assert lines[1]["durations"] == [answer["duration"] for answer in batch]


def test_the_log_is_off_unless_asked_for(predictor):
    assert serving(create_app(AppSettings(), predictor)).prediction_log is None


class StalledLog(PredictionLog):
    """A log whose writer never runs: stands in for a disk that cannot keep up."""

    def _ensure_writer(self) -> None:
        pass


def test_a_full_queue_drops_records_instead_of_slowing_requests(tmp_path, caplog):
    log = StalledLog(tmp_path / "p.jsonl", queue_size=2)

    for _ in range(5):
        log.record("r", "v", [RIDE], [1.0])

    assert log.dropped == 3
    assert "cannot keep up: 1 records dropped" in caplog.text


def test_lines_from_many_threads_never_interleave(tmp_path):
    log = PredictionLog(tmp_path / "p.jsonl")
    rides = [RIDE] * 50  # a long line

    threads = [threading.Thread(target=lambda i=i: [log.record(f"r{i}", "v", rides, [1.0] * 50) for _ in range(50)])
               for i in range(4)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert log.flush()

    assert len(read_lines(tmp_path / "p.jsonl")) == 200
