"""The watcher's decisions, one check at a time: swap, refuse, back off, log once.

The source is a small in-process `ModelWatch` of this test's own (a registry cannot be told here
to fail on cue); tests/integration/test_hot_swap.py runs the same watcher against a real
`mlflow server` and real Gunicorn.
"""

from __future__ import annotations

import logging

import pytest

from web_service.app import create_app
from web_service.errors import ModelLoadError
from web_service.metrics import service_metrics
from web_service.predictor import Predictor
from web_service.server.hotswap import JITTER, MAX_BACKOFF_S, Unavailable, Watcher
from web_service.settings import AppSettings
from web_service.views import serving


class Source:
    """Names what `now` says; builds an app per version, or fails as `broken` says."""

    description = "test registry"
    poll_seconds = 10.0

    def __init__(self, pipeline) -> None:
        self.pipeline, self.now, self.down, self.broken, self.built = pipeline, "1", False, {}, []

    def named(self) -> dict[str, str]:
        if self.down:
            raise Unavailable("connection refused")
        return {"MODEL_URI": self.now}

    def serving(self, app) -> dict[str, str]:
        return {"MODEL_URI": serving(app).predictor.model_version.removeprefix("v")}

    def build(self, named):
        version = named["MODEL_URI"]
        self.built.append(version)
        if version in self.broken:
            raise self.broken[version]
        return create_app(AppSettings(), Predictor(self.pipeline, f"v{version}", "test"), announce=False)


@pytest.fixture
def source(linear_pipeline) -> Source:
    return Source(linear_pipeline)


@pytest.fixture
def watcher(source):
    swapped = []
    first = create_app(AppSettings(), Predictor(source.pipeline, "v1", "test"))
    found = Watcher(source, first, swapped.append)
    found.swapped = swapped
    return found


def counted(name: str) -> float:
    return getattr(service_metrics(), name)._value.get()


def test_the_same_answer_changes_nothing(watcher, source):
    assert watcher.check() == "same"
    assert source.built == [] and watcher.swapped == []


def test_a_new_version_is_built_and_swapped_in(watcher, source):
    reloads = counted("reloads")
    source.now = "2"

    assert watcher.check() == "swapped"
    assert [serving(app).predictor.model_version for app in watcher.swapped] == ["v2"]
    assert watcher.serving == {"MODEL_URI": "2"}
    assert counted("reloads") == reloads + 1
    assert watcher.check() == "same"


def test_a_refused_candidate_is_counted_once_and_not_tried_again_until_sighup(watcher, source, caplog):
    failures = counted("reload_failures")
    source.now, source.broken["2"] = "2", ModelLoadError("the model was trained on other features")

    with caplog.at_level(logging.ERROR, "web_service.server.hotswap"):
        assert watcher.check() == "refused"
        assert watcher.check() == "same"
        assert watcher.check() == "same"
    assert source.built == ["2"] and watcher.swapped == []
    assert counted("reload_failures") == failures + 1
    assert len(caplog.records) == 1
    assert "refusing MODEL_URI=2: the model was trained on other features; still serving v1" in caplog.text

    del source.broken["2"]
    watcher.wake()  # what SIGHUP does
    assert watcher.check() == "swapped"


def test_a_candidate_that_cannot_be_fetched_is_tried_again_at_the_next_check(watcher, source):
    source.now, source.broken["2"] = "2", Unavailable("the artifact store timed out")

    assert watcher.check() == "unavailable"
    del source.broken["2"]
    assert watcher.check() == "swapped"


def test_a_bug_in_loading_refuses_the_candidate_and_keeps_serving(watcher, source):
    source.now, source.broken["2"] = "2", ZeroDivisionError("division by zero")

    assert watcher.check() == "refused"
    assert watcher.swapped == []


def test_an_outage_is_logged_once_backs_off_and_its_end_is_logged(watcher, source, caplog):
    source.down = True
    with caplog.at_level(logging.INFO, "web_service.server.hotswap"):
        outcomes = [watcher.check() for _ in range(6)]
        waits = watcher.next_wait()
        source.down = False
        assert watcher.check() == "same"

    assert outcomes == ["unavailable"] * 6
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]
    assert "cannot ask test registry: connection refused; still serving v1" in caplog.records[0].getMessage()
    assert "answers again after 6 failed checks" in caplog.records[1].getMessage()
    assert waits == pytest.approx(min(10 * 2**6, MAX_BACKOFF_S), rel=JITTER)
    assert watcher.next_wait() == pytest.approx(10, rel=JITTER)
    assert service_metrics().registry_up.labels("test registry")._value.get() == 1


def test_the_waits_are_jittered(watcher):
    waits = {round(watcher.next_wait(), 6) for _ in range(20)}

    assert len(waits) > 15 and all(9 <= wait <= 11 for wait in waits)
