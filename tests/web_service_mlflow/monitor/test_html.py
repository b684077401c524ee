"""report.html: one self-contained page, small, with its plots and zone tables, and nothing unescaped."""

from __future__ import annotations

import re

import numpy as np
import pytest

from web_service.drift import build_profile
from web_service_mlflow.monitor.html import _bin_shares, render

pytestmark = pytest.mark.slow  # the monitor's reports and their plots

MAX_BYTES = 1_000_000
# Anything a browser would fetch or run: a page sent by mail must show the same offline.
EXTERNAL = ('src="http', "src='http", 'href="http', "href='http", "<script", "@import", "url(http", "<link")


@pytest.mark.parametrize("case", ["same", "moved", "log", "mixed"])
def test_the_page_is_self_contained_and_under_1_mb(reports, case):
    page = reports[case].html
    assert page.startswith("<!DOCTYPE html>")
    for needle in EXTERNAL:
        assert needle not in page.lower(), needle
    assert len(page.encode()) < MAX_BYTES


def test_the_page_has_both_histograms_the_zone_tables_and_the_errors(reports):
    page = reports["moved"].html
    assert page.count("<svg") == 3  # trip_distance, predicted_duration, errors over time
    assert "trip distance (miles)" in page and "predicted duration (minutes)" in page
    assert "Pickup zones (PULocationID" in page and "Drop-off zones (DOLocationID" in page
    assert page.count('<table class="zone">') == 2
    assert "Errors over time" in page and "validation RMSE" in page
    assert '<div class="banner drift">Drift detected in PULocationID' in page
    assert re.search(r'<tr class="drifted"><td>PULocationID</td>', page)


def test_a_quiet_report_says_so_and_a_log_has_no_error_plot(reports):
    assert '<div class="banner quiet">No drift' in reports["same"].html
    page = reports["log"].html
    assert page.count("<svg") == 2 and "have no actual durations" in page
    assert 'class="warning"' in page  # predictions by another model


def test_svg_ids_are_unique_across_the_plots(reports):
    ids = re.findall(r'<(?:clipPath|path) id="([^"]+)"', reports["moved"].html)
    assert ids and len(ids) == len(set(ids))


def test_outside_text_is_escaped(reports):
    report = reports["log"].report
    hostile = '<script>alert("x")</script>'
    report["current"]["sources"] = [f"{hostile}.jsonl"]
    report["current"]["model_versions"] = [hostile]
    report["warnings"] = [f"model {hostile}"]
    rng = np.random.default_rng(0)
    columns = {"trip_distance": rng.gamma(2, 1.5, 6000), "PULocationID": rng.integers(1, 20, 6000),
               "DOLocationID": rng.integers(1, 20, 6000), "predicted_duration": rng.gamma(3, 5, 6000)}  # fmt: skip
    page = render(report, build_profile(columns), columns)
    assert "<script" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_bin_shares_count_an_atom_on_the_lowest_edge_and_nothing_twice():
    values = np.sort(np.array([0.0, 0.0, 0.5, 1.0, 1.0, 2.0, 5.0]))
    shares = _bin_shares(values, np.array([0.0, 1.0, 2.0]))
    assert shares.tolist() == pytest.approx([5 / 7, 1 / 7])  # [0, 1] then (1, 2]; 5.0 lies beyond
