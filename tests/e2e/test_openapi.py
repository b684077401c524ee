"""The OpenAPI document is the contract: schemathesis generates requests from it against live Gunicorn."""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import SUMMARY
from tests.processes import gunicorn

pytestmark = pytest.mark.e2e
EXAMPLES_PER_OPERATION = 100
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_every_answer_conforms_to_the_document_and_none_is_a_server_error(tmp_path, request):
    tried: dict[str, int] = {}
    with gunicorn("web_service_mlflow.predict:app", tmp_path / "server.log") as server:
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        for result in schema.get_all_operations():
            operation = result.ok()

            @given(case=operation.as_strategy())
            @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))  # fmt: skip
            def conforms(case) -> None:
                tried[case.operation.label] = tried.get(case.operation.label, 0) + 1
                case.call_and_validate(base_url=server.url, checks=CHECKS)

            conforms()

    assert set(tried) >= {"POST /predict", "POST /invocations", "GET /ready", "GET /model"}
    report(request, f"schemathesis: {sum(tried.values())} generated requests over {len(tried)} operations, "
                    "no server error, every answer as documented")  # fmt: skip


def report(request, line: str) -> None:
    """Put the count in the run's summary, where CI output keeps it."""
    request.config.stash.setdefault(SUMMARY, []).append(line)


def test_the_document_and_the_docs_page_are_served(tmp_path):
    with gunicorn("web_service_mlflow.predict:app", tmp_path / "docs.log") as server:
        document = requests.get(f"{server.url}/openapi.json", timeout=10).json()
        page = requests.get(f"{server.url}/docs", timeout=10)

    assert document["openapi"] == "3.1.0"
    assert {"/predict", "/invocations", "/health", "/ready", "/model", "/metrics"} <= set(document["paths"])
    assert page.headers["Content-Type"].startswith("text/html")
    assert "POST /predict" in page.text
