"""Exit 0 if the service on this host answers GET /ready with 200, else 1: the image's HEALTHCHECK.

    python -m web_service.healthcheck

Standard library only and no import of the app, so it costs a container a few milliseconds. It
asks the port the server binds (web_service.serve.bind_address: BIND, else PORT, else 9696) on the
loopback address.
"""

from __future__ import annotations

import http.client
import sys
import urllib.error
import urllib.request

from web_service.environment import Environ, read
from web_service.errors import SettingsError
from web_service.serve import bind_address


def ready_url(environ: Environ) -> str:
    """Where this host's server answers /ready: the port of the address gunicorn.conf.py binds."""
    return f"http://127.0.0.1:{bind_address(environ).rsplit(':', 1)[-1]}/ready"


def main() -> int:
    try:
        url = ready_url(read())
    except SettingsError as error:  # a PORT the server would have refused too
        print(f"not ready: {error.message}", file=sys.stderr)
        return 1
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        print(f"not ready: {url}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
