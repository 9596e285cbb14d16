"""The flat-patch noise estimate (lowlight/inference/noise_level.py): it reads sensor noise,
not texture or gradients, and samples a large photo in bands."""

from __future__ import annotations

import numpy as np
import pytest

import lowlight.inference.noise_level as noise_level
from lowlight.inference.noise_level import flat_noise_level


def _grey_noise(sigma: float, shape=(240, 320), level=120.0, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = level + rng.normal(0, sigma, shape)
    return np.repeat(np.clip(np.rint(y), 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def test_it_reads_the_noise_of_a_flat_grey_photo():
    # the flattest tenth of the patches reads low by design; it must still order and scale
    levels = [flat_noise_level(_grey_noise(s)) for s in (1.0, 2.0, 4.0, 8.0)]
    assert all(a < b for a, b in zip(levels, levels[1:]))
    assert levels[3] / levels[1] == pytest.approx(4.0, rel=0.15)
    assert 0.7 * 4.0 < levels[2] <= 4.0


def test_gradients_and_texture_elsewhere_do_not_count():
    ramp = np.linspace(20, 235, 320)[None, :].repeat(240, axis=0)
    smooth = np.repeat(np.rint(ramp).astype(np.uint8)[..., None], 3, axis=2)
    assert flat_noise_level(smooth) < 0.5  # a linear ramp cancels (up to 8-bit rounding)
    # half the photo busy texture (a checkerboard of 40 levels), half a clean flat wall
    photo = _grey_noise(0.5, seed=4)
    yy, xx = np.mgrid[0:240, 0:160]
    photo[:, 160:] = (100 + 40 * ((yy // 2 + xx // 2) % 2))[..., None]
    assert flat_noise_level(photo) < 0.6  # the wall's noise, not the texture's contrast
    noisy = np.clip(photo + np.random.default_rng(1).normal(0, 4, photo.shape), 0, 255).round().astype(np.uint8)
    assert flat_noise_level(noisy) > 2.0


def test_a_large_photo_is_sampled_and_reads_the_same(monkeypatch):
    img = _grey_noise(3.0, shape=(400, 500), seed=2)
    whole = flat_noise_level(img)
    monkeypatch.setattr(noise_level, "SAMPLE", 400 * 500 // 5)  # every fifth band of patch rows
    assert flat_noise_level(img) == pytest.approx(whole, rel=0.1)


@pytest.mark.parametrize("shape", [(1, 1), (5, 400), (400, 5), (12, 12)])
def test_tiny_or_black_photos_read_zero(shape):
    assert flat_noise_level(np.full((*shape, 3), 90, np.uint8)) == 0.0
    assert flat_noise_level(np.zeros((64, 64, 3), np.uint8)) == 0.0  # no patch carries a signal
