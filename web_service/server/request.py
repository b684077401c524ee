"""The request class: Flask's, with the body limit applied to chunked bodies too."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.sansio.utils import get_content_length


class BoundedRequest(Request):
    """Enforces MAX_BODY_BYTES on every body, declared or chunked.

    - A body that declares a Content-Length over the limit is refused at once (413), and one within
      it is read through Werkzeug's limited stream, as Flask does.
    - A chunked body, with no declared length, is read one byte past the limit and refused if it
      holds more: Werkzeug alone stops at the limit and silently parses a truncated body.
    """

    body_limit: int | None = None  # set per app by `bounded_request`

    @cached_property
    def declared_length(self) -> int | None:
        environ = self.environ
        return get_content_length(environ.get("CONTENT_LENGTH"), environ.get("HTTP_TRANSFER_ENCODING"))

    @property
    def max_content_length(self) -> int | None:
        limit = self.body_limit
        if limit is None:
            return None
        return limit if self.declared_length is not None else limit + 1

    def get_data(self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False) -> Any:
        if self.body_limit is not None and self.declared_length is None:
            raw = super().get_data(cache=True, parse_form_data=parse_form_data)
            if len(raw) > self.body_limit:
                raise RequestEntityTooLarge()
        return super().get_data(cache=cache, as_text=as_text, parse_form_data=parse_form_data)


def bounded_request(limit: int) -> type[BoundedRequest]:
    """A request class holding bodies to `limit` bytes."""
    return type("BoundedRequest", (BoundedRequest,), {"body_limit": limit})
