"""monitoring/alerts.yml passes promtool's checks and its unit tests, which cover every alert."""

from __future__ import annotations

import subprocess

import yaml

from tests.conftest import REPO
from tests.monitoring.conftest import ALERTS, MONITORING, alert_names, binary


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [binary("promtool"), *args], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_alert_rules_pass_promtool_check():
    done = promtool("check", "rules", str(ALERTS.relative_to(REPO)))

    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_alert_rules_pass_their_promtool_unit_tests():
    done = promtool("test", "rules", str((MONITORING / "alerts_test.yml").relative_to(REPO)))

    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_unit_test_where_it_fires_and_one_where_it_does_not():
    tests = yaml.safe_load((MONITORING / "alerts_test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}

    assert len(alert_names()) == len(set(alert_names())) == 7
    assert set(alert_names()) - firing == set()
    assert set(alert_names()) - quiet == set()
    assert (firing | quiet) - set(alert_names()) == set()  # no test of an alert that is gone


def test_every_alert_has_a_severity_a_summary_and_a_description():
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    alerts = [rule for group in groups for rule in group["rules"] if "alert" in rule]

    for alert in alerts:
        assert alert["labels"]["severity"] in {"warning", "critical"}, alert["alert"]
        assert {"summary", "description"} <= alert["annotations"].keys(), alert["alert"]
        assert "for" in alert, alert["alert"]
