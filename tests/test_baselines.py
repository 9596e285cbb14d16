"""Classical baselines: shape and dtype kept, dark images brightened, each curve checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from lowlight.evaluation.baselines import NAMES, baselines, clahe, gamma, gamma_exponent, histeq
from lowlight.config import EvaluateConfig

from conftest import darken, synthetic_photo

LUMA = np.array([0.299, 0.587, 0.114])


def _luma_mean(img):
    return float((img / 255.0 @ LUMA).mean())


def test_registry_has_every_baseline_in_order():
    assert tuple(baselines()) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_baseline_keeps_shape_dtype_and_input(name):
    low = darken(synthetic_photo(40, 56, seed=2))
    before = low.copy()
    out = baselines()[name](low)
    assert out.dtype == np.uint8 and out.shape == low.shape
    assert np.array_equal(low, before), "a baseline must not modify its input"
    if name == "identity":
        assert np.array_equal(out, low) and out is not low
    else:
        assert _luma_mean(out) > _luma_mean(low) + 0.15, f"{name} should brighten a dark image"


@pytest.mark.parametrize("name", NAMES)
def test_baseline_refuses_non_rgb(name):
    with pytest.raises(ValueError, match="uint8 H x W x 3"):
        baselines()[name](np.zeros((8, 8), np.uint8))


def test_histeq_by_hand():
    img = np.zeros((2, 2, 3), np.uint8)
    img[..., 0] = [[10, 10], [20, 30]]  # cdf 2, 3, 4 from cdf_min 2 -> 0, 255/2, 255
    img[..., 1] = 7  # constant: left as it is
    img[..., 2] = [[0, 255], [0, 255]]
    out = histeq(img)
    assert out[..., 0].tolist() == [[0, 0], [128, 255]]
    assert (out[..., 1] == 7).all()
    assert out[..., 2].tolist() == [[0, 255], [0, 255]]


def test_histeq_flattens_the_histogram():
    low = darken(synthetic_photo(64, 64, seed=4))
    out = histeq(low)
    for c in range(3):
        assert out[..., c].min() == 0 and out[..., c].max() == 255
        # an equalised channel has its median near mid-grey
        assert 100 < np.median(out[..., c]) < 155


def test_gamma_exponent_by_hand():
    img = np.full((4, 4, 3), 64, np.uint8)
    want = np.log(0.45) / np.log(64 / 255)  # (64/255) ** g = 0.45
    assert gamma_exponent(img, 0.45) == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("target", [0.3, 0.45, 0.6])
def test_gamma_hits_the_target_mean(target):
    low = darken(synthetic_photo(48, 64, seed=5))
    out = gamma(low, target)
    assert _luma_mean(out) == pytest.approx(target, abs=0.005)  # up to rounding to 8 bits
    # one curve for all channels: the order of values within a channel is kept
    order = np.argsort(low[..., 0].ravel(), kind="stable")
    assert (np.diff(out[..., 0].ravel()[order].astype(int)) >= 0).all()


def test_gamma_on_an_unreachable_target_stays_finite():
    black = np.zeros((8, 8, 3), np.uint8)
    assert np.array_equal(gamma(black, 0.45), black)
    assert gamma_exponent(black, 0.45) == pytest.approx(1 / 20)


def test_clahe_uses_its_clip_limit():
    low = darken(synthetic_photo(64, 64, seed=6))
    a, b = clahe(low, 0.01), clahe(low, 0.05)

    def local_contrast(img):
        return np.abs(np.diff(img.astype(float), axis=1)).mean()

    # a higher clip limit lets the local histograms stretch further: more local contrast
    assert local_contrast(b) > 1.3 * local_contrast(a)


def test_params_are_bound_from_the_config():
    low = darken(synthetic_photo(48, 64, seed=7))
    cfg = EvaluateConfig(gamma_mean=0.3, clahe_clip=0.05)
    fns = baselines(cfg)
    assert np.array_equal(fns["gamma"](low), gamma(low, 0.3))
    assert np.array_equal(fns["clahe"](low), clahe(low, 0.05))
