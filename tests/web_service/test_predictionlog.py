import json
import logging
import os
import shutil
import threading
from pathlib import Path

import pytest

from web_service import predictionlog
from web_service.app import create_app
from web_service.errors import SettingsError
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


@pytest.mark.parametrize(
    ("path", "cause"),
    [
        ("/proc/nope/x.jsonl", "cannot open it for appending ([Errno 2] No such file or directory: '/proc/nope')"),
        ("{tmp}/a-file/x.jsonl", "cannot create its folder: {tmp}/a-file is a file"),
        ("{tmp}", "cannot open it for appending ([Errno 21] Is a directory: '{tmp}')"),
    ],
)
def test_an_unusable_path_stops_start_up_naming_the_variable_the_path_and_the_error(tmp_path, path, cause):
    (tmp_path / "a-file").write_text("")
    path, cause = path.format(tmp=tmp_path), cause.format(tmp=tmp_path)

    with pytest.raises(SettingsError) as raised:
        AppSettings.from_env({"PREDICTION_LOG": path})

    assert raised.value.message.startswith(f"PREDICTION_LOG={path}: {cause}")
    assert raised.value.message.endswith("name a file this user can create and write, or unset PREDICTION_LOG")


def test_the_folder_is_made_and_the_file_opened_at_start(tmp_path):
    path = tmp_path / "not" / "yet" / "predictions.jsonl"

    assert AppSettings.from_env({"PREDICTION_LOG": str(path)}).prediction_log == path
    assert path.is_file()


def test_a_writer_whose_writes_fail_drops_each_record_and_warns_once_per_thousand(caplog):
    log = PredictionLog(Path("/dev/full"))  # opens for appending; every write is ENOSPC

    with caplog.at_level(logging.WARNING, logger="web_service.predictionlog"):
        for _ in range(2500):
            log.record("r", "v", [RIDE], [1.0])
        assert log.flush()

    assert log.dropped == 2500
    assert log._queue.chars == 0  # nothing kept behind the failing writer
    assert caplog.messages == [
        f"prediction log /dev/full cannot be written ([Errno 28] No space left on device): {count} records dropped"
        for count in (1, 1000, 2000)
    ]


def test_records_behind_a_writer_that_cannot_keep_up_stay_within_the_byte_bound(tmp_path, caplog):
    log = StalledLog(tmp_path / "p.jsonl", queue_bytes=1_000_000)
    batch = [RIDE] * 1000  # a 70 KB line, as a full batch request makes

    for _ in range(100):  # 7 MB offered
        log.record("r", "v", batch, [1.0] * 1000)

    assert log._queue.chars <= 1_000_000
    assert log._queue.qsize() == 1_000_000 // 70_107 and log.dropped == 100 - log._queue.qsize()
    assert [message.split(": ")[-1] for message in caplog.messages] == ["1 records dropped"]


def test_a_removed_file_is_made_again_not_written_on_unseen(tmp_path, monkeypatch):
    monkeypatch.setattr(predictionlog, "RECHECK_SECONDS", 0.0)
    path = tmp_path / "logs" / "p.jsonl"
    log = PredictionLog(path)
    log.record("before", "v", [RIDE], [1.0])
    assert log.flush()

    path.unlink()
    log.record("after", "v", [RIDE], [1.0])
    assert log.flush()

    assert [line["request_id"] for line in read_lines(path)] == ["after"]


def test_a_removed_file_that_cannot_be_made_again_drops_records_and_says_so(tmp_path, monkeypatch, caplog):
    # Root may write to any folder: a file where the folder was stands in for a read-only one.
    monkeypatch.setattr(predictionlog, "RECHECK_SECONDS", 0.0)
    path = tmp_path / "logs" / "p.jsonl"
    log = PredictionLog(path)
    log.record("before", "v", [RIDE], [1.0])
    assert log.flush()

    shutil.rmtree(path.parent)
    path.parent.write_text("")
    for _ in range(3):
        log.record("lost", "v", [RIDE], [1.0])
    assert log.flush()

    assert log.dropped == 3 and log._queue.chars == 0
    assert caplog.messages == [
        f"prediction log {path} cannot be written ([Errno 17] File exists: '{path.parent}'): 1 records dropped"
    ]


def test_a_forked_worker_writes_only_its_own_records(tmp_path):
    path = tmp_path / "p.jsonl"
    log = PredictionLog(path)
    log._queue.put_nowait('{"request_id": "queued-in-the-parent"}\n')  # as if the parent had a record waiting

    child = os.fork()
    if child == 0:  # a Gunicorn worker: its first record starts its own writer
        log.record("child", "v", [RIDE], [1.0])
        os._exit(0 if log.flush() else 1)
    _, status = os.waitpid(child, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert [line["request_id"] for line in read_lines(path)] == ["child"]
