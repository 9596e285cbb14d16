"""Physically based low-light degradation: turn a well-lit sRGB photo into a dark, noisy one.

The model follows the usual sensor pipeline used to synthesise low-light
training pairs (Brooks et al., "Unprocessing Images for Learned Raw Denoising",
CVPR 2019; Wei et al., "A Physics-based Noise Formation Model for Extreme
Low-light Raw Denoising", CVPR 2020), reduced to what matters for 8-bit output:

1. sRGB -> linear light with the exact IEC 61966-2-1 transfer function;
2. a mild per-channel colour cast (gains ``1 +- color_cast``): white balance and
   spectral sensitivity drift in dim light;
3. exposure cut by a factor drawn log-uniformly in ``[exposure_min, exposure_max]``
   (stops, not linear steps, are what a photographer varies);
4. shot noise: the expected photo-electron count is ``linear * exposure * full_well``,
   drawn from a Poisson law and divided back by ``full_well`` so the image stays dark;
5. Gaussian read noise of std ``read_noise`` in linear light (white = 1);
6. clip to [0, 1], back to sRGB and 8-bit quantisation (round to nearest).

With ``uneven > 0`` that share of the draws is lit unevenly: step 3 multiplies by a
smooth illumination field (:mod:`lowlight.data.illumination`: soft lights, a window,
gradients, vignetting, mixed colour temperatures, up to 1:``light_ratio_max``) whose
brightest point gets the exposure, drawn log-uniformly in
``[exposure_min, peak_exposure_max]``. The noise of steps 4-5 then follows each pixel's
own signal level, so the shadows of a backlit scene are as noisy as a dark photo.

Because shot noise has std ``sqrt(signal / full_well)``, the signal-to-noise
ratio falls as ``sqrt(exposure)``: darker draws are also noisier, as in real
photos. Everything is vectorised over the whole image; randomness comes only
from the ``numpy.random.Generator`` passed in, so a seed reproduces the output
bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lowlight.config import DegradeConfig
from lowlight.data.illumination import LightField, illumination, sample_field
from lowlight.srgb import linear_to_srgb, srgb_to_linear

__all__ = ["Degradation", "sample_degradation", "apply_degradation", "darken"]


@dataclass(frozen=True)
class Degradation:
    """The random draws of one darkened image (recorded in the manifest)."""

    exposure: float  # linear factor applied to the light, e.g. 0.05 = 1/20
    gains: tuple[float, float, float]  # per-channel colour-cast gains (R, G, B)
    field: LightField | None = None  # uneven light (None: the same exposure everywhere)


def sample_degradation(cfg: DegradeConfig, rng: np.random.Generator, aspect: float = 1.0) -> Degradation:
    """Draw an exposure factor (log-uniform), colour-cast gains (uniform) and, for a share
    ``cfg.uneven`` of the draws, an illumination field for an image of ``aspect`` = height / width.

    With ``uneven == 0`` the generator is consumed exactly as before the field existed, so
    older prepared data reproduces bit for bit.
    """
    lo, hi = np.log(cfg.exposure_min), np.log(cfg.exposure_max)
    exposure = float(np.exp(rng.uniform(lo, hi))) if hi > lo else float(cfg.exposure_min)
    gains = rng.uniform(1 - cfg.color_cast, 1 + cfg.color_cast, 3)
    field = None
    if cfg.uneven > 0 and rng.uniform() < cfg.uneven:
        top = np.log(max(cfg.peak_exposure_max, cfg.exposure_min))
        exposure = float(np.exp(rng.uniform(np.log(cfg.exposure_min), top)))
        field = sample_field(rng, aspect, cfg.light_ratio_max, cfg.lights_max, cfg.window, cfg.vignette_max,
                             cfg.white_shift)
    return Degradation(exposure=exposure, gains=tuple(float(g) for g in gains), field=field)


def apply_degradation(rgb: np.ndarray, d: Degradation, cfg: DegradeConfig,
                      rng: np.random.Generator) -> np.ndarray:
    """Darken ``rgb`` (uint8 H x W x 3) with the given draws; noise comes from ``rng``."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected a uint8 H x W x 3 image, got {rgb.dtype} {rgb.shape}")
    linear = srgb_to_linear(rgb / 255.0) * np.asarray(d.gains)
    if d.field is not None:
        linear *= illumination(rgb.shape[0], rgb.shape[1], d.field)
    electrons = rng.poisson(np.clip(linear, 0, None) * (d.exposure * cfg.full_well))
    dark = electrons / cfg.full_well
    if cfg.read_noise > 0:
        dark = dark + rng.normal(0.0, cfg.read_noise, dark.shape)
    out = np.rint(linear_to_srgb(np.clip(dark, 0.0, 1.0)) * 255.0)
    return out.astype(np.uint8)


def darken(rgb_uint8: np.ndarray, cfg: DegradeConfig, rng: np.random.Generator,
           return_params: bool = False):
    """Low-light version of a well-lit photo: uint8 in, uint8 out (same shape).

    With ``return_params=True`` returns ``(image, Degradation)`` so callers can
    record the exposure and gains that were drawn.
    """
    d = sample_degradation(cfg, rng, rgb_uint8.shape[0] / max(rgb_uint8.shape[1], 1))
    out = apply_degradation(rgb_uint8, d, cfg, rng)
    return (out, d) if return_params else out
