"""A local cache of downloaded runs, keyed by run ID and verified before use.

A run's artifacts never change, so once a run is here a restart needs neither the tracking
server nor S3. An entry is filled in a private temporary folder, its manifest (size and sha256
of every file) written last, then renamed into place in one step: a half-written download is
never visible. A lock file per run keeps two processes starting at once from fetching twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"


class CacheNotWritable(OSError):
    """The cache folder cannot be created, searched or written: a setting to change, not a download to retry."""


class ModelCache:
    """Folders `<root>/<run_id>/` holding a run's `model/` (and `preprocessor/`) artifacts."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def get(self, run_id: str) -> Path | None:
        """The verified entry of `run_id`, or None when absent or damaged."""
        entry = self.root / run_id
        try:
            if not (entry / MANIFEST).is_file():
                return None
        except OSError as error:  # a folder this user may not search
            raise CacheNotWritable(str(error)) from None
        if not _matches_manifest(entry):
            logger.warning("cache entry %s does not match its manifest; fetching the run again", entry)
            return None
        return entry

    def put(self, run_id: str, fill: Callable[[Path], None]) -> Path:
        """Return the entry of `run_id`, calling `fill(folder)` to download it if needed."""
        cached = self.get(run_id)  # a cache made read-only once filled still serves what it holds
        if cached is not None:
            return cached
        with self._lock(run_id):
            cached = self.get(run_id)  # another process may have filled it while we waited
            if cached is not None:
                return cached
            for abandoned in self.root.glob(f".{run_id}.*/"):  # left by a process that died mid-fetch
                shutil.rmtree(abandoned, ignore_errors=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{run_id}.", dir=self.root))
            try:
                fill(staging)
                _write_manifest(staging, run_id)
                entry = self.root / run_id
                shutil.rmtree(entry, ignore_errors=True)  # a damaged earlier entry
                staging.rename(entry)
                return entry
            finally:
                shutil.rmtree(staging, ignore_errors=True)

    def amend(self, run_id: str, fill: Callable[[Path], None]) -> None:
        """Add to the entry of `run_id` what `fill(folder)` writes: new folders, or files that replace its own.

        For what a run gained after it was cached (its reference profile). The additions move in
        first and the manifest is rewritten last, in one rename: a process verifying the entry in
        between sees a mismatch and waits on the lock, as for an entry being fetched.
        """
        entry = self.root / run_id
        with self._lock(run_id):
            staging = Path(tempfile.mkdtemp(prefix=f".{run_id}.", dir=self.root))
            try:
                fill(staging)
                for path in staging.iterdir():
                    os.replace(path, entry / path.name)
                _write_manifest(staging, run_id, of=entry)
                os.replace(staging / MANIFEST, entry / MANIFEST)
            finally:
                shutil.rmtree(staging, ignore_errors=True)

    @contextmanager
    def _lock(self, run_id: str) -> Iterator[None]:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle = (self.root / f".{run_id}.lock").open("w")
        except OSError as error:
            raise CacheNotWritable(str(error)) from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _files(folder: Path) -> Iterator[Path]:
    return (path for path in sorted(folder.rglob("*")) if path.is_file() and path.name != MANIFEST)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_manifest(folder: Path, run_id: str, of: Path | None = None) -> None:
    """Write into `folder` the manifest of the files in `of` (by default, of `folder` itself)."""
    of = of or folder
    files = {str(path.relative_to(of)): _sha256(path) for path in _files(of)}
    (folder / MANIFEST).write_text(json.dumps({"run_id": run_id, "files": files}, indent=1))


def _matches_manifest(entry: Path) -> bool:
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
        present = {str(path.relative_to(entry)): path for path in _files(entry)}
        return manifest["run_id"] == entry.name and manifest["files"] == {
            name: _sha256(path) for name, path in present.items()
        }
    except (OSError, ValueError, KeyError):
        return False
