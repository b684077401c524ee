"""/docs in a real headless Chromium: Swagger UI from local files, and a person's click gets an answer.

Chromium is driven over its DevTools protocol (CDP) through a WebSocket client written here with
the standard library, so the test needs no browser-automation package. It clicks as a person does
(mouse events at the buttons' places, typed text), records every request the page makes, and
keeps a screenshot. UPDATE_SCREENSHOTS=1 writes that screenshot to docs/images/docs-page.png.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

from harness import REPO
from harness.gunicorn import gunicorn

pytestmark = pytest.mark.e2e
SCREENSHOT = REPO / "docs" / "images" / "docs-page.png"
WIDTH, HEIGHT = 1280, 900
RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40}
TOKEN = "docs-page-token"
PREDICT = "#operations-default-predict"  # Swagger UI's id for the operation "predict" (untagged)
POST_GREEN = np.array([73, 204, 144])  # Swagger UI's colour for POST operations (#49cc90)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("chromium is not installed: `make system-tools` installs it (apt-get install chromium)")
    return found


class DevTools:
    """One CDP connection: commands answered in order, events kept for the test to read."""

    def __init__(self, url: str, timeout: float = 60) -> None:
        where = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((where.hostname, where.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {where.path} HTTP/1.1\r\nHost: {where.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        self.stream = self.sock.makefile("rb")
        status = self.stream.readline()
        assert b" 101 " in status, status
        while self.stream.readline() not in (b"\r\n", b""):
            pass
        self.events: list[dict[str, Any]] = []
        self.ids = iter(range(1, 1_000_000))

    def close(self) -> None:
        self.stream.close()
        self.sock.close()

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Run one command; fail with CDP's error if it has one."""
        number = next(self.ids)
        message = {"id": number, "method": method, "params": params} | ({"sessionId": session} if session else {})
        self._write(json.dumps(message).encode())
        while True:
            answer = self._read()
            if answer.get("id") == number:
                assert "error" not in answer, f"{method}: {answer['error']}"
                return answer["result"]
            self.events.append(answer)

    def _write(self, data: bytes) -> None:
        # RFC 6455: one final text frame, masked as a client's must be.
        size = len(data)
        length = bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + size.to_bytes(2, "big")
        if size >= 1 << 16:
            length = bytes([0x80 | 127]) + size.to_bytes(8, "big")
        mask = os.urandom(4)
        masked = (int.from_bytes(data, "big") ^ int.from_bytes((mask * (size // 4 + 1))[:size], "big")).to_bytes(
            size, "big"
        )
        self.sock.sendall(b"\x81" + length + mask + masked)

    def _read(self) -> dict[str, Any]:
        message = b""
        while True:
            first, second = self.stream.read(2)
            size = second & 0x7F
            if size >= 126:
                size = int.from_bytes(self.stream.read(2 if size == 126 else 8), "big")
            payload = self.stream.read(size)  # a server's frames are not masked
            if first & 0x0F == 0x8:
                raise ConnectionError("Chromium closed the DevTools connection")
            message += payload
            if first & 0x80 and first & 0x0F in (0x0, 0x1, 0x2):
                return json.loads(message)


class Page:
    """A tab, driven as a person would: wait for things to show, click them, type."""

    def __init__(self, tools: DevTools, session: str) -> None:
        self.tools, self.session = tools, session

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        return self.tools.send(method, self.session, **params)

    def evaluate(self, expression: str) -> Any:
        found = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in found, found["exceptionDetails"]
        return found["result"].get("value")

    def wait(self, expression: str, what: str, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if value := self.evaluate(expression):
                return value
            time.sleep(0.1)
        pytest.fail(f"the page never showed {what} ({expression})")

    def click(self, selector: str) -> None:
        """Scroll the element into view and press the mouse at its centre, as a person's click."""
        self.wait(f"!!document.querySelector({json.dumps(selector)})", selector)
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def type(self, selector: str, text: str) -> None:
        self.click(selector)
        self.send("Input.insertText", text=text)

    def text(self, selector: str) -> str:
        return self.evaluate(f"document.querySelector({json.dumps(selector)})?.innerText ?? ''")

    def events(self, method: str) -> list[dict[str, Any]]:
        self.evaluate("0")  # read what has arrived so far
        return [
            e["params"] for e in self.tools.events if e.get("method") == method and e.get("sessionId") == self.session
        ]


@contextmanager
def browser(folder: Path) -> Iterator[Page]:
    """Headless Chromium with one tab, which may reach loopback only: any other host fails to resolve."""
    profile = folder / "profile"
    port_file = profile / "DevToolsActivePort"  # written by Chromium once it listens
    port_file.unlink(missing_ok=True)
    with (folder / "chromium.log").open("w") as log:
        process = subprocess.Popen(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--remote-debugging-port=0",
             f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    tools = None
    try:
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and len(port_file.read_text().split()) == 2) and time.monotonic() < deadline:
            assert process.poll() is None, (folder / "chromium.log").read_text()[-2000:]
            time.sleep(0.1)
        port, path = port_file.read_text().split()
        tools = DevTools(f"ws://127.0.0.1:{port}{path}")
        target = tools.send("Target.createTarget", url="about:blank")["targetId"]
        session = tools.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        page = Page(tools, session)
        for domain in ("Page", "Network", "Runtime", "Log"):
            page.send(f"{domain}.enable")
        page.send("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False)
        yield page
    finally:
        if tools is not None:
            tools.close()
        process.terminate()
        process.wait(timeout=30)


def open_docs(page: Page, url: str) -> None:
    page.send("Page.navigate", url=f"{url}/docs")
    page.wait(f"!!document.querySelector('{PREDICT}')", "the POST /predict operation")


def execute_the_example(page: Page, status: int) -> dict[str, Any] | str:
    """Open POST /predict, 'Try it out' with the example ride, 'Execute'; the answer the page shows."""
    if not page.evaluate(f"!!document.querySelector('{PREDICT} .try-out__btn')"):
        page.click(f"{PREDICT} .opblock-summary")
        page.click(f"{PREDICT} .try-out__btn")
    assert json.loads(page.wait(f"document.querySelector('{PREDICT} textarea.body-param__text')?.value",
                                "the example ride in the request body")) == RIDE  # fmt: skip
    page.click(f"{PREDICT} button.execute")
    shown = f"{PREDICT} .live-responses-table tr.response .response-col_status"
    page.wait(f"document.querySelector('{shown}')?.innerText.trim() === '{status}'", f"a {status} answer")
    body = page.text(f"{PREDICT} .live-responses-table tr.response .highlight-code pre")
    return json.loads(body)


def requests_made(page: Page) -> list[str]:
    """Every URL the page asked for, but the data: URLs of Swagger UI's icons (no request leaves for those)."""
    urls = [event["request"]["url"] for event in page.events("Network.requestWillBeSent")]
    return [url for url in urls if not url.startswith("data:")]


def problems(page: Page) -> list[str]:
    """Script errors, and anything the Content-Security-Policy blocked."""
    found = [f"exception: {e['exceptionDetails']}" for e in page.events("Runtime.exceptionThrown")]
    for entry in (event["entry"] for event in page.events("Log.entryAdded")):
        if entry["source"] in ("security", "javascript") or "Content Security Policy" in entry["text"]:
            found.append(f"{entry['source']}: {entry['text']}")
    return found


def screenshot(page: Page, path: Path) -> np.ndarray:
    """The page from its top to the end of the answer /predict gave."""
    answer = f"{PREDICT} .live-responses-table"
    bottom = page.evaluate(f"document.querySelector('{answer}').getBoundingClientRect().bottom + window.scrollY")
    clip = {"x": 0, "y": 0, "width": WIDTH, "height": min(bottom + 16, 4000), "scale": 1}
    shot = page.send("Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True)
    path.write_bytes(base64.b64decode(shot["data"]))
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def looks_like_swagger(pixels: np.ndarray) -> None:
    height, width, _ = pixels.shape
    assert width == WIDTH and 600 <= height <= 4000, pixels.shape
    assert pixels.std() > 20, "the screenshot is one blank colour"
    green = np.abs(pixels - POST_GREEN).max(axis=2) < 30
    assert green.sum() > 2000, "no POST operation drawn: Swagger UI's green is missing"


def test_docs_shows_swagger_ui_from_local_files_and_a_click_predicts_the_example_ride(tmp_path):
    with browser(tmp_path) as page, gunicorn("web_service_mlflow.predict:app", tmp_path / "server.log") as server:
        expected = requests.post(f"{server.url}/predict", json=RIDE, timeout=10).json()
        open_docs(page, server.url)
        assert page.text(".swagger-ui .info .title").startswith("Ride-duration prediction service")
        answer = execute_the_example(page, 200)
        pixels = screenshot(page, tmp_path / "docs-page.png")
        made, broken = requests_made(page), problems(page)

    assert answer == expected  # the page shows exactly what the service answers
    assert made and all(url.startswith(f"{server.url}/") for url in made), made  # nothing left loopback
    loaded = {urllib.parse.urlsplit(url).path for url in made}
    assert {"/docs", "/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/openapi.json", "/predict"} <= loaded
    assert not broken, broken  # no script error, nothing blocked by the Content-Security-Policy
    looks_like_swagger(pixels)
    if os.environ.get("UPDATE_SCREENSHOTS"):
        shutil.copyfile(tmp_path / "docs-page.png", SCREENSHOT)
    with Image.open(SCREENSHOT) as kept:
        committed = np.asarray(kept.convert("RGB")).astype(int)
    looks_like_swagger(committed)
    assert abs(committed.shape[0] - pixels.shape[0]) < 0.25 * committed.shape[0], "the page's layout changed a lot"


def test_with_api_token_the_page_authorizes_with_the_bearer_token(tmp_path):
    with (
        browser(tmp_path) as page,
        gunicorn("web_service_mlflow.predict:app", tmp_path / "server.log", API_TOKEN=TOKEN) as server,
    ):
        open_docs(page, server.url)
        refused = execute_the_example(page, 401)
        page.click(".swagger-ui .auth-wrapper .authorize")
        page.type(".auth-container input", TOKEN)
        page.click(".auth-container .auth-btn-wrapper button.authorize")
        page.click(".auth-container .auth-btn-wrapper button.btn-done")
        answer = execute_the_example(page, 200)
        made, broken = requests_made(page), problems(page)

    assert refused["error"]["code"] == "unauthorized"
    assert set(answer) == {"duration", "model_version"}
    assert all(url.startswith(f"{server.url}/") for url in made), made
    assert not broken, broken
