"""The low-light model: darker, noisier (more so at lower exposure), exact sRGB, reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from lowlight.config import DegradeConfig
from lowlight.data.degrade import Degradation, apply_degradation, darken, sample_degradation
from lowlight.srgb import linear_to_srgb, srgb_to_linear

from conftest import synthetic_photo


def test_srgb_transfer_is_the_exact_standard():
    # reference values of IEC 61966-2-1, not the 2.2 power law
    assert srgb_to_linear(np.array(0.5)) == pytest.approx(0.214041, abs=1e-6)
    assert srgb_to_linear(np.array(0.04045)) == pytest.approx(0.04045 / 12.92)
    assert linear_to_srgb(np.array(0.0031308)) == pytest.approx(0.0031308 * 12.92)
    assert linear_to_srgb(np.array(1.0)) == pytest.approx(1.0)
    x = np.linspace(0, 1, 1001)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-12)
    # every 8-bit level survives the round trip
    levels = np.arange(256) / 255
    assert np.array_equal(np.rint(linear_to_srgb(srgb_to_linear(levels)) * 255), np.arange(256))


def test_darken_is_darker_same_shape_uint8(photo):
    cfg = DegradeConfig()
    low = darken(photo, cfg, np.random.default_rng(0))
    assert low.dtype == np.uint8 and low.shape == photo.shape
    assert low.mean() < 0.5 * photo.mean()
    with pytest.raises(ValueError, match="uint8"):
        darken(photo.astype(np.float32), cfg, np.random.default_rng(0))


def test_brightness_follows_exposure_and_gains():
    """Mean linear light of the result = exposure * gain * mean linear light of the input."""
    img = synthetic_photo(96, 128, seed=3)
    cfg = DegradeConfig(read_noise=0.0, full_well=1e6)  # nearly noise-free to check the mean
    low, d = darken(img, cfg, np.random.default_rng(5), return_params=True)
    lin_hi = srgb_to_linear(img / 255).mean(axis=(0, 1))
    lin_lo = srgb_to_linear(low / 255).mean(axis=(0, 1))
    np.testing.assert_allclose(lin_lo / lin_hi, d.exposure * np.array(d.gains), rtol=0.03)


def test_darken_adds_noise_on_a_flat_image():
    flat = np.full((64, 64, 3), 170, np.uint8)
    low = darken(flat, DegradeConfig(), np.random.default_rng(1))
    assert low.std(axis=(0, 1)).min() > 0.5  # the input has none
    clean = apply_degradation(flat, Degradation(0.05, (1.0, 1.0, 1.0)),
                              DegradeConfig(read_noise=0, full_well=1e9), np.random.default_rng(1))
    assert clean.std() < 0.6  # with an enormous full well only quantisation is left


def _snr(level: int, exposure: float, **kw) -> float:
    flat = np.full((128, 128, 3), level, np.uint8)
    cfg = DegradeConfig(exposure_min=exposure, exposure_max=exposure, color_cast=0.0, **kw)
    lin = srgb_to_linear(darken(flat, cfg, np.random.default_rng(2)) / 255)
    return float(lin.mean() / lin.std())


def test_noise_grows_as_exposure_drops_like_shot_noise():
    snrs = [_snr(180, e, read_noise=0.0) for e in (1 / 8, 1 / 20, 1 / 40)]
    assert snrs[0] > snrs[1] > snrs[2]
    # shot noise: SNR = sqrt(photo-electrons) = sqrt(linear * exposure * full_well)
    lin = float(srgb_to_linear(np.array(180 / 255)))
    for e, snr in zip((1 / 8, 1 / 20, 1 / 40), snrs):
        assert snr == pytest.approx(np.sqrt(lin * e * 1500.0), rel=0.1)
    # read noise only makes it worse
    assert _snr(180, 1 / 40, read_noise=0.01) < snrs[2]


def test_same_seed_same_bits_other_seed_differs(photo):
    cfg = DegradeConfig()
    a = darken(photo, cfg, np.random.default_rng(7))
    b = darken(photo, cfg, np.random.default_rng(7))
    c = darken(photo, cfg, np.random.default_rng(8))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_sampled_parameters_stay_in_range_and_are_log_uniform():
    cfg = DegradeConfig(exposure_min=1 / 40, exposure_max=1 / 8, color_cast=0.08)
    rng = np.random.default_rng(0)
    draws = [sample_degradation(cfg, rng) for _ in range(4000)]
    e = np.array([d.exposure for d in draws])
    g = np.array([d.gains for d in draws])
    assert e.min() >= 1 / 40 and e.max() <= 1 / 8
    # log-uniform: the median is the geometric mean of the bounds (uniform would give 0.075)
    assert np.median(e) == pytest.approx(np.sqrt(1 / 40 / 8), rel=0.05)
    assert g.min() >= 0.92 and g.max() <= 1.08 and g.std() > 0.03
    fixed = sample_degradation(DegradeConfig(exposure_min=0.1, exposure_max=0.1, color_cast=0.0), rng)
    assert fixed.exposure == pytest.approx(0.1) and fixed.gains == (1.0, 1.0, 1.0)


def test_white_saturates_nowhere_and_black_stays_black():
    img = np.zeros((32, 32, 3), np.uint8)
    img[:16] = 255
    cfg = DegradeConfig(read_noise=0.0)
    low, d = darken(img, cfg, np.random.default_rng(0), return_params=True)
    assert low[16:].max() == 0  # no light, no shot noise
    expected = np.rint(linear_to_srgb(d.exposure * np.array(d.gains)) * 255)
    np.testing.assert_allclose(low[:16].mean(axis=(0, 1)), expected, atol=3)
