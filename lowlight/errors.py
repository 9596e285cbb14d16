"""The error contract: :class:`UserError` is every error a person can fix, and how it is reported.

Bad params, bad or missing files, unwritable outputs, a missing GPU: each is a
``UserError`` subclass whose message names the file or key and the fix. The
command line and the stages (:func:`report_user_errors`) turn any ``UserError``
into one line on stderr and exit code 2; anything else is a bug and keeps its
traceback. (``lowlight enhance`` exits 1 when some photos of a batch failed and
says which.) This module imports nothing from the package, so every module can
derive its errors from it.
"""

from __future__ import annotations

import functools
import reprlib
import sys
from typing import Any

__all__ = ["UserError", "DataError", "user_errors", "report_user_errors", "one_line", "short_repr"]

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


class UserError(Exception):
    """An error a person can fix; ``str()`` names the file or key and says what to do."""


class DataError(UserError, ValueError):
    """A dataset that cannot be used; the message lists every offending file."""

    def __init__(self, problems: list[str] | str, header: str = "bad input data"):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{header} ({len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}):\n{lines}")


def user_errors() -> tuple[type[BaseException], ...]:
    """What to catch as a person's error (kept for callers written before :class:`UserError`)."""
    return (UserError,)


def one_line(exc: UserError) -> str:
    """The command line's message: a data error with one problem is that problem alone (it names
    the file); stages print the whole message, whose header names the params key."""
    if isinstance(exc, DataError) and len(exc.problems) == 1:
        return exc.problems[0]
    return str(exc)


def report_user_errors(name: str):
    """Decorator for a stage's ``main``: user errors become one line on stderr and exit code 2;
    Ctrl-C (and SIGTERM, which :mod:`lowlight.tracking` turns into KeyboardInterrupt) one line
    and exit code 130, as the shell's own, instead of a traceback. Outputs are written whole or
    not at all (:mod:`lowlight.atomic`), so a stopped stage leaves nothing half-written."""

    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except UserError as exc:
                print(f"{name}: error: {exc}", file=sys.stderr)
                sys.exit(2)
            except KeyboardInterrupt as exc:
                print(f"{name}: stopped by {str(exc) or 'Ctrl-C'}; no output was left half-written", file=sys.stderr)
                sys.exit(130)

        return inner

    return wrap
