"""The one parallel map: ordered results from a thread pool, with an optional progress bar.

Threads, not processes: the work handed to it (Pillow decoding and encoding, zlib,
SciPy's SSIM filters) releases the GIL, and threads share the decoded images.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

__all__ = ["default_workers", "pmap"]


def default_workers() -> int:
    """The CPUs this process may use (its affinity mask on Linux, else the CPU count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def pmap(fn: Callable, items: Sequence, workers: int | None = None, desc: str | None = None) -> list:
    """``[fn(x) for x in items]`` in ``workers`` threads (default :func:`default_workers`), in order.

    ``desc`` shows progress with that label, one tick per item (:func:`lowlight.progress.progress`:
    a bar on a terminal, a line per tenth of the items in a log).
    """
    workers = default_workers() if workers is None else max(1, int(workers))
    workers = min(workers, len(items)) or 1
    bar = None
    if desc is not None:
        from lowlight.progress import progress

        bar = progress(total=len(items), desc=desc, unit="img")
    out: list = []

    def collect(results) -> list:
        for r in results:
            out.append(r)
            if bar is not None:
                bar.update()
        return out

    try:
        if workers == 1:
            return collect(map(fn, items))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return collect(pool.map(fn, items))
    finally:
        if bar is not None:
            bar.close()
