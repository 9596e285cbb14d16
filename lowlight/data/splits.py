"""Leak-free splits: groups of pairs that share a scene go to one split, chosen by seed.

A group is a photo (all its darkened versions) or, in LOL, every low shot of one high
image; :func:`group_by_content` finds groups by pixel content, so a copied reference
under another name cannot land in two splits.
"""

from __future__ import annotations

from lowlight.data.pair_writer import rng_for
from lowlight.data.pairs import natural_key
from lowlight.errors import DataError

__all__ = ["split_groups", "group_by_content"]


def split_groups(sizes: dict[str, int], val_fraction: float, test_fraction: float,
                 seed: int) -> dict[str, str]:
    """Assign whole groups to train/val/test; ``sizes`` maps group -> number of pairs.

    Groups are shuffled with ``seed``; val then test take groups while they stay
    within ``fraction * total`` pairs (each takes at least its smallest
    remaining group when its fraction is > 0); train keeps the rest.
    """
    keys = sorted(sizes, key=natural_key)
    wanted = [s for s, f in (("val", val_fraction), ("test", test_fraction)) if f > 0]
    if len(keys) < len(wanted) + 1:
        raise DataError(f"{len(keys)} group(s) of photos cannot fill train, {', '.join(wanted)} with at least "
                        "one each; add photos or set data.test_fraction: 0")
    order = [keys[i] for i in rng_for(seed, "split").permutation(len(keys))]
    total = sum(sizes.values())
    assign: dict[str, str] = {}
    remaining = order
    for split, frac in (("val", val_fraction), ("test", test_fraction)):
        if frac <= 0:
            continue
        target, count, rest = frac * total, 0, []
        for k in remaining:
            if count + sizes[k] <= target:
                assign[k] = split
                count += sizes[k]
            else:
                rest.append(k)
        if count == 0:  # every group is larger than the target: take the smallest one
            k = min(rest, key=lambda g: sizes[g])
            assign[k] = split
            rest.remove(k)
        remaining = rest
    if not remaining:
        raise DataError("no group of photos left for train after val/test; add photos or lower the fractions")
    for k in remaining:
        assign[k] = "train"
    return assign


def group_by_content(groups: dict[str, str], pixels: dict[str, str]) -> dict[str, str]:
    """Merge groups that share identical pixels: item -> representative group name."""
    parent: dict[str, str] = {}

    def find(g):
        while parent.setdefault(g, g) != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    first_with: dict[str, str] = {}
    for item in sorted(groups, key=natural_key):
        g = find(groups[item])
        h = pixels[item]
        if h in first_with:
            a, b = sorted((find(first_with[h]), g), key=natural_key)
            parent[b] = a
        else:
            first_with[h] = g
    return {item: find(groups[item]) for item in groups}
