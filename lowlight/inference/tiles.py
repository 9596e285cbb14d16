"""Pure NumPy pieces of inference: tile layout and blending, float to uint8, the strength blend.

Tiles overlap; :func:`blend_window` weights each so that the blended image has no
seams. :func:`to_uint8` rounds half to even, as training's validation does
(:func:`lowlight.training.outputs.to_uint8`), so the pipeline's pixels are the
ones its checkpoint was picked on. :func:`apply_strength` is ``--strength``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["TILE_PIXELS", "TILE", "OVERLAP", "blend_window", "tile_starts", "even_tile", "padded_pixels", "to_uint8",
           "apply_strength"]

TILE_PIXELS = 6 * 2**20  # whole-image runs up to here; past it tiles bound the network's memory
TILE = 1600  # the longest tile side (2048 would take a 24 MP photo to 1.5 GiB, at no gain in speed)
OVERLAP = 64  # each side; the blend drops its outer quarter and ramps over the next half


def padded_pixels(h: int, w: int, multiple: int) -> int:
    """Pixels the network sees for an H x W image: both sides padded up to its size multiple.

    Whether to tile is decided on this, not on H x W: a 1 x 1,048,576 strip is under the tile
    limit but a U-Net pads it to 16 x 1,048,576 (3.7 GB and 12 s in one run)."""
    return -(-h // multiple) * multiple * (-(-w // multiple) * multiple)


def blend_window(h: int, w: int, overlap: int, sides: tuple[bool, bool, bool, bool]):
    """Tile weights: on each side that has a neighbour tile (top, bottom, left, right), the
    outer quarter of the overlap is dropped (too little context there) and the next half
    ramps linearly up to 1; sides on the image border keep full weight."""
    def ramp(n, first, last):
        r = np.ones(n, dtype=np.float32)
        k = min(overlap, n // 2)
        if k > 0:
            d = k / 4
            t = np.clip((np.arange(k, dtype=np.float32) + 0.5 - d) / max(k - 2 * d, 1), 0, 1)
            if first:
                r[:k] = t
            if last:
                r[n - k:] = np.minimum(r[n - k:], t[::-1])
        return r

    top, bottom, left, right = sides
    return ramp(h, top, bottom)[:, None] * ramp(w, left, right)[None, :]


def tile_starts(n: int, tile: int, overlap: int) -> list[int]:
    if n <= tile:
        return [0]
    step = tile - overlap
    count = math.ceil((n - tile) / step) + 1
    starts = [min(i * step, n - tile) for i in range(count)]
    return sorted(set(starts))


def even_tile(n: int, tile: int, overlap: int, multiple: int = 1) -> int:
    """The tile side that covers ``n`` with as few tiles of at most ``tile`` (give or take the
    ``multiple``) as possible, all of near-equal size, so that no tile re-runs mostly overlap."""
    if n <= tile:
        return n
    count = math.ceil((n - overlap) / (tile - overlap))
    side = math.ceil((n + (count - 1) * overlap) / count)
    return -(-side // multiple) * multiple


def to_uint8(x: np.ndarray) -> np.ndarray:
    """[0, 1] floats to uint8, in place (``x`` is the caller's scratch): no full-size float copies.

    Rounded half to even, as training's validation rounds (:func:`lowlight.training.outputs.to_uint8`),
    so the pipeline's pixels are the ones its checkpoint was picked on.
    """
    x *= 255.0
    np.rint(x, out=x)
    np.clip(x, 0, 255, out=x)
    return x.astype(np.uint8, order="C")  # C order also when x is a transposed view (ONNX Runtime's N C H W)


def apply_strength(low: np.ndarray, enhanced: np.ndarray, strength: float) -> np.ndarray:
    """``round(low + s * (enhanced - low))`` clipped to uint8, a band of rows at a time so that
    the float intermediates stay small on large images."""
    if strength == 1.0:
        return enhanced
    out = np.empty_like(enhanced)
    rows = max(1, (1 << 20) // max(1, low.shape[1] * 3))
    for y in range(0, low.shape[0], rows):
        lo = low[y:y + rows].astype(np.float64)
        v = enhanced[y:y + rows] - lo
        v *= strength
        v += lo
        np.rint(v, out=v)
        np.clip(v, 0, 255, out=v)
        out[y:y + rows] = v
    return out
