"""The prepared dataset's layout, read by every stage after ``prepare``.

    data/prepared/
        manifest.csv                 split, stem, sources, checksums, size
        train/low/<stem>.png         train/high/<stem>.png
        val/...                      test/...      (test may be empty)

Low and high images of a pair share the stem. ``mapped`` folders written by
``histmap`` use the same stems (``data/mapped/<split>/<stem>.png``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lowlight.imageio import ImageError, read_rgb

__all__ = ["SPLITS", "Pair", "natural_key", "list_pairs", "load_pairs", "read_groups"]

SPLITS = ("train", "val", "test")


def natural_key(stem: str):
    """Sort '2' before '10' (LOL's numbering) and keep other names in text order."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", stem) if t]


@dataclass(frozen=True)
class Pair:
    stem: str
    low: Path
    high: Path


def list_pairs(root: str | Path, split: str) -> list[Pair]:
    """Pairs of one split, sorted by stem; a low image without its high one is an error."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    root = Path(root)
    low_dir, high_dir = root / split / "low", root / split / "high"
    if not low_dir.is_dir():
        return []
    pairs = []
    for low in sorted(low_dir.glob("*.png")):
        high = high_dir / low.name
        if not high.is_file():
            raise ImageError(low, f"has no reference image at {high}")
        pairs.append(Pair(low.stem, low, high))
    return pairs


def load_pairs(root: str | Path, split: str) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    """Decode one split: stems, low images, high images (uint8 RGB)."""
    pairs = list_pairs(root, split)
    return ([p.stem for p in pairs], [read_rgb(p.low) for p in pairs], [read_rgb(p.high) for p in pairs])


def read_groups(root: str | Path, split: str) -> dict[str, str]:
    """``{stem: group}`` of one split from ``manifest.csv`` (pairs that share a scene share a group).

    A dataset without a manifest (made by hand, or by a test) has one group per pair.
    """
    import csv

    root = Path(root)
    stems = [p.stem for p in list_pairs(root, split)]
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        return {s: s for s in stems}
    with open(manifest, newline="") as fh:
        known = {r["stem"]: r["group"] for r in csv.DictReader(fh) if r.get("split") == split}
    return {s: known.get(s, s) for s in stems}
