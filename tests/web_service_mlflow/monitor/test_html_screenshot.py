"""report.html in a real headless browser: it renders, wide, with its plots drawn below the fold."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow  # headless Chromium

WIDTH, HEIGHT = 1280, 2400
CURRENT_ORANGE = np.array([224, 112, 42])  # html.CURRENT_COLOR: only the plots draw with it


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is not installed: `make system-tools` installs it (apt-get install chromium)"
    return found


def screenshot(page, folder) -> np.ndarray:
    shot = folder / "shot.png"
    done = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={folder / 'profile'}", f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={shot}",
         page.as_uri()],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    with Image.open(shot) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def test_the_report_renders_with_its_plots_in_a_real_browser(reports, tmp_path):
    pixels = screenshot(reports["moved"].output / "report.html", tmp_path)
    height, width, _ = pixels.shape
    assert width >= WIDTH and height >= HEIGHT
    assert pixels.std() > 20  # not one blank colour
    lower = pixels[height // 2 :]
    assert (lower.min(axis=2) < 200).mean() > 0.01  # text, tables and the error plot below the middle
    orange = np.abs(pixels - CURRENT_ORANGE).max(axis=2) < 30
    assert orange.sum() > 500, "no plot was drawn: the current rides' orange is missing"
    assert orange[height // 2 :].sum() > 100, "the error plot, in the lower half, was not drawn"
