"""The OpenAPI document is the contract: schemathesis runs every check it has against live Gunicorn."""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field

import pytest
import requests
import schemathesis
from schemathesis.checks import CHECKS as REGISTERED_CHECKS
from schemathesis.checks import load_all_checks
from schemathesis.engine import Status, events, from_schema

from harness.gunicorn import gunicorn
from tests.conftest import SUMMARY

pytestmark = pytest.mark.e2e
EXAMPLES_PER_OPERATION = 100
TOKEN = "schemathesis-token"
ASSET = re.compile(r"(?:href|src)='(docs/[^']+)'")

load_all_checks()
# Every check schemathesis registers, which is what `st run --checks all` runs. None is left out.
# Three find nothing to check in this API and pass by construction: use_after_free and
# ensure_resource_availability look for resources a call creates or deletes (there are none), and
# object_level_authorization needs two identities (there is one token). ignored_auth applies only
# where the document declares security: the protected server below.
CHECKS = REGISTERED_CHECKS.get_all_names()
# Every operation of the document but GET /openapi.json, the document itself, which schemathesis skips.
OPERATIONS = {"POST /predict", "POST /invocations", "GET /health", "GET /ready", "GET /model", "GET /metrics",
              "GET /ping", "GET /version", "GET /docs"}  # fmt: skip


@dataclass
class Run:
    """What schemathesis did: requests per operation, checks run, and every failure with its reproduction."""

    seed: int
    requests: Counter = field(default_factory=Counter)
    checks: Counter = field(default_factory=Counter)
    phases: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)


def run_schemathesis(url: str, headers: dict[str, str] | None = None) -> Run:
    """`st run --checks all --continue-on-failure`: examples, coverage and fuzzing, valid and invalid data."""
    run = Run(seed=random.randrange(2**32))
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    schema.config.update(continue_on_failure=True, headers=headers)
    schema.config.checks.update(included_check_names=CHECKS)
    schema.config.generation.update(max_examples=EXAMPLES_PER_OPERATION, database="none")
    schema.config.seed = run.seed
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            record(run, event)
        elif isinstance(event, (events.NonFatalError, events.FatalError)):
            run.failures.append(f"schemathesis error: {event}")
        elif isinstance(event, events.EngineFinished):
            run.failures += [f"after the run: {failure.title}: {failure.message}" for failure in event.failures]
    return run


def record(run: Run, event: events.ScenarioFinished) -> None:
    recorder = event.recorder
    run.phases.add(str(event.phase))
    run.requests[recorder.label] += len(recorder.interactions)
    for nodes in recorder.checks.values():
        for node in nodes:
            run.checks[node.name] += 1
            if node.status == Status.FAILURE and node.failure_info is not None:
                failure = node.failure_info.failure
                run.failures.append(f"{recorder.label}: {node.name}: {failure.title}\n{failure.message}\n"
                                    f"{node.failure_info.code_sample}")  # fmt: skip


@pytest.mark.parametrize("protected", [False, True], ids=["open", "with API_TOKEN"])
def test_every_schemathesis_check_passes_on_every_operation(tmp_path, request, protected):
    variables = {"API_TOKEN": TOKEN} if protected else {}
    headers = {"Authorization": f"Bearer {TOKEN}"} if protected else None
    with gunicorn("web_service_mlflow.predict:app", tmp_path / "server.log", **variables) as server:
        run = run_schemathesis(server.url, headers)

    first = "\n\n".join(run.failures[:10])
    assert not run.failures, f"{len(run.failures)} failures (seed {run.seed}), the first ones:\n\n{first}"
    assert set(run.requests) == OPERATIONS
    assert set(run.checks) == set(CHECKS) and len(CHECKS) == 14  # schemathesis 4.32.5 has 14
    assert {"coverage", "fuzzing"} <= run.phases
    report(request, f"schemathesis ({'API_TOKEN set' if protected else 'open'}): {sum(run.requests.values())} "
                    f"requests over {len(run.requests)} operations, all {len(CHECKS)} checks, no failure")  # fmt: skip


def report(request, line: str) -> None:
    """Put the count in the run's summary, where CI output keeps it."""
    request.config.stash.setdefault(SUMMARY, []).append(line)


def test_the_document_the_docs_page_and_its_files_are_served(tmp_path):
    with gunicorn("web_service_mlflow.predict:app", tmp_path / "docs.log") as server:
        document = requests.get(f"{server.url}/openapi.json", timeout=10).json()
        page = requests.get(f"{server.url}/docs", timeout=10)
        assets = {name: requests.get(f"{server.url}/{name}", timeout=10) for name in ASSET.findall(page.text)}
        described = requests.get(f"{server.url}/model", timeout=10).json()

    assert document["openapi"] == "3.1.0"
    assert {"/predict", "/invocations", "/health", "/ready", "/model", "/metrics"} <= set(document["paths"])
    assert page.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert set(assets) == {"docs/swagger-ui.css", "docs/swagger-ui-bundle.js", "docs/favicon-32x32.png"}
    for name, answer in assets.items():  # whole: Gunicorn's sendfile() path is not taken
        assert answer.status_code == 200 and len(answer.content) == int(answer.headers["Content-Length"]), name
    # /model of the embedded MLflow run, its metadata included, declares nothing the document lacks
    assert set(described) <= set(document["components"]["schemas"]["ModelDescription"]["properties"])
