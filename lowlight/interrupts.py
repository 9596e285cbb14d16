"""SIGTERM as Ctrl-C: what ``kill``, ``timeout`` and a closing terminal send becomes KeyboardInterrupt,
so the stages and the command line stop the same way (one line, exit code 130; the partial
output is removed by :mod:`lowlight.atomic`), instead of dying where they stand."""

from __future__ import annotations

import contextlib
import signal
import threading

__all__ = ["sigterm_as_interrupt"]


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM raises KeyboardInterrupt inside the block (main thread only; the old handler is restored)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
