import pytest
from prometheus_client.parser import text_string_to_metric_families

from web_service.errors import SettingsError
from web_service.metrics import ensure_folder

RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40}


def samples(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def count(all_samples, name, **labels) -> float:
    return all_samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_are_counted_by_route_method_and_status(client):
    before = samples(client)
    client.post("/predict", json=RIDE)
    client.post("/predict", json=[RIDE, RIDE, RIDE])
    client.post("/predict", json={})
    client.get("/nowhere")
    after = samples(client)

    def delta(name, **labels):
        return count(after, name, **labels) - count(before, name, **labels)

    total = "ride_duration_http_requests_total"
    assert delta(total, method="POST", route="/predict", status="200") == 2
    assert delta(total, method="POST", route="/predict", status="400") == 1
    assert delta(total, method="GET", route="unmatched", status="404") == 1
    assert delta("ride_duration_batch_size_count") == 2
    assert delta("ride_duration_batch_size_sum") == 4
    assert delta("ride_duration_predicted_minutes_count", model_version="test-model-1") == 4
    assert delta("ride_duration_http_request_duration_seconds_count", route="/predict") == 3


def test_model_info_names_the_served_model(client):
    info = count(samples(client), "ride_duration_model_info", model_version="test-model-1", source="test fixture")

    assert info == 1


def test_a_missing_metrics_folder_is_created_with_its_parents(tmp_path):
    folder = tmp_path / "not" / "yet" / "there"

    ensure_folder(str(folder))

    assert folder.is_dir()


def test_a_metrics_folder_that_cannot_be_created_is_a_settings_error_naming_the_variable_path_and_cause(tmp_path):
    (tmp_path / "a-file").write_text("")
    folder = tmp_path / "a-file" / "metrics"

    with pytest.raises(SettingsError) as refused:
        ensure_folder(str(folder))

    assert refused.value.message == (
        f"PROMETHEUS_MULTIPROC_DIR={folder}: cannot create the metrics folder ([Errno 20] Not a directory: '{folder}')"
    )


def test_a_metrics_folder_that_cannot_be_written_is_a_settings_error(tmp_path, monkeypatch):
    monkeypatch.setattr("os.access", lambda path, mode: False)  # root may write anywhere: stand in for a user

    with pytest.raises(SettingsError) as refused:
        ensure_folder(str(tmp_path))

    assert refused.value.message == f"PROMETHEUS_MULTIPROC_DIR={tmp_path}: the metrics folder is not writable"


def worker_file(folder, pid: int, value: float) -> None:
    """A counter file as a worker's prometheus-client writes it in multiprocess mode."""
    from prometheus_client.mmap_dict import MmapedDict, mmap_key

    written = MmapedDict(str(folder / f"counter_{pid}.db"))
    key = mmap_key("ride_duration_probe", "ride_duration_probe_total", [], [], "a probe")
    written.write_value(key, value, 0.0)
    written.close()


def test_a_scrape_while_a_worker_creates_its_file_still_answers_the_other_workers_counts(client, tmp_path, monkeypatch):
    # A worker's file exists empty for a moment before it is sized (prometheus/client_python#1199).
    worker_file(tmp_path, 101, 2.0)
    worker_file(tmp_path, 102, 3.0)
    (tmp_path / "counter_103.db").touch()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    response = client.get("/metrics")

    assert response.status_code == 200
    assert count(samples(client), "ride_duration_probe_total") == 5.0
