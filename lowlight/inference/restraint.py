"""Exposure restraint: a photo that is already normally exposed is not brightened overall.

The quantile booster learned its exposure from LOL, where even a "low" shot at a middling
mean luma has a brighter reference. So it brightens every photo of that level, and a clean,
normally exposed photo comes back a little brighter than it was: that, not lost detail, is
what held the well-lit photos back (docs/results.md, "The exposure restraint").

This step, after the exposure anchor and before the shadow lift, scales the output back
towards the input's grey mean, one gain for the whole photo (tiles alike), by the weight

    w = ramp(input grey mean: 0 at MEAN[0], 1 at MEAN[1])
        * ramp(crushed share: 0 at CRUSHED[0], 1 at CRUSHED[1])
        * ramp(noise in the flattest patches: 0 at NOISE[0], 1 at NOISE[1])

so the output's grey mean becomes ``mean_in ** w * mean_out ** (1 - w)``. It only ever holds
brightening back (a gain under 1), never darkens a photo below its input and never brightens
one. A dark photo (mean under 0.2) or one with many crushed pixels (20 % or more, where the
shadow lift's gate starts) is left to the booster. So is one whose flattest regions show
sensor noise (:mod:`lowlight.inference.noise_level`): signal-dependent noise is the physical
mark of a photo shot in little light and pushed, which a clean, normally exposed one lacks
(the issue's "dim and clean" against "dark and noisy"). The two ramps were chosen on LOL ``val``
and training-side photos, never on the held-out ones
(``python benchmarks/exposure_restraint_ablation.py``).
"""

from __future__ import annotations

import numpy as np

from lowlight.inference.exposure import grey_mean_u8, scale_levels
from lowlight.inference.noise_level import flat_noise_level
from lowlight.inference.shadows import crushed_fraction

__all__ = ["MEAN", "CRUSHED", "NOISE", "restraint_weight", "restrain_exposure"]

MEAN = (0.2, 0.3)  # the input's grey mean (of 1) at which the restraint starts, and is full
CRUSHED = (0.2, 0.1)  # the input's crushed share at which it starts (none from 0.2 up), and is full
NOISE = (1.5, 1.0)  # the noise in its flattest patches (of 255, noise_level.py): starts, and is full


def _ramp(x: float, start: float, full: float) -> float:
    return float(np.clip((x - start) / (full - start), 0.0, 1.0))


def restraint_weight(low: np.ndarray, mean: tuple[float, float] = MEAN, crushed: tuple[float, float] = CRUSHED,
                     noise: tuple[float, float] | None = NOISE) -> float:
    """0 (the booster's exposure kept) to 1 (the input's grey mean kept) for input ``low`` (uint8);
    ``noise`` None leaves the noise out (for the ablation)."""
    return _weight(low, grey_mean_u8(low), mean, crushed, noise)


def _weight(low: np.ndarray, grey: float, mean, crushed, noise) -> float:
    w = _ramp(grey / 255.0, *mean)
    if w > 0:
        w *= _ramp(crushed_fraction(low), *crushed)
    if w > 0 and noise is not None:
        w *= _ramp(flat_noise_level(low), *noise)
    return w


def restrain_exposure(out: np.ndarray, low: np.ndarray, mean: tuple[float, float] = MEAN,
                      crushed: tuple[float, float] = CRUSHED, noise: tuple[float, float] | None = NOISE) -> np.ndarray:
    """``out`` (uint8, the enhanced photo) with its brightening over ``low`` held back by
    :func:`restraint_weight`; ``out`` itself when there is nothing to hold back (not modified)."""
    m_in = grey_mean_u8(low)
    w = _weight(low, m_in, mean, crushed, noise)
    if w == 0.0:
        return out
    m_out = grey_mean_u8(out)
    if m_out <= 0.0:
        return out
    gain = (m_in / m_out) ** w
    return scale_levels(out, gain) if gain < 1.0 else out
