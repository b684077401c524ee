"""Write the Prometheus Operator's PrometheusRule for Kubernetes from monitoring/alerts.yml.

    python -m deploy.k8s_rules            # rewrite deploy/k8s/base/prometheusrule.yaml
    python -m deploy.k8s_rules --check    # exit 1, saying so, when the file is not what alerts.yml gives

monitoring/alerts.yml stays the one place the alert rules are written (promtool checks and
unit-tests it); the PrometheusRule carries its `groups` unchanged, since kustomize cannot read a
file outside deploy/k8s/. tests/deploy/test_k8s.py fails when the two drift apart.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
ALERTS = REPO / "monitoring" / "alerts.yml"
PROMETHEUS_RULE = REPO / "deploy" / "k8s" / "base" / "prometheusrule.yaml"
HEADER = """\
# Written by `python -m deploy.k8s_rules` from monitoring/alerts.yml: edit that file, then run it again.
# The same groups, for the Prometheus Operator (docs/kubernetes.md).
"""


class _BlockStyleDumper(yaml.SafeDumper):
    """Multi-line strings (the PromQL expressions) as `|` blocks, as alerts.yml writes them."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_BlockStyleDumper.add_representer(str, _represent_str)


def render(alerts: Path = ALERTS) -> str:
    """The PrometheusRule manifest holding `alerts`' groups, as text."""
    groups = yaml.safe_load(alerts.read_text())["groups"]
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "ride-duration"},
        "spec": {"groups": groups},
    }
    return HEADER + yaml.dump(rule, Dumper=_BlockStyleDumper, sort_keys=False, width=100, allow_unicode=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether the file is up to date")
    args = parser.parse_args(argv)
    wanted = render()
    if not args.check:
        PROMETHEUS_RULE.write_text(wanted)
        return 0
    if PROMETHEUS_RULE.read_text() != wanted:
        print(f"{PROMETHEUS_RULE.relative_to(REPO)} is out of date: run python -m deploy.k8s_rules", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
