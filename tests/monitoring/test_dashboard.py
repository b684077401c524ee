"""monitoring/dashboard.json: every panel's queries run on a real Prometheus scraping the service."""

from __future__ import annotations

import json
import math
import re

import pytest

from tests.monitoring.conftest import JOB, MONITORING

DASHBOARD = json.loads((MONITORING / "dashboard.json").read_text())
# What Grafana puts in place of its variables, for one instant query a minute after the traffic.
VARIABLES = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h", "job": JOB}
METRIC = re.compile(r"\b(ride_duration_[a-z_]+|up)\b")
TARGETS = [(panel["title"], target) for panel in DASHBOARD["panels"] for target in panel.get("targets", [])]
# Metrics only a service that watches a registry alias exports (MODEL_URI=models:/<name>@<alias>,
# which needs a tracking server); the stack serves the embedded run. Their queries must run, and
# return nothing. tests/integration/test_hot_swap.py reads them from a watching service.
ALIAS_ONLY = {"ride_duration_model_registry_up"}


def promql(expr: str) -> str:
    """The query as Grafana sends it: $name and ${name} replaced (an unknown variable fails)."""
    return re.sub(r"\$\{?(\w+)\}?", lambda found: VARIABLES[found.group(1)], expr)


def test_the_dashboard_is_a_grafana_dashboard_on_a_chosen_prometheus():
    variables = {variable["name"]: variable for variable in DASHBOARD["templating"]["list"]}

    assert DASHBOARD["schemaVersion"] == 39
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == ("datasource", "prometheus")
    assert len({panel["id"] for panel in DASHBOARD["panels"]}) == len(DASHBOARD["panels"])
    for panel in DASHBOARD["panels"]:
        assert panel["targets"], f"{panel['title']}: no query"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]
            promql(target["expr"])  # every variable it names is one Grafana fills


@pytest.mark.e2e
@pytest.mark.parametrize(("title", "target"), TARGETS, ids=[f"{title} {t['refId']}" for title, t in TARGETS])
def test_every_panel_query_runs_and_returns_a_number_after_traffic(stack, title, target):
    answer = stack.prometheus.query(promql(target["expr"]))

    assert answer["status"] == "success", answer
    result = answer["data"]["result"]
    if set(METRIC.findall(target["expr"])) <= ALIAS_ONLY:
        # Nothing without an alias: a value here (an unlabelled gauge at 0) would fire
        # RideDurationModelRegistryUnreachable on every RUN_ID deployment.
        assert result == [], f"{title}: a service watching no alias exports {result}"
        return
    assert result, f"{title}: no data for {promql(target['expr'])}"
    assert any(math.isfinite(float(series["value"][1])) for series in result), result


@pytest.mark.e2e
def test_every_query_names_only_metrics_the_service_exports(stack):
    exported = {line.split("{")[0].split(" ")[0] for line in stack.metrics_text.splitlines()
                if line and not line.startswith("#")} | {"up"}  # fmt: skip

    for title, target in TARGETS:
        named = set(METRIC.findall(target["expr"]))
        assert named, f"{title}: {target['expr']} names no metric"
        assert named <= exported | ALIAS_ONLY, f"{title}: {sorted(named - exported)} not on /metrics"
