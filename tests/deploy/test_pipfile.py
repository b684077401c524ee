"""The Pipfile's categories: serving alone in [packages], one version of each package across them all."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PIPFILE = tomllib.loads((REPO / "Pipfile").read_text())
LOCK = json.loads((REPO / "Pipfile.lock").read_text())
CATEGORIES = [name for name in LOCK if name != "_meta"]
# What serving must never pull in: the MLflow server, training's and the reports' data tools.
NOT_FOR_SERVING = ("mlflow", "pandas", "pyarrow", "matplotlib", "sqlalchemy", "alembic", "pyspark", "pytest")
# The packages whose internals the service reads, each with where (tests that fail when they move).
INTERNALS_USED = {
    "gunicorn": "web_service/server/worker.py (tests/web_service/server/test_gunicorn_internals.py)",
    "scikit-learn": "web_service/engine/compiled.py (tests/web_service/engine/test_compiled.py)",
    "treelite": "web_service/engine/boosters.py (tests/web_service/engine/test_boosters.py)",
    "prometheus-client": "web_service/metrics.py Pending (tests/web_service/test_prometheus_internals.py)",
}


def test_every_package_has_one_version_in_every_category_that_locks_it() -> None:
    # `make test` installs all categories into one environment, and the slim image installs [slim]
    # as the versions [packages] was tested with: a second version would be a lock that lies.
    versions: dict[str, dict[str, str]] = {}
    for category in CATEGORIES:
        for name, entry in LOCK[category].items():
            if "version" in entry:
                versions.setdefault(name, {})[category] = entry["version"]
    split = {name: seen for name, seen in versions.items() if len(set(seen.values())) > 1}
    assert not split, f"locked at more than one version: {split}"


@pytest.mark.parametrize("name", NOT_FOR_SERVING)
def test_serving_installs_none_of_what_only_training_batch_or_the_reports_need(name: str) -> None:
    assert name not in LOCK["default"], f"{name} is in [packages]: `make run` and the image would carry it"


def test_the_slim_image_has_no_model_library() -> None:
    assert not {"scikit-learn", "scipy", "skops", "treelite", "mlflow-skinny"} & set(LOCK["slim"])


@pytest.mark.parametrize("name", INTERNALS_USED)
def test_a_package_whose_internals_the_service_reads_is_pinned_to_a_minor_release(name: str) -> None:
    spec = PIPFILE["packages"][name]
    # ~=X.Y.Z admits X.Y.* only; ~=X.Y would admit the next minor release, internals changed or not.
    assert re.fullmatch(r"~=\d+\.\d+\.\d+|==[\d.]+", spec), (
        f"{name} is {spec!r}: {INTERNALS_USED[name]} reads its internals; pin it with ~=X.Y.Z"
    )
