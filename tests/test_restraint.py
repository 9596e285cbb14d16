"""The exposure restraint (lowlight/inference/restraint.py): a normally exposed photo is not
brightened overall; dark photos, photos with many crushed pixels and noisy (pushed) photos are
left to the booster; it never brightens and never darkens below the input."""

from __future__ import annotations

import numpy as np
import pytest

from lowlight.inference.exposure import grey_mean_u8
from lowlight.inference.restraint import CRUSHED, MEAN, NOISE, restrain_exposure, restraint_weight


def _flat(level: int, crushed: float = 0.0, shape=(40, 50), noise: float = 0.0) -> np.ndarray:
    """A clean photo around ``level`` (smooth shading, sensor noise of std ``noise``) with a
    share ``crushed`` of its rows at level 3."""
    rng = np.random.default_rng(level)
    shading = np.linspace(-15, 15, shape[1])[None, :, None]
    img = np.clip(np.rint(level + shading + rng.normal(0, noise, (*shape, 3))), 20, 255).astype(np.uint8)
    img[: round(crushed * shape[0])] = 3
    return img


def _brighter(img: np.ndarray, stops: float) -> np.ndarray:
    return np.clip(np.rint(img * 2.0 ** stops), 0, 255).astype(np.uint8)


def test_a_normally_exposed_photo_keeps_its_mean_level():
    low = _flat(110)  # grey mean ~0.43: past MEAN[1]
    out = _brighter(low, 0.3)
    before = out.copy()
    held = restrain_exposure(out, low)
    assert np.array_equal(out, before)  # not modified
    assert restraint_weight(low) == 1.0
    assert grey_mean_u8(held) == pytest.approx(grey_mean_u8(low), rel=0.01)


def test_dark_or_crushed_photos_are_left_to_the_booster():
    dark = _flat(30)  # grey mean ~0.12, under MEAN[0]
    out = _brighter(dark, 2.0)
    assert restraint_weight(dark) == 0.0 and restrain_exposure(out, dark) is out
    crushed = _flat(140, crushed=0.25)  # bright, but a quarter of it crushed: the lift's territory
    out = _brighter(crushed, 0.5)
    assert restraint_weight(crushed) == 0.0 and restrain_exposure(out, crushed) is out


def test_a_noisy_photo_was_pushed_and_is_left_to_the_booster():
    """Sensor noise in the flat regions marks a photo shot in little light: as bright and as
    uncrushed as a clean one, it is not held back."""
    clean, noisy = _flat(110), _flat(110, noise=3 * NOISE[0])
    assert restraint_weight(clean) == 1.0 and restraint_weight(noisy) == 0.0
    assert restraint_weight(noisy, noise=None) == 1.0  # without the noise ramp it would be
    out = _brighter(noisy, 0.3)
    assert restrain_exposure(out, noisy) is out


def test_it_never_brightens():
    low = _flat(120)
    darker = _brighter(low, -0.5)
    assert restrain_exposure(darker, low) is darker


def test_the_weight_ramps_with_the_mean_and_the_crushed_share():
    half_mean = 255 * (MEAN[0] + MEAN[1]) / 2
    low = np.full((20, 20, 3), round(half_mean), np.uint8)
    assert restraint_weight(low) == pytest.approx(0.5, abs=0.03)
    mid = (CRUSHED[0] + CRUSHED[1]) / 2  # 15 % crushed, on a bright photo
    low = _flat(160, crushed=mid)
    assert restraint_weight(low) == pytest.approx(0.5, abs=0.05)
    # a partial weight moves the mean part of the way, geometrically
    low = np.full((20, 20, 3), round(half_mean), np.uint8)
    out = _brighter(low, 0.4)
    w = restraint_weight(low)
    want = grey_mean_u8(low) ** w * grey_mean_u8(out) ** (1 - w)
    assert grey_mean_u8(restrain_exposure(out, low)) == pytest.approx(want, rel=0.01)
