"""Optional bearer-token authentication for the prediction endpoints (API_TOKEN)."""

from __future__ import annotations

import hmac
from collections.abc import Collection

from flask import Flask, request

from web_service.errors import ErrorDetail, Unauthorized


def init_auth(app: Flask, tokens: Collection[str], protected_endpoints: Collection[str]) -> None:
    """Require `Authorization: Bearer <one of tokens>` on the named endpoints; no tokens, no check."""
    if not tokens:
        return
    expected = [token.encode() for token in tokens]

    @app.before_request
    def require_token() -> None:
        if request.endpoint not in protected_endpoints:
            return
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        # Compare with every token, always: the time taken says nothing about which one is close.
        matches = [hmac.compare_digest(given.strip().encode(), token) for token in expected]
        if scheme.lower() != "bearer" or not any(matches):
            raise Unauthorized(
                "this endpoint needs Authorization: Bearer <token>",
                [ErrorDetail("Authorization", "Bearer <token>", "a wrong token" if given else "nothing")],
            )
