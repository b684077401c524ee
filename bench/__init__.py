"""Benchmarks beside their baselines; each writes its table to bench/results/ (see README, Speed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def publish(out: Path, text: str, record: Any) -> None:
    """Write the Markdown table to `out` and the raw record beside it as JSON, then print the table."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(text)
