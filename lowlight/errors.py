"""Errors a user can fix (bad params, bad files, unwritable outputs) and how stages report them.

Stages and the command line catch these and print one clear line instead of a
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import reprlib
import sys
from typing import Any

__all__ = ["DataError", "user_errors", "report_user_errors", "short_repr"]

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 5
_REPR.maxlevel = 2


def short_repr(value: Any, limit: int = 80) -> str:
    """A repr for one line of an error message: a value read from a file can be megabytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"<an integer of {value.bit_length()} bits>"  # repr itself refuses over 4300 digits
    try:
        text = _REPR.repr(value)
    except Exception:  # a huge int inside a list, say
        text = f"<a {type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


class DataError(ValueError):
    """A dataset that cannot be used; the message lists every offending file."""

    def __init__(self, problems: list[str] | str, header: str = "bad input data"):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{header} ({len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}):\n{lines}")


def user_errors() -> tuple[type[BaseException], ...]:
    from .atomic import OutputError
    from .config import ConfigError
    from .imageio import ImageError
    from .tracking import TrackingError

    return (ConfigError, ImageError, OutputError, TrackingError, DataError)


def report_user_errors(name: str):
    """Decorator for a stage's ``main``: user errors become one line on stderr and exit code 2."""

    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except user_errors() as exc:
                print(f"{name}: error: {exc}", file=sys.stderr)
                sys.exit(2)

        return inner

    return wrap
