import multiprocessing
import time
from pathlib import Path

import pytest

from web_service.cache import MANIFEST, ModelCache

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


def slow_fill_logged(root: str, log: str) -> None:
    def fill(dest: Path) -> None:
        with open(log, "a") as handle:
            handle.write("fetch\n")
        time.sleep(0.5)  # long enough for the other process to arrive and wait
        fill_model(dest)

    ModelCache(Path(root)).put(RUN, fill)


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
