"""Where batch scoring reads and writes: local paths, s3:// (boto3, as the model loader) and http(s).

Inputs are opened for random access, so that pyarrow reads only the footer and the five columns
it needs, by range requests when the file is remote: a yellow month is never downloaded whole.

Outputs are written atomically. A file goes to a temporary name beside it and is renamed; a
folder is filled under a temporary name and renamed, its `_SUCCESS` marker written last. On S3,
where nothing renames, the parts are uploaded under `<out>/_temporary/` and copied into place
only when the whole run succeeded; `_SUCCESS` is the last key written. A failed run leaves the
previous output, or nothing.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.parquet as pq

from web_service_mlflow.data import TripDataError
from web_service_mlflow.sources import s3_client

SUCCESS = "_SUCCESS"


class OutputError(TripDataError):
    """The output location cannot be written as asked."""


TEMPORARY = "_temporary"
READ_AHEAD = 1 << 20  # bytes per range request beyond what pyarrow asks for: fewer round trips


def is_s3(location: str) -> bool:
    return location.startswith("s3://")


def is_http(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def _bucket_key(location: str) -> tuple[str, str]:
    parsed = urlparse(location)
    return parsed.netloc, parsed.path.lstrip("/")


# --- reading -------------------------------------------------------------------------------------


class RangeReader(io.RawIOBase):
    """A read-only, seekable file over range requests (S3 GetObject or HTTP Range)."""

    def __init__(self, size: int, fetch: Any) -> None:
        self.size, self._fetch, self._position = size, fetch, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        self._position = base + offset
        return self._position

    def readinto(self, buffer: Any) -> int:
        end = min(self._position + len(buffer), self.size)
        if end <= self._position:
            return 0
        data = self._fetch(self._position, end - 1)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


def _s3_reader(location: str) -> RangeReader:
    bucket, key = _bucket_key(location)
    client = s3_client()
    size = client.head_object(Bucket=bucket, Key=key)["ContentLength"]

    def fetch(first: int, last: int) -> bytes:
        return client.get_object(Bucket=bucket, Key=key, Range=f"bytes={first}-{last}")["Body"].read()

    return RangeReader(size, fetch)


def _http_reader(location: str) -> RangeReader:
    import requests

    session = requests.Session()
    # The size from a ranged GET, not HEAD: presigned S3 URLs are signed for GET alone.
    probe = session.get(location, headers={"Range": "bytes=0-0"}, timeout=30, stream=True)
    probe.close()
    probe.raise_for_status()
    if probe.status_code != 206 or "/" not in probe.headers.get("Content-Range", ""):
        raise OSError(f"the server does not answer range requests (status {probe.status_code})")
    size = int(probe.headers["Content-Range"].rsplit("/", 1)[1])

    def fetch(first: int, last: int) -> bytes:
        answer = session.get(location, headers={"Range": f"bytes={first}-{last}"}, timeout=60)
        answer.raise_for_status()
        if answer.status_code != 206:  # a server that ignores Range would send the whole file each time
            raise OSError(f"the server does not answer range requests (status {answer.status_code})")
        return answer.content

    return RangeReader(size, fetch)


@contextmanager
def parquet_file(location: str) -> Iterator[pq.ParquetFile]:
    """Open a TLC parquet file for reading; a failure to open it is one TripDataError naming it.

    Only the opening is judged here: what fails later, while reading, scoring or writing, says so
    itself (see `reading`).
    """
    with reading(location):
        if is_s3(location):
            source: Any = io.BufferedReader(_s3_reader(location), READ_AHEAD)
        elif is_http(location):
            source = io.BufferedReader(_http_reader(location), READ_AHEAD)
        elif Path(location).is_dir():
            raise TripDataError(f"{location}: is a folder; name the parquet files in it")
        else:
            source = location
        parquet = pq.ParquetFile(source)
    with parquet:
        yield parquet


@contextmanager
def reading(location: str) -> Iterator[None]:
    """Turn what goes wrong while reading `location` into one TripDataError naming it."""
    location = shown(location)
    try:
        yield
    except TripDataError:
        raise
    except FileNotFoundError:
        raise TripDataError(f"{location}: no such file") from None
    except pa.ArrowInvalid as error:
        raise TripDataError(f"{location}: not a parquet file ({_short(error)})") from None
    except Exception as error:  # network, permissions, S3: what failed, in a line
        raise TripDataError(f"{location}: cannot read it ({_short(error)})") from None


@contextmanager
def writing(location: str) -> Iterator[None]:
    """Turn what goes wrong while writing to `location` (a full disk, S3 refusing) into one line."""
    try:
        yield
    except TripDataError:
        raise
    except Exception as error:
        raise OutputError(f"{location}: cannot write it ({_short(error)})") from None


def shown(location: str) -> str:
    """A location as messages show it: a URL's query (a presigned signature) left out."""
    return location.split("?", 1)[0] + "?..." if is_http(location) and "?" in location else location


def _short(error: BaseException) -> str:
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    return " ".join(str(text).split())[:300]


# --- writing -------------------------------------------------------------------------------------


@dataclass
class Destination:
    """A parquet file, or a folder of parts, written atomically (see the module docstring)."""

    location: str
    folder: bool
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def check(self) -> None:
        """Refuse, before any work, to replace what this command did not write."""
        if is_s3(self.location):
            self._check_s3()
            return
        path = Path(self.location)
        if not path.parent.is_dir():
            raise OutputError(f"{self.location}: the folder {path.parent} does not exist")
        if not os.access(path.parent, os.W_OK):
            raise OutputError(f"{self.location}: cannot write in {path.parent}")
        if self.folder and path.is_file():
            raise OutputError(f"{self.location}: is a file, but several inputs (or Spark) write a folder")
        if not self.folder and path.is_dir():
            raise OutputError(f"{self.location}: is a folder; one input on the local engine writes one file")
        if self.folder and path.is_dir() and not (path / SUCCESS).exists() and any(path.iterdir()):
            raise OutputError(
                f"{self.location}: a folder that this command did not write (no {SUCCESS}); name a new or empty folder"
            )

    def _check_s3(self) -> None:
        bucket, key = _bucket_key(self.location.rstrip("/"))
        if not key:
            raise OutputError(f"{self.location}: name a key or prefix in the bucket, not the bucket alone")
        with writing(self.location):  # credentials and endpoint checked before the model loads
            client = s3_client()
            found = client.list_objects_v2(Bucket=bucket, Prefix=f"{key}/", MaxKeys=2).get("Contents", [])
            ours = bool(_keys(client, bucket, f"{key}/{SUCCESS}"))
        if self.folder and found and not ours:
            raise OutputError(
                f"{self.location}: a prefix holding keys that this command did not write (no {SUCCESS}); "
                "name a new or empty prefix"
            )

    # Where parts are written before the commit: a local folder, or an S3 prefix.
    @property
    def staging(self) -> str:
        if is_s3(self.location):
            return f"{self.location.rstrip('/')}/{TEMPORARY}/{self.token}"
        path = Path(self.location)
        return str(path.parent / f".{path.name}.{self.token}.tmp")

    def part(self, name: str) -> str:
        """Where the part `name` is staged (the file itself when the output is one file)."""
        if not self.folder and not is_s3(self.location):
            return self.staging
        if not self.folder:
            return f"{self.staging}/{Path(self.location).name}"
        return f"{self.staging}/{name}"

    def prepare(self) -> None:
        if self.folder and not is_s3(self.location):
            Path(self.staging).mkdir()

    def commit(self) -> None:
        if is_s3(self.location):
            with writing(self.location):
                _commit_s3(self)
            return
        target, staged = Path(self.location), Path(self.staging)
        if not self.folder:
            os.replace(staged, target)
            return
        (staged / SUCCESS).touch()
        if target.exists():  # an earlier output of this command: swap, then remove it
            old = target.parent / f".{target.name}.{self.token}.old"
            os.replace(target, old)
            try:
                os.replace(staged, target)
            except BaseException:
                os.replace(old, target)  # the earlier output stays where it was
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staged, target)

    def abort(self) -> None:
        """Remove what was staged; best effort on S3, where the failure may be S3 itself."""
        if is_s3(self.location):
            try:
                _delete_prefix(self.staging)
            except Exception as error:
                print(f"could not remove {self.staging}/ ({_short(error)}); delete it by hand", file=sys.stderr)
            return
        staged = Path(self.staging)
        if staged.is_dir():
            shutil.rmtree(staged, ignore_errors=True)
        else:
            staged.unlink(missing_ok=True)


@contextmanager
def part_writer(location: str, schema: pa.Schema) -> Iterator[pq.ParquetWriter]:
    """A streaming parquet writer to a staged part: a local path, or an S3 key uploaded on close."""
    if not is_s3(location):
        with pq.ParquetWriter(location, schema) as writer:
            yield writer
        return
    local = Path(tempfile.gettempdir()) / f"part-{uuid.uuid4().hex}.parquet"  # TMPDIR: tempfile reads it
    try:
        with pq.ParquetWriter(str(local), schema) as writer:
            yield writer
        bucket, key = _bucket_key(location)
        s3_client().upload_file(str(local), bucket, key)
    finally:
        local.unlink(missing_ok=True)


def _commit_s3(destination: Destination) -> None:
    client = s3_client()
    bucket, target = _bucket_key(destination.location.rstrip("/"))
    _, staging = _bucket_key(destination.staging)
    staged = _keys(client, bucket, staging + "/")
    if not destination.folder:
        client.copy_object(Bucket=bucket, Key=target, CopySource={"Bucket": bucket, "Key": staged[0]})
        _delete_keys(client, bucket, staged)
        return
    # Readers wait for _SUCCESS: it goes first, and comes back only when every part is in place.
    client.delete_object(Bucket=bucket, Key=f"{target}/{SUCCESS}")
    placed = set()
    for key in staged:
        final = f"{target}/{key[len(staging) + 1 :]}"
        client.copy_object(Bucket=bucket, Key=final, CopySource={"Bucket": bucket, "Key": key})
        placed.add(final)
    # Parts of an earlier run that this one did not replace would be read as part of it.
    stale = [key for key in _keys(client, bucket, target + "/") if key not in placed and f"/{TEMPORARY}/" not in key]
    _delete_keys(client, bucket, stale)
    client.put_object(Bucket=bucket, Key=f"{target}/{SUCCESS}", Body=b"")
    _delete_keys(client, bucket, staged)


def _delete_prefix(location: str) -> None:
    client = s3_client()
    bucket, prefix = _bucket_key(location)
    _delete_keys(client, bucket, _keys(client, bucket, prefix.rstrip("/") + "/"))


def _keys(client: Any, bucket: str, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def _delete_keys(client: Any, bucket: str, keys: list[str]) -> None:
    for start in range(0, len(keys), 1000):
        chunk = [{"Key": key} for key in keys[start : start + 1000]]
        client.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
