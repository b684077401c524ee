"""Batch scoring of http:// inputs: read by range requests from a real server on loopback.

nginx serves files as a web server or CDN does, answering Range with 206; Python's own
SimpleHTTPRequestHandler stands for a server that ignores Range and sends the whole file.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests

from harness.backends import BUCKET
from harness.gunicorn import MODEL_VARIABLES
from harness.processes import free_port, wait_answering
from tests.conftest import REPO
from tests.integration.test_batch_s3 import one_line, same, tlc_file, without_source

pytestmark = pytest.mark.integration
NAME = "green_tripdata_2021-01.parquet"


@dataclass(frozen=True)
class Site:
    url: str  # http://127.0.0.1:<port>
    log: Path  # nginx's access log


def nginx_conf(workdir: Path, root: Path, port: int) -> str:
    temp = "\n".join(f"    {kind}_temp_path {workdir}/{kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                          "uwsgi", "scgi"))  # fmt: skip
    return f"""
daemon off;
master_process off;  # one process, as the user running the tests
pid {workdir}/nginx.pid;
error_log {workdir}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {workdir}/access.log;
{temp}
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


@contextmanager
def nginx(root: Path, workdir: Path) -> Iterator[Site]:
    """nginx serving the files under `root` on a free loopback port, as static files (Range honoured)."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    (workdir / "nginx.conf").write_text(nginx_conf(workdir, root, port))
    process = subprocess.Popen([binary, "-p", str(workdir), "-c", str(workdir / "nginx.conf")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # fmt: skip
    site = Site(f"http://127.0.0.1:{port}", workdir / "access.log")
    try:
        # Any answer will do: the root folder itself is no file to serve.
        wait_answering(process, lambda: requests.head(site.url, timeout=2) is not None, "nginx",
                       lambda: (workdir / "error.log").read_text(errors="replace"), 20, every=0.1)  # fmt: skip
        yield site
    finally:
        process.terminate()
        process.wait(timeout=20)


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002 (the base class's name)
        pass


@contextmanager
def whole_file_server(root: Path) -> Iterator[str]:
    """Python's http.server on loopback: it answers every GET with 200 and the whole file, Range or not."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("www")
    tlc_file(root / NAME, 2500, seed=7)
    return root


@pytest.fixture(scope="module")
def site(files, tmp_path_factory) -> Iterator[Site]:
    with nginx(files, tmp_path_factory.mktemp("nginx")) as running:
        yield running


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("batch") / "model-cache"


def batch(cache: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in MODEL_VARIABLES}
    env |= {"PYTHONPATH": str(REPO), "MODEL_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "web_service_mlflow.batch", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


@pytest.mark.parametrize("query", ["", "?X-Amz-Expires=600&X-Amz-Signature=0a1b"], ids=["plain", "signed-url"])
def test_an_http_input_read_by_range_requests_scores_as_the_local_file(files, site, cache, tmp_path, query):
    url = f"{site.url}/{NAME}{query}"

    assert_scores_as_the_local_file(url, files / NAME, cache, tmp_path)
    assert f'"GET /{NAME}{query} HTTP/1.1" 206 ' in site.log.read_text()  # nginx did answer by range


def assert_scores_as_the_local_file(url: str, path: Path, cache: Path, tmp_path: Path) -> None:
    remote = batch(cache, url, "--output", str(tmp_path / "remote.parquet"), "--rejects", str(tmp_path / "r.parquet"))
    local = batch(cache, str(path), "--output", str(tmp_path / "local.parquet"), "--rejects", str(tmp_path / "l.pq"))

    assert remote.returncode == local.returncode == 0, remote.stderr + local.stderr
    assert same(pq.read_table(tmp_path / "remote.parquet"), pq.read_table(tmp_path / "local.parquet"))
    rejects = pq.read_table(tmp_path / "r.parquet")
    assert same(without_source(rejects), without_source(pq.read_table(tmp_path / "l.pq")))
    assert set(rejects["source"].to_pylist()) == {url}


def test_a_presigned_s3_get_url_is_read_like_any_http_input(files, s3, cache, tmp_path):
    # The usual way to hand someone one S3 object over https: the signature covers GET (with Range), not HEAD.
    from botocore.config import Config

    s3.client().upload_file(str(files / NAME), BUCKET, f"shared/{NAME}")
    signer = s3.client(config=Config(signature_version="s3v4"))
    url = signer.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": f"shared/{NAME}"}, ExpiresIn=600)
    assert requests.get(url, headers={"Range": "bytes=0-3"}, timeout=10).status_code == 206  # the URL does work

    assert_scores_as_the_local_file(url, files / NAME, cache, tmp_path)


def test_an_http_server_that_ignores_range_requests_ends_in_one_line_naming_the_url(files, cache, tmp_path):
    with whole_file_server(files) as server:
        url = f"{server}/{NAME}"
        done = batch(cache, url, "--output", str(tmp_path / "scored.parquet"))

    line = one_line(done)
    assert line.startswith(f"cannot score: {url}: "), line
    assert "range requests" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("case", ["not-found", "nothing-listening"])
def test_a_url_it_cannot_fetch_ends_in_one_line_naming_it(site, cache, tmp_path, case):
    where = {"not-found": site.url, "nothing-listening": f"http://127.0.0.1:{free_port()}"}[case]
    url = f"{where}/green_tripdata_2020-12.parquet"

    line = one_line(batch(cache, url, "--output", str(tmp_path / "scored.parquet")))

    assert line.startswith(f"cannot score: {url}: "), line
    assert ("404" in line) if case == "not-found" else ("refused" in line.lower()), line
    assert list(tmp_path.iterdir()) == []
