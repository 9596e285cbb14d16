"""A progress bar over the tiles of one big photo (the enhancer's ``progress`` callback)."""

from __future__ import annotations

import sys

__all__ = ["TileBar"]


class TileBar:
    """``(done, total)`` tile counts -> one tqdm bar per photo, gone when the photo is done; photos
    small enough to run whole never call it, so they show none."""

    def __init__(self, disable: bool = False):
        self.disable, self.bar = disable, None

    def __call__(self, done: int, total: int) -> None:
        if self.disable or total < 2:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="tile", desc="big photo", leave=False, file=sys.stderr)
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.bar.close()
            self.bar = None
