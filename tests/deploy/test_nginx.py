"""Elastic Beanstalk's nginx with this repo's .platform settings, for real, in front of real Gunicorn.

The server block stands for the one Elastic Beanstalk writes on the Docker platform: it
includes .platform/nginx/conf.d/*.conf at http level and conf.d/elasticbeanstalk/*.conf inside
the server that proxies to the container.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
import requests

from harness.gunicorn import gunicorn
from harness.processes import free_port, wait_answering
from tests.conftest import REPO

pytestmark = pytest.mark.e2e
PLATFORM = REPO / ".platform" / "nginx" / "conf.d"
RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40}
LIMIT = 1_048_576
JSON = {"Content-Type": "application/json"}


def nginx_conf(workdir, port: int, upstream: str) -> str:
    return f"""
daemon off;
master_process off;  # one process, as the user running the tests: it can write its temp folders
pid {workdir}/nginx.pid;
error_log {workdir}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {workdir}/access.log;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    include {PLATFORM}/*.conf;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass {upstream};
            proxy_http_version 1.1;
        }}
        include {PLATFORM}/elasticbeanstalk/*.conf;
    }}
}}
"""


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("nginx")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    with gunicorn("web_service_mlflow.predict:app", workdir / "gunicorn.log") as server:
        port = free_port()
        (workdir / "nginx.conf").write_text(nginx_conf(workdir, port, server.url))
        checked = subprocess.run([nginx, "-t", "-p", str(workdir), "-c", str(workdir / "nginx.conf")],
                                 capture_output=True, text=True, check=False)  # fmt: skip
        assert checked.returncode == 0, checked.stderr
        process = subprocess.Popen([nginx, "-p", str(workdir), "-c", str(workdir / "nginx.conf")])
        url = f"http://127.0.0.1:{port}"
        try:
            wait_answering(process, lambda: requests.get(f"{url}/health", timeout=2).ok, "nginx",
                           lambda: (workdir / "error.log").read_text(errors="replace"), 20, every=0.1)  # fmt: skip
            yield url
        finally:
            process.terminate()
            process.wait(timeout=20)


def too_large(received):
    return {"error": {
        "code": "request_entity_too_large",
        "message": f"the body is over the {LIMIT}-byte limit (MAX_BODY_BYTES)",
        "details": [{"field": "body", "expected": f"at most {LIMIT} bytes", "received": received}],
    }}  # fmt: skip


def test_a_ride_through_nginx_gets_the_service_answer(proxied):
    response = requests.post(f"{proxied}/predict", json=RIDE, timeout=10)

    assert response.status_code == 200
    assert response.json()["duration"] == 45.50965007660852


def test_readiness_answers_through_nginx(proxied):
    assert requests.get(f"{proxied}/ready", timeout=10).status_code == 200


def test_nginx_refuses_a_body_over_the_api_limit_in_the_api_error_shape(proxied):
    body = b"[" + b" " * (2 * LIMIT) + b"]"

    response = requests.post(f"{proxied}/predict", data=body, headers=JSON, timeout=10)

    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == too_large(len(body))


def test_nginx_refuses_a_chunked_body_over_the_limit_in_the_same_shape(proxied):
    chunks = (b" " * 65536 for _ in range(40))  # 2.5 MB with no declared length

    response = requests.post(f"{proxied}/predict", data=chunks, headers=JSON, timeout=10)

    assert response.status_code == 413
    received = response.json()["error"]["details"][0]["received"]
    # nginx reports how much it had read when it stopped (1.22), or nothing (null) if it read none.
    assert received is None or received >= LIMIT
    assert response.json() == too_large(received)


def test_a_body_just_under_the_limit_reaches_the_service(proxied):
    padding = " " * (LIMIT - 200)
    body = '{"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40}' + padding

    response = requests.post(f"{proxied}/predict", data=body, headers=JSON, timeout=10)

    assert response.status_code == 200
