"""What batch scoring tells the person or the scheduler running it.

On a terminal, one progress bar redrawn in place; otherwise (cron, a container log) a plain line
at most every PLAIN_EVERY_S seconds and one per finished file. The last line is always the summary.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO

PLAIN_EVERY_S = 10.0
_IMPORTED = time.monotonic()
BAR_WIDTH = 30


@dataclass
class Totals:
    """Rides read, scored and rejected (per reason), over every input."""

    files: int = 0
    scored: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def rejected(self) -> int:
        return sum(self.reasons.values())

    @property
    def read(self) -> int:
        return self.scored + self.rejected

    def add(self, scored: int, reasons: Counter[str]) -> None:
        self.scored += scored
        self.reasons.update(reasons)

    def summary(self, seconds: float) -> str:
        """The one line a run ends with."""
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in sorted(self.reasons.items()))
        rejected = f"rejected {self.rejected:,}" + (f" ({reasons})" if reasons else "")
        rate = self.read / seconds if seconds > 0 else 0.0
        plural = "" if self.files == 1 else "s"
        return (
            f"scored {self.scored:,} rides, {rejected}, from {self.files} file{plural} "
            f"in {seconds:.2f} s: {rate:,.0f} rides/s"
        )


def seconds_since_start() -> float:
    """Seconds since this process started (interpreter and imports included), as `time` would say."""
    try:  # /proc/self/stat field 22: start time in clock ticks after boot; CLOCK_BOOTTIME counts the same
        with open("/proc/self/stat") as stat:
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        return time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return time.monotonic() - _IMPORTED


class Progress:
    """Work done out of `total` (rides, or Spark's row groups): a bar on a terminal, else plain lines."""

    def __init__(self, total: int, unit: str = "rides", stream: TextIO | None = None) -> None:
        self.total, self.done, self.unit = total, 0, unit
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = self._last_line = time.monotonic()

    def advance(self, rides: int) -> None:
        self.done += rides
        now = time.monotonic()
        if self.tty:
            self._draw(now)
        elif now - self._last_line >= PLAIN_EVERY_S:
            self._last_line = now
            self._line(
                f"{self.done:,} of {self.total:,} {self.unit} ({self._percent():.0f}%), {now - self.started:.1f} s"
            )

    def file_done(self, location: str, totals: Totals) -> None:
        self._line(f"{location}: {totals.read:,} rides, {totals.scored:,} scored, {totals.rejected:,} rejected")

    def note(self, text: str) -> None:
        self._line(text)

    def _percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 100.0

    def _draw(self, now: float) -> None:
        filled = int(BAR_WIDTH * self._percent() / 100)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        text = f"\r[{bar}] {self._percent():3.0f}% {self.done:,}/{self.total:,} {self.unit} {now - self.started:.1f} s"
        self.stream.write(text)
        self.stream.flush()

    def _line(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K")  # clear the bar; it is redrawn by the next advance
        self.stream.write(text + "\n")
        self.stream.flush()
