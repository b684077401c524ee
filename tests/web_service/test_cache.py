import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from web_service.cache import MANIFEST, CacheNotWritable, ModelCache

RUN = "a" * 32


def fill_model(dest: Path) -> None:
    (dest / "model").mkdir()
    (dest / "model" / "MLmodel").write_text("flavors: {}\n")
    (dest / "model" / "model.skops").write_bytes(b"weights" * 100)


def test_an_entry_is_keyed_by_run_id_and_holds_what_was_fetched(tmp_path):
    entry = ModelCache(tmp_path).put(RUN, fill_model)

    assert entry == tmp_path / RUN
    assert (entry / "model" / "model.skops").read_bytes() == b"weights" * 100
    assert ModelCache(tmp_path).get(RUN) == entry


def test_a_cached_run_is_not_fetched_again(tmp_path):
    cache = ModelCache(tmp_path)
    cache.put(RUN, fill_model)

    def must_not_fetch(dest):
        raise AssertionError("fetched a cached run")

    assert cache.put(RUN, must_not_fetch) == tmp_path / RUN


def test_an_entry_whose_files_changed_is_not_used_and_is_fetched_again(tmp_path):
    cache = ModelCache(tmp_path)
    entry = cache.put(RUN, fill_model)
    (entry / "model" / "model.skops").write_bytes(b"bit rot")

    assert cache.get(RUN) is None
    assert (cache.put(RUN, fill_model) / "model" / "model.skops").read_bytes() == b"weights" * 100


def test_an_entry_missing_a_file_is_not_used(tmp_path):
    cache = ModelCache(tmp_path)
    (cache.put(RUN, fill_model) / "model" / "MLmodel").unlink()

    assert cache.get(RUN) is None


def test_a_download_that_fails_halfway_leaves_nothing_behind(tmp_path):
    def half_then_fail(dest: Path) -> None:
        (dest / "model").mkdir()
        (dest / "model" / "MLmodel").write_text("partial")
        raise ConnectionResetError("network dropped")

    with pytest.raises(ConnectionResetError):
        ModelCache(tmp_path).put(RUN, half_then_fail)

    assert ModelCache(tmp_path).get(RUN) is None
    assert sorted(path.name for path in tmp_path.iterdir()) == [f".{RUN}.lock"]


def test_an_entry_without_manifest_is_invisible(tmp_path):
    (tmp_path / RUN / "model").mkdir(parents=True)

    assert ModelCache(tmp_path).get(RUN) is None
    assert (ModelCache(tmp_path).put(RUN, fill_model) / MANIFEST).is_file()


def waited_on(lock: Path) -> bool:
    """Whether a process is blocked on the flock of `lock`: /proc/locks lists each waiter with "->"."""
    status = lock.stat()
    inode = f"{os.major(status.st_dev):02x}:{os.minor(status.st_dev):02x}:{status.st_ino}"
    return any(" -> FLOCK " in line and inode in line.split() for line in Path("/proc/locks").read_text().splitlines())


def slow_fill_logged(root: str, log: str) -> None:
    def fill(dest: Path) -> None:
        with open(log, "a") as handle:
            handle.write("fetch\n")
        # Fetch once the other process waits on the lock (or, if it never does, after 60 s, and the
        # test fails on its second fetch): both surely started at once.
        deadline = time.monotonic() + 60
        while not waited_on(Path(root) / f".{RUN}.lock") and time.monotonic() < deadline:
            time.sleep(0.01)
        fill_model(dest)

    ModelCache(Path(root)).put(RUN, fill)


@pytest.mark.slow  # two spawned processes
def test_two_processes_starting_at_once_fetch_once_and_share_one_good_entry(tmp_path):
    log = tmp_path / "fetches.log"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=slow_fill_logged, args=(str(tmp_path / "cache"), str(log))) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    assert [worker.exitcode for worker in workers] == [0, 0]
    assert log.read_text() == "fetch\n"
    assert ModelCache(tmp_path / "cache").get(RUN) == tmp_path / "cache" / RUN


def test_a_root_that_cannot_be_made_is_a_cache_not_writable_not_a_download_failure(tmp_path):
    (tmp_path / "a-file").write_text("")  # fails for root too, who may write into any folder
    fetched = []

    with pytest.raises(CacheNotWritable, match=r"^\[Errno 20\] Not a directory: '.*/a-file/cache'$"):
        ModelCache(tmp_path / "a-file" / "cache").put(RUN, fetched.append)

    assert fetched == []  # nothing downloaded for nothing


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A temporary folder any user can search: pytest's own are root's alone when root runs the tests."""
    folder = Path(tempfile.mkdtemp(prefix="ride-duration-cache-"))
    folder.chmod(0o755)
    yield folder
    for path in [folder, *folder.rglob("*")]:  # what a test closed, opened again to be removed
        if path.is_dir():
            path.chmod(0o755)
    shutil.rmtree(folder)


def put_as_unprivileged_user(root: Path) -> str:
    """Put an entry into `root` as nobody (when root runs the tests) or as oneself; say what was raised."""
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            ModelCache(root).put(RUN, fill_model)
            os.write(writer, b"no error")
        except Exception as error:
            os.write(writer, f"{type(error).__name__}: {error}".encode())
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    os.close(writer)
    with os.fdopen(reader) as said:
        return said.read()


def test_a_read_only_root_is_a_cache_not_writable_for_an_unprivileged_user(public_tmp):
    # Root ignores a folder's mode: the put is made as nobody then, for whom root's folder is read-only.
    root = public_tmp / "cache"
    root.mkdir(mode=0o555)

    assert put_as_unprivileged_user(root) == f"CacheNotWritable: [Errno 13] Permission denied: '{root}/.{RUN}.lock'"


def test_a_root_the_user_cannot_search_is_a_cache_not_writable_too(public_tmp):
    root = public_tmp / "cache"
    root.mkdir(mode=0o000)  # closed to all but root, who runs the put as nobody

    assert put_as_unprivileged_user(root) == (
        f"CacheNotWritable: [Errno 13] Permission denied: '{root}/{RUN}/{MANIFEST}'"
    )


def test_a_read_only_cache_still_serves_what_it_holds(tmp_path, public_tmp):
    entry = ModelCache(tmp_path).put(RUN, fill_model)
    (tmp_path / f".{RUN}.lock").unlink()
    (tmp_path / f".{RUN}.lock").mkdir()  # no lock can be taken, by root either
    filled = ModelCache(public_tmp / "cache").put(RUN, fill_model)
    for path in [filled, *filled.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)  # entries are made private (mkdtemp): open them to all
    (public_tmp / "cache").chmod(0o555)

    assert ModelCache(tmp_path).put(RUN, fill_model) == entry
    assert put_as_unprivileged_user(public_tmp / "cache") == "no error"


def test_amend_adds_to_an_entry_and_its_manifest_so_it_stays_valid(tmp_path):
    cache = ModelCache(tmp_path)
    entry = cache.put(RUN, fill_model)

    def add_reference(dest: Path) -> None:
        (dest / "reference").mkdir()
        (dest / "reference" / "profile.json").write_text("{}")
        (dest / "resolved.json").write_text('{"reference": "reference"}')

    cache.amend(RUN, add_reference)

    assert cache.get(RUN) == entry
    assert (entry / "reference" / "profile.json").read_text() == "{}"
    assert (entry / "model" / "model.skops").read_bytes() == b"weights" * 100
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(f".{RUN}.") and path.is_dir()] == []
