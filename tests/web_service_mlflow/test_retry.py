import pytest

from web_service.errors import ModelLoadError
from web_service_mlflow.retry import TransientError, with_retries


class Flaky:
    """Fails with `error` the first `failures` calls, then answers."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "model"


def test_transient_failures_are_retried_with_doubling_bounded_delays(caplog):
    waits: list[float] = []
    action = Flaky(6, TransientError("connection refused"))

    assert with_retries(action, "tracking server x", budget_s=600, sleep=waits.append) == "model"

    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert caplog.text.count("tracking server x: attempt") == 6
    assert "attempt 1 failed (connection refused); retrying in 0.5 s" in caplog.text


def test_giving_up_names_the_source_attempts_budget_and_cause():
    with pytest.raises(ModelLoadError) as raised:
        with_retries(Flaky(99, TransientError("503 from S3")), "S3 s3://b/1", budget_s=0, sleep=lambda s: None)

    assert raised.value.message == (
        "S3 s3://b/1: still failing after 1 attempt over 0 s: 503 from S3; "
        "check that it is up and reachable (MODEL_LOAD_TIMEOUT sets how long to wait)"
    )


def test_permanent_failures_are_not_retried():
    action = Flaky(1, ModelLoadError("unknown run"))

    with pytest.raises(ModelLoadError, match="unknown run"):
        with_retries(action, "x", budget_s=60, sleep=lambda s: None)
    assert action.calls == 1
