"""Tests that run the server as root and as an unprivileged user: who to run as, and when root is missing."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# The unprivileged user a root test run drops to (setpriv, no capabilities).
NOBODY = 65534


def needs_root(needs: str) -> pytest.MarkDecorator:
    """Skip the test, saying which capability it needs, when this process is not root."""
    return pytest.mark.skipif(os.geteuid() != 0, reason=f"needs root {needs}; this process is uid {os.geteuid()}")


def unprivileged() -> dict:
    """`harness.gunicorn.gunicorn()` arguments that run the server as nobody (when root), with a model
    cache it can write; none when this process is unprivileged already."""
    if os.geteuid() != 0:
        return {}
    cache = Path(tempfile.mkdtemp(prefix="ride-duration-nobody-"))
    cache.chmod(0o777)
    return {"user": NOBODY, "MODEL_CACHE_DIR": str(cache)}
