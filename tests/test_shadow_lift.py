"""The shadow lift after the network (lowlight/inference/shadows.py): dark regions of a dark
photo come up, highlights and clean photos stay, no halo at a strong edge, nothing new clips,
black comes up to an even floor with the order of dark tones kept,
the same result in bands, and one clear line for a bad --shadows."""

from __future__ import annotations

import numpy as np
import pytest

import lowlight.inference.shadows as shadows
from lowlight.evaluation.exposure_measures import crushed_share, luma01
from lowlight.inference.settings import EnhanceError, check_shadows
from lowlight.inference.shadows import CAP, MAX_GAIN, TARGET, auto_amount, box_mean, lift_shadows

from conftest import synthetic_photo


def _half_dark(h=96, w=128, seed=0) -> np.ndarray:
    """Left half lit (luma ~0.6), right half in deep shadow (levels ~4-12) with texture."""
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.float64)
    img[:, : w // 2] = 150 + rng.normal(0, 6, (h, w // 2, 3))
    img[:, w // 2:] = 8 + rng.normal(0, 2, (h, w - w // 2, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def test_box_mean_is_scipys_uniform_filter_with_mirrored_edges():
    from scipy.ndimage import uniform_filter

    x = np.random.default_rng(1).random((23, 41))
    for r in (1, 6, 15):  # 15: a window wider than the short side
        assert np.allclose(box_mean(x, r), uniform_filter(x, 2 * r + 1, mode="reflect"), atol=1e-12)


def test_the_gate_reads_the_inputs_crushed_share():
    assert auto_amount(synthetic_photo(48, 64, seed=2)) == 0.0  # well lit: nothing crushed
    assert auto_amount(_half_dark()) == 1.0  # half the pixels crushed
    ramp = np.zeros((100, 10, 3), np.uint8)
    ramp[:] = 100
    ramp[:27] = 5  # 27 % crushed: between the gate's ends
    assert auto_amount(ramp) == pytest.approx((0.27 - shadows.GATE[0]) / (shadows.GATE[1] - shadows.GATE[0]))
    assert auto_amount(ramp, (0.2, 0.35)) == pytest.approx(0.07 / 0.15)  # the ablation's gates
    ramp[9:] = 100  # 9 % crushed: within the local-exposure issue's bound (10 %), left alone
    assert shadows.GATE[0] == 0.10 and auto_amount(ramp) == 0.0
    ramp[:12] = 5  # 12 %: a little lift
    assert 0 < auto_amount(ramp) < 0.1


def test_a_clean_photo_is_returned_as_it_is():
    img = synthetic_photo(48, 64, seed=3)
    assert lift_shadows(img, img) is img
    assert lift_shadows(img, img, 0.0) is img


def test_shadows_come_up_towards_the_target_and_lit_regions_stay():
    img = _half_dark()
    before = img.copy()
    out = lift_shadows(img, img)
    assert np.array_equal(img, before)  # the input is not modified
    w = img.shape[1]
    lit, dark = (slice(None), slice(4, w // 2 - 20)), (slice(None), slice(w // 2 + 20, w - 4))
    assert np.abs(out[lit].astype(int) - img[lit]).max() <= 1
    gain = luma01(out[dark]).mean() / luma01(img[dark]).mean()
    assert 2.5 < gain <= MAX_GAIN + 0.05  # deep shadow: up by most of the two stops the gain allows
    assert luma01(out[dark]).mean() <= TARGET + 0.01
    assert crushed_share(out[dark]) < 0.5 * crushed_share(img[dark])
    # a gain multiplies: the shadow's texture keeps its contrast relative to its level
    ratio = luma01(out[dark]).std() / luma01(out[dark]).mean()
    assert ratio == pytest.approx(luma01(img[dark]).std() / luma01(img[dark]).mean(), rel=0.15)


def test_the_colour_is_raised_by_the_gain_to_the_power_chroma():
    """A tinted deep shadow: its luma comes up by the gain, its colour (each channel's difference
    from the luma) by gain ** CHROMA; chroma 1 keeps the colour ratios; none under 0 or over CAP."""
    img = _half_dark()
    img[:, 64:] = np.clip(img[:, 64:].astype(int) + (-2, 3, -4), 0, 255).astype(np.uint8)  # olive
    dark = (slice(10, -10), slice(84, 124))

    def colour_and_luma(out):
        o = out[dark].astype(np.float64)
        return np.abs(o - luma01(out[dark])[..., None] * 255).mean(), luma01(out[dark]).mean()

    c0, y0 = colour_and_luma(img)
    for chroma in (1.0, shadows.CHROMA, 0.0):
        c, y = colour_and_luma(lift_shadows(img, img, 1.0, floor=0.0, chroma=chroma))
        gain = y / y0
        assert gain > 2.5
        assert c / c0 == pytest.approx(gain ** chroma, rel=0.15)
    assert 0 < shadows.CHROMA < 1
    assert np.array_equal(lift_shadows(img, img, 1.0), lift_shadows(img, img, 1.0, chroma=shadows.CHROMA))
    bright = _half_dark()
    bright[:, 64:] = (2, 0, 60)  # a saturated blue in the shadow: no channel under 0, none over CAP
    out = lift_shadows(bright, bright, shadows.SHADOWS_MAX, floor=0.0)
    assert out[:, 70:120].max() <= round(CAP * 255) and out[:, 70:120, 2].min() > 60


def test_no_halo_beside_a_strong_edge(monkeypatch):
    """A lit square on a dark ground: the ground right beside it is raised nearly as much as
    ground far from it. A plain blur of the light (the guided filter with a huge regulariser)
    leaves a dark ring there, raised less than a third as much."""
    h = w = 160
    img = np.full((h, w, 3), 10, np.uint8)
    img[60:100, 60:100] = 230
    img[:, :] += np.random.default_rng(0).integers(0, 3, (h, w, 1), dtype=np.uint8)

    def beside_over_far():
        out = luma01(lift_shadows(img, img, 1.0, floor=0.0))  # the gain alone (the floor would fill a ring in)
        assert np.abs(out[65:95, 65:95] - luma01(img)[65:95, 65:95]).max() < 2 / 255  # the lit square holds
        return out[60:100, 53:58].mean() / out[60:100, 5:20].mean()  # 2-7 px left of the square

    assert beside_over_far() > 0.7
    monkeypatch.setattr(shadows, "EPS", 1e6)
    assert beside_over_far() < 0.35


def test_nothing_new_clips_and_black_comes_up_to_an_even_floor():
    img = _half_dark()
    img[40:44, 100:104] = 240  # a small lamp inside the shadow
    img[10:20, 90:100] = 0  # a patch with no signal
    out = lift_shadows(img, img, shadows.SHADOWS_MAX)
    assert out.max() <= max(int(img.max()), round(CAP * 255))
    assert (out[40:44, 100:104] <= round(CAP * 255)).all()
    # no signal to multiply: the patch comes up to the floor, evenly (no texture, no grey cast)
    level = round(shadows.FLOOR * 255)
    assert (out[10:20, 90:100] == level).all()
    assert crushed_share(out[10:20, 90:100]) == 0.0
    # without the floor, black stays black
    assert (lift_shadows(img, img, shadows.SHADOWS_MAX, floor=0.0)[10:20, 90:100] == 0).all()


def test_the_floor_keeps_the_order_of_dark_tones_and_fades_with_the_amount():
    """A ramp of dark levels: the floor is a toe on the tone curve after the gain, so no pixel
    overtakes one the gain left brighter (the lightness order holds); the floor's share rises
    FLOOR_RAMP times as fast as the amount, up to all of it; pixels lifted past FADE get none."""
    ramp = np.repeat(np.arange(0, 64, dtype=np.uint8)[None, :, None], 3, axis=2).repeat(8, axis=0)
    flat = np.full((64, 64, 3), 0, np.uint8)  # the same dark everywhere: the guided filter's light is level-free
    for amount in (0.1, 0.5, 1.0, 2.0):
        gained = lift_shadows(ramp, ramp, amount, floor=0.0)[4, :, 1].astype(int)
        floored = lift_shadows(ramp, ramp, amount)[4, :, 1].astype(int)
        order = np.argsort(gained, kind="stable")
        assert (np.diff(floored[order]) >= 0).all()  # what the gain left in order, the floor keeps in order
        assert (floored >= gained).all() and floored.min() == round(
            shadows.FLOOR * 255 * min(shadows.FLOOR_RAMP * amount, 1.0))
    assert shadows.FLOOR_RAMP * 0.1 < 1  # a part of the floor at amount 0.1, all of it from 1 / FLOOR_RAMP
    part = lift_shadows(flat, flat, 0.1)
    assert abs(int(part[0, 0, 0]) - round(0.1 * shadows.FLOOR_RAMP * shadows.FLOOR * 255)) <= 1
    assert np.array_equal(lift_shadows(flat, flat, 1 / shadows.FLOOR_RAMP), lift_shadows(flat, flat, 1.0))
    assert np.array_equal(lift_shadows(flat, flat, 0.5, floor_ramp=1.0)[0, 0], [round(0.5 * shadows.FLOOR * 255)] * 3)
    bright = np.full((32, 32, 3), round(255 * shadows.FADE * 1.2), np.uint8)
    assert np.array_equal(lift_shadows(bright, flat, 1.0), lift_shadows(bright, flat, 1.0, floor=0.0))


def test_bands_and_whole_give_the_same_pixels(monkeypatch):
    img = _half_dark(101, 77, seed=4)
    whole = lift_shadows(img, img, 1.3)
    monkeypatch.setattr(shadows, "_BAND", 77 * 7)  # bands of 7 rows
    assert np.array_equal(lift_shadows(img, img, 1.3), whole)


@pytest.mark.parametrize("shape", [(1, 1), (2, 300), (300, 3), (5, 7)])
def test_any_size(shape):
    img = np.full((*shape, 3), 6, np.uint8)
    out = lift_shadows(img, img)
    assert out.shape == img.shape and out.dtype == np.uint8 and out.min() >= 6


def test_the_amount_is_checked_in_one_line():
    assert check_shadows(None) is None
    assert check_shadows(1) == 1.0
    for bad in (-0.1, 2.5, float("nan"), float("inf"), True, "1"):
        with pytest.raises(EnhanceError, match=r"--shadows .*from 0 \(off\) to 2"):
            check_shadows(bad)
