"""The Elastic Beanstalk source bundle holds exactly what the image build needs, and EB's settings."""

from __future__ import annotations

import json
import re
import zipfile

import pytest

from deploy import beanstalk
from tests.conftest import REPO
from web_service.settings import AppSettings

pytestmark = pytest.mark.slow  # source bundles built from the repo, zipped

NEEDED_TOP_LEVEL = {
    ".dockerignore", ".ebextensions", ".platform", "Dockerfile", "Pipfile", "Pipfile.lock",
    "gunicorn.conf.py", "mlruns", "test.py", "web_service", "web_service_mlflow",
}  # fmt: skip


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> list[str]:
    out = tmp_path_factory.mktemp("eb") / "bundle.zip"
    beanstalk.write_bundle(out)
    with zipfile.ZipFile(out) as opened:
        assert opened.testzip() is None
        return opened.namelist()


def test_the_bundle_holds_the_build_context_and_beanstalk_settings_only(bundle):
    assert {name.split("/")[0] for name in bundle} == NEEDED_TOP_LEVEL


def test_the_bundle_holds_no_tests_data_or_caches(bundle):
    unwanted = re.compile(r"(^|/)(tests|bench|\.venv|\.git|\.github|\.ci|dist|__pycache__)/|\.(pyc|parquet)$")

    assert [name for name in bundle if unwanted.search(name)] == []


def test_the_bundle_holds_every_file_the_dockerfile_copies(bundle):
    for source in beanstalk.copy_sources(REPO / "Dockerfile"):
        path = REPO / source
        wanted = [source] if path.is_file() else [str(p.relative_to(REPO)) for p in path.rglob("*") if p.is_file()]
        wanted = [name for name in wanted if "__pycache__" not in name]
        assert set(wanted) <= set(bundle), source


def test_the_bundle_carries_the_embedded_default_run(bundle):
    run_id = (REPO / "mlruns" / "default_run_id").read_text().strip()

    for artifact in ("model/MLmodel", "model/model.skops", "preprocessor/preprocessor.b"):
        assert any(name.endswith(f"{run_id}/artifacts/{artifact}") for name in bundle), artifact


def test_the_same_commit_gives_the_same_zip(tmp_path):
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    beanstalk.write_bundle(first)
    beanstalk.write_bundle(second)

    assert first.read_bytes() == second.read_bytes()


def test_dockerignore_lets_in_exactly_what_the_dockerfile_copies():
    lines = (REPO / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}

    assert allowed == set(beanstalk.copy_sources(REPO / "Dockerfile"))


def test_beanstalk_checks_health_on_readiness():
    config = (REPO / ".ebextensions" / "ride-duration.config").read_text()

    assert re.search(r"^\s+Application Healthcheck URL: /ready$", config, re.MULTILINE)
    assert re.search(r"^\s+HealthCheckPath: /ready$", config, re.MULTILINE)


def test_nginx_body_limit_and_its_error_match_the_api():
    conf = (REPO / ".platform" / "nginx" / "conf.d" / "elasticbeanstalk" / "ride-duration.conf").read_text()
    limit = AppSettings().max_body_bytes
    size = re.search(r"^client_max_body_size (\d+)m;$", conf, re.MULTILINE)
    body = re.search(r"return 413 '(.*)';", conf).group(1).replace("$ride_duration_body_length", "2000000")

    assert int(size.group(1)) * 1024 * 1024 == limit
    assert json.loads(body) == {"error": {
        "code": "request_entity_too_large",
        "message": f"the body is over the {limit}-byte limit (MAX_BODY_BYTES)",
        "details": [{"field": "body", "expected": f"at most {limit} bytes", "received": 2000000}],
    }}  # fmt: skip


def test_the_command_line_reports_what_it_wrote(tmp_path, capsys):
    out = tmp_path / "eb.zip"

    assert beanstalk.main(["--out", str(out)]) == 0
    assert out.is_file() and str(out) in capsys.readouterr().out


def test_a_dockerfile_copy_line_names_its_sources(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM x AS b\nCOPY --from=b /opt/venv /opt/venv\nCOPY a.py \\\n  b/ ./\nCOPY --chown=1:1 c/ c/\n"
    )

    assert beanstalk.copy_sources(dockerfile) == ["a.py", "b", "c"]
