"""How the project's commands answer bad input: one line on stderr and exit code 1, no traceback.

A missing or unreadable file, a file that is not TLC trip data, a setting or a model that cannot
be used: the user needs what was wrong, not the 30 lines of pyarrow it went through.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from web_service.errors import StartupError
from web_service_mlflow.data import TripDataError

EXIT_BAD_INPUT = 1


def run_command(main: Callable[[], int], failing: str, *also: type[Exception]) -> int:
    """Run a command's `main`; its bad input (and `also`) ends it with `<failing>: <why>` on one line."""
    try:
        return main()
    except (TripDataError, StartupError, *also) as error:
        print(f"{failing}: {one_line(error)}", file=sys.stderr)
        return EXIT_BAD_INPUT


def one_line(error: Exception) -> str:
    """The error's own message (StartupError and MLflow's keep it in `message`), on one line."""
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return " ".join(str(message).split())
