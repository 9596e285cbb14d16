"""The app's memory budget: what photos in work may take, sized to the machine.

A small file can be a large photo: a 143 KB PNG of a 7000 x 7000 zero image is under the
pixel limit and costs about 1 GB at peak. So each upload's pixel count, read from its header
before decoding, reserves :data:`WORK_BYTES_PER_PIXEL` a pixel until its enhancement is
finished or has failed; an upload that does not fit what is left waits for nobody: it is
refused with 503 and ``Retry-After``. Decodes run at most :func:`decode_slots` at a time.
What finished photos keep is bounded separately, in the job store
(:class:`lowlight.app.jobs.JobStore`, :data:`KEPT_BYTES_PER_PIXEL`).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

__all__ = ["MemoryBudget", "Reservation", "machine_memory", "decode_slots", "WORK_BYTES_PER_PIXEL",
           "KEPT_BYTES_PER_PIXEL"]

WORK_BYTES_PER_PIXEL = 30  # decoding and enhancing one photo: about 30 bytes a pixel at peak
KEPT_BYTES_PER_PIXEL = 8  # a finished job: input and result RGB (3 + 3), alpha, previews


def machine_memory() -> int:
    """Physical memory in bytes (4 GiB where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def decode_slots() -> int:
    """Concurrent decodes: half the cores (the enhancing thread needs the rest), 1 to 4."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


@dataclass
class Reservation:
    """Bytes held for one photo until :meth:`release` (idempotent: the worker and an eviction may both call it)."""

    budget: MemoryBudget | None
    nbytes: int
    _released: bool = field(default=False, repr=False)

    def release(self) -> None:
        if self.budget is not None and not self._released:
            self._released = True
            self.budget._give_back(self.nbytes)


class MemoryBudget:
    """Bytes that photos in work may reserve; ``limit`` defaults to half the machine's memory."""

    def __init__(self, limit: int | None = None):
        self.limit = int(limit if limit is not None else machine_memory() // 2)
        self.used = 0
        self._lock = threading.Lock()

    def fits_at_all(self, pixels: int) -> bool:
        return pixels * WORK_BYTES_PER_PIXEL <= self.limit

    def reserve(self, pixels: int) -> Reservation | None:
        """A reservation for a photo of ``pixels``, or None when the budget is spent for now."""
        nbytes = pixels * WORK_BYTES_PER_PIXEL
        with self._lock:
            if self.used + nbytes > self.limit:
                return None
            self.used += nbytes
        return Reservation(self, nbytes)

    def _give_back(self, nbytes: int) -> None:
        with self._lock:
            self.used = max(0, self.used - nbytes)
