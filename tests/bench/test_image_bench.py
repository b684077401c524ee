"""bench/image.py's own arithmetic: a layer's gzip size, and the report's table."""

from __future__ import annotations

import gzip

from bench.image import Base, Figures, gzipped_size, report


def test_a_layers_pull_size_is_its_gzip_size(tmp_path):
    layer = tmp_path / "layer.tar"
    layer.write_bytes(b"ride-duration " * 100_000 + bytes(range(256)) * 1000)

    assert gzipped_size(layer) == len(gzip.compress(layer.read_bytes(), compresslevel=6, mtime=0))


def test_the_report_gives_each_image_its_row_and_the_ratios_to_before():
    rows = [Figures("before", 1068, 312, [9.1, 8.5, 8.8], 420, 3), Figures("full", 534, 160, [3.0, 2.5, 2.8], 300, 3),
            Figures("slim", 267, 80, [1.2, 1.0, 1.1], 150, 3)]  # fmt: skip

    base = Base("localhost/ride-duration-base:bookworm", 176, 74)

    text = report(rows, "0e15091e6e9b", start_runs=3, requests_count=200, engine="podman", base=base)

    table = [line for line in text.splitlines() if line.startswith("| ") and "MB" in line]
    assert table == [
        "| before (`0e15091`: everything in [packages]) | 1,068 MB | 312 MB | 8.80 s (9.10, 8.50, 8.80) "
        "| 420 MB (3 processes) |",
        "| full (now: [packages]) | 534 MB | 160 MB | 2.80 s (3.00, 2.50, 2.80) | 300 MB (3 processes) |",
        "| slim (`--target slim`: one baked run) | 267 MB | 80 MB | 1.10 s (1.20, 1.00, 1.10) | 150 MB (3 processes) |",
    ]
    assert "on the base `localhost/ride-duration-base:bookworm` (176 MB, 74 MB to pull)" in text
    assert "The full image is 0.50x the size it was, and 0.51x to pull." in text
    assert "The slim image is 0.25x the size of the image before, and 0.26x to pull." in text
