"""Free ports, running as another user, waiting for a started process to answer, what a process tree weighs."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class NotAnswering(RuntimeError):
    """A started server exited, or did not answer within its time; the message holds its output."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_answering(
    process: subprocess.Popen,
    answers: Callable[[], bool],
    name: str,
    output: Callable[[], str],
    timeout: float,
    every: float = 0.2,
) -> None:
    """Poll `answers()` until it is true; raise NotAnswering with `output()` if `process` exits first
    or `timeout` seconds pass. An exception from `answers()` (refused, reset, half started) means
    not yet; the last one is named if time runs out."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NotAnswering(f"{name} exited with {process.returncode}:\n{output()}")
        try:
            if answers():
                return
        except Exception as error:  # not up yet, whatever the client says
            last = error
        time.sleep(every)
    raise NotAnswering(f"{name} did not answer within {timeout:g} s (last: {last!r}):\n{output()}")


def as_user(user: int | None) -> list[str]:
    """A command prefix that runs what follows as `user` (and its group), with no capabilities; [] for None.

    setpriv (util-linux) rather than Popen(user=...): the interpreter behind .venv may sit in a
    folder only root can search, which setpriv gets past and a plain setuid-then-exec does not.
    """
    if user is None:
        return []
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--inh-caps=-all"]


def wait_until(condition: Callable[[], T], what: str, timeout: float = 60, every: float = 0.1) -> T:
    """Poll `condition()` until it returns something true, and return that; fail naming `what` if it never does."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)
    return result


def stop(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL if it is still there after `timeout` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def process_tree(pid: int) -> list[int]:
    """`pid` and every process below it."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # The command name may hold spaces and parentheses: the fields after the last ")".
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def total_pss_mb(pid: int) -> float:
    """Proportional set size of a process tree: shared pages counted once, split between sharers."""
    total_kb = 0
    for member in process_tree(pid):
        try:
            rollup = Path(f"/proc/{member}/smaps_rollup").read_text()
        except OSError:  # exited meanwhile
            continue
        total_kb += next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
    return total_kb / 1024
