"""Uneven light for synthetic low-light pairs: a smooth illumination field in linear light.

Real dark photos are rarely dark everywhere: a backlit room, a doorway onto a sunny
square, a face under one street lamp, a half-lit interior. One exposure factor for the
whole photo (:mod:`lowlight.data.degrade`) never shows the training data such scenes, so a
model fitted on it learns one brightness decision per photo. This module draws a field
``L(y, x, c)`` that multiplies the clean photo's linear light before the sensor noise:

* an ambient term plus 1 to ``lights_max`` soft light sources (Gaussian falloff, centres
  anywhere in or near the frame), each with its own colour temperature;
* with probability ``window``, a bright soft-edged rectangle (a window or a doorway);
* a linear gradient and lens vignetting;
* normalised so the brightest point is 1 and the darkest ``1 / ratio``, with ``ratio``
  drawn log-uniformly up to ``light_ratio_max`` (1:30 inside one photo).

Light from different sources mixes in linear light, so the tint of a pixel is the
intensity-weighted mean of the tints of the lights reaching it (mixed colour
temperatures, as under tungsten indoors and daylight through a window). The field is
smooth by construction: it moves brightness, never edges, so the clean photo stays the
right answer everywhere. Randomness comes only from the generator passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LightField", "sample_field", "illumination"]

# Colour-temperature shifts of a light, as (R, G, B) gain slopes: warm (tungsten, +) to
# cool (shade, -). Green is the reference, as white balance usually keeps it.
_TINT = np.array([1.0, 0.0, -1.0])


@dataclass(frozen=True)
class LightField:
    """The random draws of one illumination field (coordinates in units of the longer side)."""

    ratio: float  # brightest / darkest point of the field
    ambient: float  # weight of the uniform term
    lights: tuple[tuple[float, float, float, float, float], ...]  # (cy, cx, sigma, weight, tint)
    window: tuple[float, float, float, float, float, float, float] | None  # y0, y1, x0, x1, soft, weight, tint
    gradient: tuple[float, float]  # (angle in radians, strength)
    vignette: float  # 0 = none; brightness at the corners falls by this share


def sample_field(rng: np.random.Generator, aspect: float, light_ratio_max: float, lights_max: int,
                 window: float, vignette_max: float, white_shift: float) -> LightField:
    """Draw a field for an image of ``aspect`` = height / width."""
    hy, hx = (aspect, 1.0) if aspect <= 1 else (1.0, 1.0 / aspect)  # frame extent in long-side units
    ratio = float(np.exp(rng.uniform(np.log(2.0), np.log(max(light_ratio_max, 2.0)))))
    lights = []
    for _ in range(int(rng.integers(1, max(lights_max, 1) + 1))):
        cy, cx = rng.uniform(-0.15, 1.15) * hy, rng.uniform(-0.15, 1.15) * hx
        lights.append((float(cy), float(cx), float(rng.uniform(0.08, 0.45)),
                       float(np.exp(rng.uniform(np.log(0.5), np.log(4.0)))), float(rng.uniform(-1, 1) * white_shift)))
    win = None
    if rng.uniform() < window:
        y0, x0 = rng.uniform(0, 0.7) * hy, rng.uniform(0, 0.7) * hx
        y1, x1 = y0 + rng.uniform(0.2, 0.6) * hy, x0 + rng.uniform(0.15, 0.5) * hx
        win = (float(y0), float(y1), float(x0), float(x1), float(rng.uniform(0.03, 0.12)),
               float(np.exp(rng.uniform(np.log(2.0), np.log(8.0)))), float(rng.uniform(-1, 1) * white_shift))
    return LightField(ratio=ratio, ambient=float(rng.uniform(0.0, 0.3)), lights=tuple(lights), window=win,
                      gradient=(float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(0, 1.0))),
                      vignette=float(rng.uniform(0, vignette_max)))


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def illumination(h: int, w: int, field: LightField) -> np.ndarray:
    """The field on an ``h x w`` image: float32 ``(h, w, 3)``, brightest luminance 1, darkest ``1 / ratio``."""
    scale = float(max(h, w))
    y = ((np.arange(h, dtype=np.float32) + 0.5) / scale)[:, None]
    x = ((np.arange(w, dtype=np.float32) + 0.5) / scale)[None, :]
    intensity = np.full((h, w), field.ambient, dtype=np.float32)
    tinted = np.zeros((h, w), dtype=np.float32)  # sum of intensity x tint: the mixed temperature
    for cy, cx, sigma, weight, tint in field.lights:
        shape = weight * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2.0 * sigma * sigma))
        intensity += shape
        tinted += shape * tint
    if field.window is not None:
        y0, y1, x0, x1, soft, weight, tint = field.window
        shape = weight * (_smoothstep((y - y0) / soft + 0.5) * _smoothstep((y1 - y) / soft + 0.5)
                          * _smoothstep((x - x0) / soft + 0.5) * _smoothstep((x1 - x) / soft + 0.5))
        intensity += shape
        tinted += shape * tint
    tint = tinted / np.maximum(intensity, 1e-6)  # before the gradient and vignette, which scale every light alike
    angle, strength = field.gradient
    ramp = (np.cos(angle) * (x - 0.5 * w / scale) + np.sin(angle) * (y - 0.5 * h / scale))
    intensity *= 1.0 + strength * ramp
    r2 = ((y - 0.5 * h / scale) ** 2 + (x - 0.5 * w / scale) ** 2) / (0.25 * (h * h + w * w) / scale**2)
    intensity *= 1.0 - field.vignette * r2
    lo, hi = float(intensity.min()), float(intensity.max())
    span = hi - lo if hi - lo > 1e-6 else 1.0
    level = 1.0 / field.ratio + (1.0 - 1.0 / field.ratio) * (intensity - lo) / span
    gains = 1.0 + tint[..., None] * _TINT.astype(np.float32)
    gains /= gains @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)[:, None] + 1e-6  # keep luminance
    return (level[..., None] * gains).astype(np.float32)
