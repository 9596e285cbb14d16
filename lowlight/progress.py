"""Progress for the stages: a tqdm bar on a terminal, plain lines in a log.

A tqdm bar redraws itself with carriage returns; written to a file or a CI log (``dvc repro
> log``, a queued ``dvc exp run``) it becomes one long line of partial redraws. Off a
terminal, :func:`progress` prints a line per step instead, a step being a tenth of the work
(``evaluate (test): 2/3 img, 1.4 s``), so a log stays short and readable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

__all__ = ["progress", "LineProgress", "is_terminal"]


def is_terminal(stream: IO | None = None) -> bool:
    stream = stream if stream is not None else sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed, or not a real stream
        return False


class LineProgress:
    """tqdm's ``update``/``set_postfix``/``close``/iteration, printing a line per tenth of ``total``."""

    def __init__(self, iterable: Iterable | None = None, total: int | None = None, desc: str = "",
                 unit: str = "it", file: IO | None = None, steps: int = 10, disable: bool = False):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.unit, self.disable = total, desc, unit, disable
        self.file = file if file is not None else sys.stderr
        self.every = max(1, -(-total // steps)) if total else 1
        self.n, self.postfix, self.t0, self._closed = 0, "", time.monotonic(), False

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.update()
        self.close()

    def update(self, n: int = 1) -> None:
        before, self.n = self.n, self.n + n
        if self.n // self.every > before // self.every and self.n != self.total:
            self._line()

    def set_postfix(self, **kwargs: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in kwargs.items())

    def _line(self) -> None:
        if self.disable:
            return
        of = f"/{self.total}" if self.total else ""
        extra = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {self.n}{of} {self.unit}, {time.monotonic() - self.t0:.1f} s{extra}",
              file=self.file, flush=True)

    def close(self) -> None:
        if not self._closed and self.n:
            self._line()  # the last step, always
        self._closed = True


def progress(iterable: Iterable | None = None, total: int | None = None, desc: str = "", unit: str = "it",
             disable: bool = False, file: IO | None = None, **tqdm_kwargs: Any):
    """A tqdm bar when ``file`` (stderr) is a terminal, else a :class:`LineProgress`; same calls either way."""
    file = file if file is not None else sys.stderr
    if is_terminal(file):
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, file=file,
                    dynamic_ncols=True, **tqdm_kwargs)
    return LineProgress(iterable, total=total, desc=desc, unit=unit, file=file, disable=disable)
