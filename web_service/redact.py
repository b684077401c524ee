"""What the service may show of a location: URIs without their secrets, paths without the machine.

Where the model came from is named on the open `/model`, in the metrics' `source` label and in
every start-up line. A location can carry a secret: a user and password in a tracking URI
(`http://alice:s3cret@mlflow:5000`), a token in a query (`?token=...`, a presigned URL's
`X-Amz-Signature`). Descriptions are built with `redact` so that nothing downstream can leak
one; only what is shown changes, connections use the real value.

- Userinfo becomes `***` as a whole: a user name may itself be a token (`https://<token>@host`).
- Every query value becomes `***`, whatever its key: no list of secret-looking keys is complete
  (Azure's `sig`, Google's `X-Goog-Signature`, ...). The keys stay, to show what was there.
- A fragment becomes `#***` (OAuth puts access tokens there).

Logs keep machine paths: they are the operator's. What the open endpoints show (`shown`) also
leaves the machine out: a path under the service's own folder is relative to it (`mlruns`), one
under MODEL_CACHE_DIR starts with `$MODEL_CACHE_DIR`, one under the home folder with `~`, and
any other keeps only its last part (`…/lin_reg.bin`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from web_service.settings import Environ, model_cache_dir

HIDDEN = "***"
# The folder the service runs from: the repo root, or /app in the image.
APP_ROOT = Path(__file__).resolve().parent.parent
# scheme://..., up to white space, quotes or brackets, and not ending in punctuation.
URI = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()\[\]]*[^\s'\"<>()\[\].,;:]")
# A URI's scheme, and its userinfo: up to the last "@" before the path, since a password may
# hold an "@" that nobody encoded.
SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^/]*@)?")
# Where a path may start in a description: at the start, after a space, a quote, "(", "=", "[",
# "," or "file:", or as a URI's path after "sqlite:///"; never inside a URI or a relative path.
PATH_START = r"(?:^|(?<=[\s(=,'\"\[])|(?<=file:)|(?<=:///))"
PATH_END = r"(?=[\s,;()'\"\]]|$)"
ABSOLUTE_PATH = re.compile(PATH_START + r"/[^\s,;()'\"\[\]]*")


def redact_uri(uri: str) -> str:
    """`uri` with its userinfo, query values and fragment replaced by ***; anything else as it is."""
    if not SCHEME.match(uri):
        return uri
    rest, hash_mark, fragment = uri.partition("#")
    rest, question_mark, query = rest.partition("?")
    rest = SCHEME.sub(lambda found: found[1] + (f"{HIDDEN}@" if found[2] else ""), rest, count=1)
    fields = [f"{field.partition('=')[0]}={HIDDEN}" if "=" in field else HIDDEN for field in query.split("&")]
    return rest + question_mark + ("&".join(fields) if query else "") + hash_mark + (HIDDEN if fragment else "")


def redact(text: str) -> str:
    """`text` with every URI in it redacted: a description, or a library's error message."""
    return URI.sub(lambda found: redact_uri(found[0]), text)


def shown(text: str, roots: Mapping[Path, str]) -> str:
    """`text` as the open endpoints may show it: redacted, and its absolute paths made machine-free.

    `roots` maps folders to what stands for them (`display_roots`); the longest that holds a
    path wins, and a path under none keeps only its last part.
    """
    text = redact(text)
    for root, label in sorted(roots.items(), key=lambda item: -len(str(item[0]))):
        pattern = re.compile(PATH_START + re.escape(str(root)) + r"(?:(/)|" + PATH_END + ")")
        text = pattern.sub(lambda found, label=label: _relative(label, found[1] or ""), text)
    return ABSOLUTE_PATH.sub(lambda found: "…/" + found[0].rstrip("/").rpartition("/")[2], text)


def shown_tree(value: Any, roots: Mapping[Path, str]) -> Any:
    """`shown` applied to every string in a tree of dicts and lists (a training record)."""
    if isinstance(value, str):
        return shown(value, roots)
    if isinstance(value, Mapping):
        return {key: shown_tree(item, roots) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [shown_tree(item, roots) for item in value]
    return value


def display_roots(environ: Environ) -> dict[Path, str]:
    """The folders a shown path is told relative to: the service's own, MODEL_CACHE_DIR, home."""
    roots = {APP_ROOT: ""}
    home = Path(environ.get("HOME") or "/")
    if home.is_absolute() and home != Path("/"):  # a service user's home may be "/" or unset
        roots[home] = "~"
    cache = model_cache_dir(environ)
    if cache.is_absolute():  # a relative one shows no machine already
        roots[cache] = "$MODEL_CACHE_DIR"
    return roots


def _relative(label: str, slash: str) -> str:
    # The service's own folder has no label: `/app/mlruns` is shown as `mlruns`, `/app` as `.`.
    if not label:
        return "" if slash else "."
    return label + slash
