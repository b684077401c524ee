"""Exit 0 if the service on this host answers GET /ready with 200, else 1: the image's HEALTHCHECK.

    python -m web_service.healthcheck

Standard library only and no import of the app, so it costs a container a few milliseconds. It
asks the port the server binds (BIND, else PORT, else 9696) on the loopback address.
"""

from __future__ import annotations

import http.client
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

DEFAULT_PORT = 9696


def ready_url(environ: Mapping[str, str]) -> str:
    """Where this host's server answers /ready, from the same variables gunicorn.conf.py reads."""
    bind = environ.get("BIND", "").strip()
    port = bind.rsplit(":", 1)[1] if ":" in bind else environ.get("PORT", "").strip() or str(DEFAULT_PORT)
    return f"http://127.0.0.1:{port}/ready"


def main() -> int:
    url = ready_url(os.environ)
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:  # also a PORT that is not a number
        print(f"not ready: {url}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
