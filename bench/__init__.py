"""Benchmarks beside their baselines; each writes its table to bench/results/ (see README, Speed)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def publish(out: Path, text: str, record: Any = None, failed: Sequence[str] = (), failure: str = "failed") -> int:
    """Write the Markdown table to `out` and the raw record (if any) beside it as JSON, then print the table.

    The exit code for the benchmark: 1 with one line on stderr (`failure: what; what`) if anything
    it checks beside its timings `failed`, 0 otherwise. The table is written either way.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    if record is not None:
        out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(text)
    if failed:
        print(f"{failure}: {'; '.join(failed)}", file=sys.stderr)
        return 1
    return 0
