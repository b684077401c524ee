from prometheus_client.parser import text_string_to_metric_families

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
    assert delta("ride_duration_predicted_minutes_count") == 4
    assert delta("ride_duration_http_request_duration_seconds_count", route="/predict") == 3


def test_model_info_names_the_served_model(client):
    info = count(samples(client), "ride_duration_model_info", model_version="test-model-1", source="test fixture")

    assert info == 1
