"""Shadow lift: a smooth, edge-aware gain that raises the dark regions of a dark photo and holds its highlights.

The histogram mapping and the exposure anchor give the whole photo one exposure. In a photo
that is partly bright (a lit tower at night, a backlit room, a white bird against foliage),
large regions stay crushed. This step does what a photographer's dodge does, after the
network:

1. **The light on each region** is an edge-aware smoothing of the output's luma: a
   self-guided filter (He, Sun and Tang, "Guided Image Filtering", 2010) in its fast,
   subsampled form (He and Sun, 2015). It runs on a thumbnail of :data:`THUMB` pixels on
   the short side, and its linear coefficients are brought back to full size bilinearly and
   applied to the full-size luma. Dark regions, flat or textured, get one smooth level, and
   a strong edge (a lamp, a window, a lit tower against the sky) is kept, so light does not
   bleed across it and there is no halo.
2. **The gain** is ``(TARGET / L) ** amount`` per pixel, from 1 to :data:`MAX_GAIN`. A
   region whose light ``L`` is under :data:`TARGET` comes up towards it, and brighter
   regions are left as they are. A gain multiplies the luma, so local contrast is kept. A
   pixel's colour (its difference from its luma) is raised by ``gain ** CHROMA`` only
   (:data:`CHROMA` 0.5: a two-stop lift raises it one stop). At levels 1-3 a pixel's colour is
   mostly the network's own small bias, and a full gain turned it into a cast: a night sky
   came up olive (docs/results.md, "The lifted shadows' colour"). No pixel is raised past
   :data:`CAP` of full scale, so nothing new clips.
   A gain cannot lift what carries no signal (a night sky at levels 0-2), so a **black
   floor** follows, a photographer's "blacks" slider: a pixel whose lifted luma ``y`` is
   under :data:`FADE` gets ``FLOOR * (1 - y / FADE)`` added, the same to each channel.
   Black becomes :data:`FLOOR` (level 14, a deep shadow a screen still shows rather than
   clipped black, just above the crushed line of 0.05), tones at :data:`FADE` and above are
   untouched, and the toe is monotone, so the order of dark tones holds. It is per pixel,
   not per region, so it draws no ring beside a lit edge. Its share rises :data:`FLOOR_RAMP`
   times as fast as the amount (all of it from an amount of 0.2, a crushed share of 15 % in
   auto), since what it fills is black either way: with the gain's ramp, a photo a few
   points inside the gate kept a floor under the crushed line (docs/results.md, "The floor's ramp").
3. **When it acts.** ``amount=None`` (the default, "auto") fades the step in with the share
   of the *input's* crushed pixels (luma level <= 12 of 255, i.e. under 0.05): nothing at
   :data:`GATE` [0] (10 %), the full amount 1 at :data:`GATE` [1] (35 %) and above. Dark
   photos from the measured sets have 42-76 % of their pixels crushed; well-lit and low-key
   clean photos at most 16 %, which the gate's start once kept out (20 %). But a dark photo a
   little brighter than those (a real one a half-stop up) fell under that start and kept
   16 % of its pixels crushed, past the 10 % the local-exposure issue allows any photo. So the
   lift now starts where a photo could fail that measure, 10 %: a photo with fewer crushed
   pixels is left alone, one between 10 and 16 % gets a light lift and part of the floor
   (docs/results.md, "The gate's start"). An explicit
   ``amount`` (``lowlight enhance --shadows``) is applied as given, with no gate.

The whole photo's thumbnail decides the coefficients, and the full-size work runs in bands
of rows. So a large photo costs little memory, and the result does not depend on tiling.
The figures behind :data:`TARGET` and the gate are in ``benchmarks/local_lift_ablation.py``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from lowlight.histbranch.histogram import LUMA_WEIGHTS, pil_view

__all__ = ["TARGET", "MAX_GAIN", "CAP", "GATE", "SHADOWS_MAX", "FLOOR", "FLOOR_RAMP", "CHROMA", "auto_amount",
           "crushed_fraction", "illumination_coefficients", "lift_shadows"]

TARGET = 0.15  # a dark region's light (luma, of 1) is raised towards this
MAX_GAIN = 4.0  # at most two stops
CAP = 0.97  # no channel is raised past this (of 1), so the step clips nothing new
GATE = (0.10, 0.35)  # auto: the input's crushed share at which the lift starts, and reaches full
CRUSHED_LEVEL = 12  # 8-bit luma at or under this is crushed: under exposure_measures.CRUSHED (0.05 = level 12.75)
SHADOWS_MAX = 2.0
FLOOR = 0.055  # black floor (of 1): level 14, just above the crushed line (0.05); none at FADE and above
FADE = 0.1
FLOOR_RAMP = 5.0  # the floor's share is min(1, FLOOR_RAMP * amount) (benchmarks/local_lift_ablation.py)
CHROMA = 0.5  # a pixel's colour is raised by gain ** CHROMA, its luma by gain (benchmarks/local_lift_ablation.py)
THUMB = 64  # thumbnail's short side for the guided filter
THUMB_LONG = 1024  # and at most this on its long side
RADIUS = 6  # guided filter radius, in thumbnail pixels (a window of about a fifth of the short side)
EPS = 0.01  # guided filter regulariser (luma variance): edges with a std above 0.1 are kept
_BAND = 1 << 18  # pixels per band of rows


def _luma_u8(rgb: np.ndarray) -> Image.Image:
    return pil_view(rgb).convert("L")  # BT.601, in C


def crushed_fraction(low: np.ndarray) -> float:
    """The share of ``low``'s pixels (uint8 H x W x 3) at 8-bit luma :data:`CRUSHED_LEVEL` or under."""
    counts = np.asarray(_luma_u8(low).histogram(), dtype=np.float64)
    return float(counts[:CRUSHED_LEVEL + 1].sum() / max(1.0, counts.sum()))


def auto_amount(low: np.ndarray, gate: tuple[float, float] = GATE) -> float:
    """The lift's amount for ``low`` (the input, uint8 H x W x 3): 0 to 1 with its crushed share,
    from ``gate`` [0] to ``gate`` [1] (:data:`GATE`; another for the ablation)."""
    crushed = crushed_fraction(low)
    lo, hi = gate
    return float(np.clip((crushed - lo) / (hi - lo), 0.0, 1.0))


def box_mean(img: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window, edges mirrored (scipy.ndimage.uniform_filter's 'reflect'),
    from cumulative sums; for the thumbnail only (importing scipy.ndimage costs 0.2 s of startup)."""
    k = 2 * radius + 1
    c = np.pad(img, radius, mode="symmetric").cumsum(axis=0).cumsum(axis=1)
    c = np.pad(c, ((1, 0), (1, 0)))
    return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)


def illumination_coefficients(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fast guided filter's coefficient maps ``(a, b)`` on the thumbnail of ``rgb``'s luma:
    the light at a full-size pixel of luma ``y`` is ``a * y + b``, with ``a`` and ``b`` read bilinearly."""
    h, w = rgb.shape[:2]
    s = min(THUMB / min(h, w), THUMB_LONG / max(h, w))  # a thin strip keeps a small thumbnail
    size = (max(2, round(w * s)), max(2, round(h * s)))
    small = np.asarray(_luma_u8(rgb).resize(size, Image.BOX), dtype=np.float64) / 255.0
    mean = box_mean(small, RADIUS)
    var = np.maximum(box_mean(small * small, RADIUS) - mean * mean, 0.0)
    a = var / (var + EPS)
    b = mean - a * mean
    return box_mean(a, RADIUS), box_mean(b, RADIUS)


def _axis(n_out: int, n_in: int, start: int = 0, stop: int | None = None):
    """Bilinear sample positions (half-pixel centres, clamped) of output indices start..stop on an axis."""
    pos = (np.arange(start, n_out if stop is None else stop) + 0.5) * (n_in / n_out) - 0.5
    pos = np.clip(pos, 0.0, n_in - 1)
    i0 = np.floor(pos).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (pos - i0).astype(np.float32)


def _upsample(maps: tuple[np.ndarray, ...], h: int, w: int, y0: int, y1: int) -> list[np.ndarray]:
    r0, r1, fy = _axis(h, maps[0].shape[0], y0, y1)
    c0, c1, fx = _axis(w, maps[0].shape[1])
    out = []
    for m in maps:
        m = m.astype(np.float32)
        rows = m[r0] * (1 - fy)[:, None] + m[r1] * fy[:, None]
        out.append(rows[:, c0] * (1 - fx) + rows[:, c1] * fx)
    return out


def lift_shadows(out: np.ndarray, low: np.ndarray, amount: float | None = None, target: float = TARGET,
                 floor: float = FLOOR, floor_ramp: float = FLOOR_RAMP, chroma: float = CHROMA) -> np.ndarray:
    """``out`` (uint8 H x W x 3, the enhanced photo) with its dark regions raised.

    ``low`` is the input photo, which the auto gate reads. ``amount`` is None for auto, or a
    value from 0 to :data:`SHADOWS_MAX`; ``target``, ``floor``, ``floor_ramp`` and ``chroma`` are
    there for the ablation. Returns ``out`` itself when there is nothing to do, and otherwise a
    new array; ``out`` is not modified.
    """
    amount = auto_amount(low) if amount is None else float(amount)
    if amount == 0.0:
        return out
    h, w = out.shape[:2]
    a, b = illumination_coefficients(out)
    weights = (LUMA_WEIGHTS / 255.0).astype(np.float32)
    result = np.empty_like(out)
    rows = max(1, _BAND // max(1, w))
    for y0 in range(0, h, rows):
        y1 = min(h, y0 + rows)
        band = out[y0:y1]
        o = band.astype(np.float32)
        am, bm = _upsample((a, b), h, w, y0, y1)
        luma = o @ weights
        light = np.maximum(am * luma + bm, target / MAX_GAIN)
        gain = np.clip((target / light) ** np.float32(amount), 1.0, MAX_GAIN)
        # no channel past CAP: a bright pixel inside a dark region is raised less, or not at all
        # (the brightest channel from the uint8 pixels: a float max over the last axis is 10x slower)
        top = np.maximum(np.maximum(band[..., 0], band[..., 1]), band[..., 2]).astype(np.float32)
        np.minimum(gain, np.maximum(1.0, (CAP * 255.0) / np.maximum(top, 1.0)), out=gain)
        if chroma == 1.0:
            o *= gain[..., None]
        else:
            # luma times the gain, colour (the difference from luma) times gain ** chroma: each
            # channel ends between itself and the luma, both times the gain (none under 0 or over CAP)
            base = luma * np.float32(255.0)
            o -= base[..., None]
            o *= (np.sqrt(gain) if chroma == 0.5 else gain ** np.float32(chroma))[..., None]
            o += (base * gain)[..., None]
        if floor > 0:
            # the black floor: pixels still nearly black after the gain (no signal to multiply)
            # are raised by an even amount, faded out as their own lifted luma reaches FADE (the
            # gain is one factor per pixel, so the lifted luma is the luma times the gain)
            luma *= gain
            o += (np.float32(255.0 * floor * min(floor_ramp * amount, 1.0))
                  * np.clip(1.0 - luma / np.float32(FADE), 0.0, 1.0))[..., None]
        np.rint(o, out=o)
        np.clip(o, 0, 255, out=o)
        result[y0:y1] = o
    return result
