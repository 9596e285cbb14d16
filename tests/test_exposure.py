"""The exposure anchor (train.exposure_anchor): one gain that pulls the network's brightness
towards the mapped image's, applied the same way by the enhancer and by training's validation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from lowlight.config import ConfigError, TrainConfig
from lowlight.evaluation.scores import grey_mean
from lowlight.inference.enhancer import EnhanceError, Enhancer
from lowlight.inference.exposure import (KNEE, MAX_GAIN, anchor_exposure, compensate_exposure, compensation_table,
                                        exposure_gain, shoulder_table)
from lowlight.models import build_model
from lowlight.models.checkpoint import save_checkpoint

from conftest import synthetic_photo


def _pair(seed=0):
    out = (synthetic_photo(60, 80, seed=seed).astype(np.float64) * 0.5).astype(np.uint8)  # mean near 60, no clipping
    mapped = synthetic_photo(60, 80, seed=seed + 1)
    return out, mapped


def test_alpha_moves_the_grey_mean_geometrically():
    out, mapped = _pair()
    g_out, g_map = grey_mean(out), grey_mean(mapped)
    assert g_map > 1.5 * g_out
    assert anchor_exposure(out, mapped, 0.0) is out
    full = anchor_exposure(out, mapped, 1.0)
    assert abs(grey_mean(full) - g_map) < 1.0  # the mapping's brightness, up to rounding and clipping
    half = anchor_exposure(out, mapped, 0.5)
    assert abs(grey_mean(half) - np.sqrt(g_out * g_map)) < 1.0
    # one gain for the whole image: the pixel ratios (local contrast) are the network's
    mask = out > 20
    ratio = half[mask] / out[mask]
    assert ratio.std() < 0.05 and abs(ratio.mean() - exposure_gain(out, mapped, 0.5)) < 0.02


def test_inputs_untouched_and_edge_cases():
    out, mapped = _pair(3)
    before_out, before_map = out.copy(), mapped.copy()
    anchor_exposure(out, mapped, 0.75)
    assert np.array_equal(out, before_out) and np.array_equal(mapped, before_map)
    black = np.zeros_like(out)
    assert np.array_equal(anchor_exposure(black, mapped, 1.0), black)  # nothing to scale
    nearly_black = np.ones_like(out)
    assert exposure_gain(nearly_black, mapped, 1.0) == MAX_GAIN  # bounded
    with pytest.raises(ValueError, match="mapped image"):
        anchor_exposure(out, mapped[:10], 1.0)


def test_large_image_in_bands():
    rng = np.random.default_rng(0)
    out = rng.integers(0, 200, (3000, 500, 3), dtype=np.uint8)  # more rows than one band
    mapped = np.full_like(out, 150)
    gain = exposure_gain(out, mapped, 1.0)
    assert gain > 1.2
    plain = np.clip(np.rint(out.astype(np.float32) * np.float32(gain)), 0, 255).astype(np.uint8)
    assert np.array_equal(anchor_exposure(out, mapped, 1.0, knee=None), plain)
    assert np.array_equal(anchor_exposure(out, mapped, 1.0), shoulder_table(gain)[out])


@pytest.mark.parametrize("gain", [1.02, 1.25, 1.6, 2.5, MAX_GAIN])
def test_shoulder_rolls_off_without_clipping(gain):
    table = shoulder_table(gain).astype(int)
    plain = shoulder_table(gain, knee=None).astype(int)
    assert np.all(np.diff(table) >= 0) and table[0] == 0 and table[255] == 255  # the order of tones; white stays white
    below = np.arange(256) * gain <= KNEE * 255 - 1
    assert np.array_equal(table[below], plain[below])  # exact up to the knee
    assert np.all(table <= plain)  # it only ever holds a tone back
    clipped = plain == 255
    # a plain scale merges every level past 255 / gain into white; the shoulder keeps them apart
    assert len(np.unique(table[clipped])) >= min(clipped.sum() - 1, 15)
    # the slope is continuous at the knee: the first rolled-off step is no steeper than the line's
    k = int(np.argmax(~below))
    assert table[k + 1] - table[k] <= int(np.ceil(gain)) + 1


def test_shoulder_holds_a_bright_sky_a_plain_gain_clips():
    sky = np.full((4, 4, 3), int(0.85 * 255), np.uint8)  # a light sky at 0.85, gain 1.25 from the anchor
    assert shoulder_table(1.25, knee=None)[sky].min() == 255  # scaled and clipped: blown
    assert shoulder_table(1.25)[sky].max() < 0.98 * 255  # on the shoulder: still a sky
    assert np.array_equal(shoulder_table(0.8), shoulder_table(0.8, knee=None))  # darkening is a plain scale
    assert np.array_equal(shoulder_table(1.0), np.arange(256))
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="highlight knee must be between 0 and 1"):
            shoulder_table(1.2, bad)


@pytest.mark.parametrize("ev", [-3.0, -1.0, -0.3, 0.3, 1.0, 2.0, 3.0])
def test_exposure_compensation_is_stops_of_linear_light(ev):
    from lowlight.srgb import linear_to_srgb, srgb_to_linear

    table = compensation_table(ev).astype(int)
    assert np.all(np.diff(table) >= 0) and table[0] == 0  # the order of tones; black stays black
    exact = np.rint(255 * linear_to_srgb(np.minimum(srgb_to_linear(np.arange(256) / 255) * 2.0 ** ev, 1.0)))
    below = (exact < KNEE * 255 - 1) | (ev < 0)  # exact in linear light up to the knee (darkening: everywhere)
    assert np.array_equal(table[below], exact[below])
    if ev > 0:
        assert table[255] == 255 and np.all(table >= np.arange(256))  # white stays white; it only brightens
        clipped = exact == 255  # a plain gain merges these into white; the shoulder keeps some apart
        assert len(np.unique(table[clipped])) >= min(clipped.sum() - 1, 6)
    else:
        assert np.all(table <= np.arange(256))


def test_exposure_compensation_on_a_photo():
    rgb = synthetic_photo(20, 24, seed=4)
    kept = rgb.copy()
    assert compensate_exposure(rgb, 0.0) is rgb  # 0: the tool's own exposure, no copy
    up = compensate_exposure(rgb, 1.0)
    assert np.array_equal(up, compensation_table(1.0)[rgb]) and np.array_equal(rgb, kept)
    assert compensation_table(1.0)[119] == 164  # mid-grey, one stop up (the linear light doubled)
    assert compensation_table(-1.0)[164] == 119


def test_config_needs_the_mapped_image():
    assert TrainConfig().exposure_anchor == 1.0
    TrainConfig(inputs="low", exposure_anchor=0.0, target_exposure="reference")
    with pytest.raises(ConfigError, match=r"train.exposure_anchor \(1.0\) and train.target_exposure \('mapped'\) need"):
        TrainConfig(inputs="low")
    with pytest.raises(ConfigError, match=r"^train.target_exposure \('mapped'\) needs the mapped image"):
        TrainConfig(inputs="low", exposure_anchor=0.0)


@pytest.fixture(scope="module")
def qmodel():
    from lowlight.config import QuantilesConfig
    from lowlight.histbranch.quantiles import QuantileModel

    from conftest import darken

    highs = [synthetic_photo(40, 56, seed=s) for s in range(6)]
    lows = [darken(h, 0.05, seed=s) for s, h in enumerate(highs)]
    return QuantileModel(QuantilesConfig(n_estimators=6)).fit(lows, highs, seed=0, threads=1)


def _checkpoint(path, train_params):
    torch.manual_seed(0)
    net = build_model("unet_small", in_channels=6)
    params = {"train": train_params} if train_params is not None else {}
    return save_checkpoint(path, net.eval(), inputs="low+mapped", params=params)


def test_enhancer_reads_the_checkpoints_anchor(qmodel, tmp_path):
    from conftest import darken

    q = qmodel.save(tmp_path / "q.ubj")
    low = darken(synthetic_photo(48, 64, seed=9), 0.05)
    old = Enhancer.from_files(q, _checkpoint(tmp_path / "old.pt", None))
    assert old.exposure_anchor == 0.0  # validated without it
    anchored = Enhancer.from_files(q, _checkpoint(tmp_path / "new.pt", {"exposure_anchor": 1.0}))
    assert anchored.exposure_anchor == 1.0
    mapped = anchored.map(low)
    free, out = old(low), anchored(low)
    assert abs(grey_mean(out) - grey_mean(mapped)) < 1.0
    assert np.array_equal(out, anchor_exposure(free, mapped, 1.0))  # the same pixels training validates
    # an explicit setting wins over the checkpoint's
    assert Enhancer.from_files(q, tmp_path / "new.pt", exposure_anchor=0.0).exposure_anchor == 0.0
    bad = _checkpoint(tmp_path / "bad.pt", {"exposure_anchor": "much"})
    with pytest.raises(EnhanceError, match=r"bad\.pt: params train.exposure_anchor"):
        Enhancer.from_files(q, bad)
    with pytest.raises(ValueError, match="exposure_anchor"):
        Enhancer(qmodel, None, exposure_anchor=2)


def test_one_gain_for_the_whole_photo_when_tiled(qmodel, tmp_path):
    from conftest import darken

    q = qmodel.save(tmp_path / "q.ubj")
    anchored = Enhancer.from_files(q, _checkpoint(tmp_path / "a.pt", {"exposure_anchor": 1.0}))
    low = darken(synthetic_photo(300, 420, seed=7), 0.05)
    whole = anchored(low)
    tiled = dataclasses.replace(anchored, tile_pixels=100 * 100, tile=160, overlap=48)(low)
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 2
    assert abs(grey_mean(tiled) - grey_mean(anchored.map(low))) < 1.0
