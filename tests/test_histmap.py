"""Target histograms, the KDE bandwidth conversion and CDF matching (lowlight.histbranch.histmap)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from scipy.stats import gaussian_kde

from conftest import darken, synthetic_photo
from lowlight.config import HistmapConfig, QuantilesConfig
from lowlight.histbranch.histmap import (interp_pdf, kde_density, kde_factor, kde_pdf, limit_contrast, map_image,
                              map_to_histogram, match_lut, percentile_weights, target_pdf)
from lowlight.histbranch.histogram import LUMA_WEIGHTS, channel_counts, luma, percentiles
from lowlight.histbranch.quantiles import QuantileModel

LEVELS = np.arange(256.0)
CONFIGS = [HistmapConfig(method="interp"), HistmapConfig(method="kde", bandwidth=6.0),
           HistmapConfig(method="kde", bandwidth=2.0, kde_weights="equal"),
           HistmapConfig(method="interp", space="luminance"), HistmapConfig(method="kde", space="luminance")]


# --------------------------------------------------------------------------- KDE bandwidth


@pytest.mark.parametrize("weights", ["equal", "trapezoid"])
@pytest.mark.parametrize("bandwidth", [1.5, 6.0, 20.0])
def test_kde_factor_gives_scipy_a_kernel_of_that_width(weights, bandwidth):
    rng = np.random.default_rng(0)
    sample = np.sort(rng.gamma(2.0, 30.0, 21))
    w = percentile_weights(21, weights)
    factor = kde_factor(sample, bandwidth, w)
    kde = gaussian_kde(sample, bw_method=factor, weights=w)
    assert np.sqrt(kde.covariance[0, 0]) == pytest.approx(bandwidth, rel=1e-12)
    # and our closed-form Gaussian sum is scipy's density
    np.testing.assert_allclose(kde_density(sample, bandwidth, weights=w), kde(LEVELS), rtol=1e-10, atol=1e-15)


def test_passing_the_width_as_scipy_factor_is_the_published_defect():
    """bw_method=6 means 6 standard deviations of the sample, not 6 levels."""
    sample = np.linspace(10, 200, 21)
    wrong = gaussian_kde(sample, bw_method=6.0)
    assert np.sqrt(wrong.covariance[0, 0]) == pytest.approx(6.0 * sample.std(ddof=1))
    assert np.sqrt(wrong.covariance[0, 0]) > 300  # a kernel wider than the whole 0..255 range


def test_kde_factor_refuses_degenerate_samples():
    with pytest.raises(ValueError, match="equal"):
        kde_factor(np.full(21, 7.0), 6.0)
    with pytest.raises(ValueError, match="two"):
        kde_factor(np.array([3.0]), 6.0)


def test_kde_pdf_handles_a_single_value_that_scipy_cannot():
    pdf = kde_pdf(np.full(21, 100.0), 6.0)
    assert np.all(np.isfinite(pdf)) and pdf.sum() == pytest.approx(1.0)
    assert pdf.argmax() == 100
    assert pdf[100 - 6] == pytest.approx(pdf[100] * np.exp(-0.5), rel=1e-9)  # std 6 levels


def test_trapezoid_weights_halve_the_extremes():
    w = percentile_weights(21, "trapezoid")
    assert w.sum() == pytest.approx(1.0) and w[0] == pytest.approx(w[10] / 2)
    assert percentile_weights(21, "equal").tolist() == [1 / 21] * 21


# --------------------------------------------------------------------------- interpolated target


def test_interp_pdf_is_piecewise_uniform_between_percentiles():
    q = np.linspace(0, 200, 21)  # uniform on [0, 200]
    pdf = interp_pdf(q)
    assert pdf.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(pdf[1:200], 1 / 200, rtol=1e-9)
    assert pdf[201:].sum() == pytest.approx(0.0)
    # the CDF passes through every percentile
    cdf = np.cumsum(interp_pdf(np.array([0, 10, 10, 50, 255.0])))
    assert cdf[9] == pytest.approx(0.25 * 9.5 / 10)


def test_interp_pdf_point_masses_for_repeated_percentiles():
    pdf = interp_pdf(np.full(21, 255.0))
    assert pdf[255] == pytest.approx(1.0)
    pdf = interp_pdf(np.r_[np.zeros(11), np.full(10, 255.0)])
    # the one gap from 0 to 255 spreads its 5 % over [0, 255]; half a level of it falls in each end level
    edge = 0.05 * 0.5 / 255
    assert pdf[0] == pytest.approx(0.5 + edge) and pdf[255] == pytest.approx(0.45 + edge)
    assert pdf[1:255].sum() == pytest.approx(0.05 * 254 / 255)


# --------------------------------------------------------------------------- CDF matching


def test_mapping_onto_its_own_histogram_is_the_identity():
    for img in (synthetic_photo(48, 64, seed=2), darken(synthetic_photo(48, 64, seed=3))):
        counts = channel_counts(img)
        assert np.array_equal(map_to_histogram(img, counts / counts.sum(axis=1, keepdims=True)), img)


def test_mapping_onto_its_own_21_percentiles_is_within_one_level():
    """Exact when the quantile function is linear between the percentiles (uniform values)."""
    rng = np.random.default_rng(0)
    img = np.stack([rng.integers(10, 200, (120, 120)), rng.integers(0, 256, (120, 120)),
                    rng.integers(50, 60, (120, 120))], axis=-1).astype(np.uint8)
    out = map_image(img, percentiles([img])[0], HistmapConfig(method="interp"))
    assert np.abs(out.astype(int) - img).max() <= 1
    # a photo has point masses (flat discs) that 21 percentiles cannot pin down: on average
    # it still comes back within one level
    photo = synthetic_photo(96, 128, seed=3)
    out = map_image(photo, percentiles([photo])[0], HistmapConfig(method="interp"))
    assert np.abs(out.astype(int) - photo).mean() < 1.0


@pytest.mark.parametrize("cfg", CONFIGS[:3])
def test_mapping_onto_a_known_target_reproduces_its_cdf(cfg):
    rng = np.random.default_rng(1)
    src = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)  # every level, ~1/256 of the mass each
    q = np.stack([np.linspace(20, 200, 21), 255 * np.linspace(0, 1, 21) ** 2,
                  np.r_[np.full(10, 30.0), np.linspace(30, 240, 11)]])
    cfg = dataclasses.replace(cfg, max_slope=0.0)  # exact matching (the contrast limit is tested below)
    out = map_image(src, q, cfg)
    got = np.cumsum(channel_counts(out), axis=-1) / (200 * 300)
    want = np.cumsum(target_pdf(q, cfg), axis=-1)
    # a source level is one indivisible block of 1/256 of the pixels
    assert np.abs(got - want).max() < 1 / 256
    assert np.abs(np.cumsum(channel_counts(src), axis=-1) / (200 * 300) - want).max() > 0.1  # it did move


def test_match_lut_is_monotone_and_band_mean():
    counts = np.zeros(256)
    counts[[3, 4]] = [1, 3]  # source: 25 % at 3, 75 % at 4
    pdf = np.zeros(256)
    pdf[[100, 200]] = 0.5
    lut = match_lut(counts, pdf)
    assert lut[3] == pytest.approx(100.0)  # band (0, .25] lies in the first half
    assert lut[4] == pytest.approx((0.25 * 100 + 0.5 * 200) / 0.75)  # mean over (.25, 1]
    assert np.all(np.diff(lut) >= 0)


def test_pillow_lookup_equals_numpy_indexing(photo):
    q = percentiles([synthetic_photo(48, 64, seed=9)])[0]
    cfg = HistmapConfig()
    counts = channel_counts(photo)
    luts = np.clip(np.rint(limit_contrast(match_lut(counts, target_pdf(q, cfg)), counts, cfg.max_slope)), 0, 255)
    luts = luts.astype(np.uint8)
    ref = np.stack([luts[c][photo[..., c]] for c in range(3)], axis=-1)
    out = map_image(photo, q, cfg)
    assert np.array_equal(out, ref) and out.flags.writeable


ADVERSARIAL_IMAGES = {
    "black": np.zeros((20, 30, 3), np.uint8),
    "single_value": np.full((20, 30, 3), 77, np.uint8),
    "saturated": np.full((20, 30, 3), 255, np.uint8),
    "one_pixel": np.array([[[0, 128, 255]]], np.uint8),
}
ADVERSARIAL_PERCENTILES = {
    "ramp": np.tile(np.linspace(0, 255, 21), (3, 1)),
    "all_zero": np.zeros((3, 21)),
    "all_255": np.full((3, 21), 255.0),
    "descending_out_of_range": np.tile(np.linspace(400, -100, 21), (3, 1)),
}


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("img_name", list(ADVERSARIAL_IMAGES))
@pytest.mark.parametrize("q_name", list(ADVERSARIAL_PERCENTILES))
def test_adversarial_inputs_give_valid_monotone_maps(cfg, img_name, q_name):
    img = ADVERSARIAL_IMAGES[img_name]
    q = ADVERSARIAL_PERCENTILES[q_name]
    out = map_image(img, q, cfg)
    assert out.dtype == np.uint8 and out.shape == img.shape
    # a constant channel maps to one value, inside the target's range
    for c in range(3):
        assert len(np.unique(out[..., c])) == 1
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    mapped = map_image(ramp, q, cfg).astype(int)
    assert np.all(np.diff(mapped, axis=1) >= 0)  # order preserved: monotone lookup table


def test_map_image_refuses_bad_inputs(photo):
    with pytest.raises(ValueError, match="uint8"):
        map_image(photo.astype(np.float32), np.zeros((3, 21)), HistmapConfig())
    with pytest.raises(ValueError, match="shape"):
        map_image(photo, np.zeros(21), HistmapConfig())
    with pytest.raises(ValueError, match="non-finite"):
        map_image(photo, np.full((3, 21), np.nan), HistmapConfig())


def test_luminance_mode_keeps_grey_grey_and_matches_rgb_on_grey(photo):
    grey = np.repeat(photo[..., 1:2], 3, axis=2)
    q = np.tile(np.linspace(10, 240, 21), (3, 1))
    lum = map_image(grey, q, HistmapConfig(space="luminance"))
    assert np.array_equal(lum[..., 0], lum[..., 1]) and np.array_equal(lum[..., 1], lum[..., 2])
    rgb = map_image(grey, q, HistmapConfig(space="rgb"))
    assert np.abs(lum.astype(int) - rgb).max() <= 1


def test_luminance_mode_keeps_chroma_ratios(photo):
    dark = darken(photo)
    q = percentiles([photo])[0]
    out = map_image(dark, q, HistmapConfig(space="luminance")).astype(float)
    # channel ratios survive where nothing clipped and values are large enough to measure
    ok = (out.max(axis=2) < 250) & (dark.min(axis=2) >= 20)
    assert ok.sum() > 20
    src, dst = dark.astype(float)[ok], out[ok]
    assert np.median(np.abs(dst[:, 0] / dst[:, 1] - src[:, 0] / src[:, 1])) < 0.05
    # and luma follows the target's luma percentiles (mean within a few levels)
    assert abs(luma(out.astype(np.uint8)).mean() - (LUMA_WEIGHTS @ q).mean()) < 15


# --------------------------------------------------------------------------- the stage function


def _histmap_stage(data, model, out, metrics, train_predictions=None):
    from conftest import load_stage

    (out.parent / "params.yaml").write_text("{}\n")  # every setting at its default
    argv = ["--params", str(out.parent / "params.yaml"), "--data", str(data), "--model", str(model), "--out", str(out),
            "--metrics", str(metrics)]
    if train_predictions is not None:
        argv += ["--train-predictions", str(train_predictions)]
    return load_stage("histmap").main(argv)


@pytest.mark.slow
def test_histmap_stage_end_to_end(tiny_prepared, tmp_path):
    from lowlight.data.pairs import SPLITS, list_pairs, load_pairs
    from lowlight.histbranch.cross_fit import write_predictions
    from lowlight.histbranch.quantiles import targets

    cfg = QuantilesConfig(n_estimators=10, grid=2)
    stems, lows, highs = load_pairs(tiny_prepared, "train")
    model = QuantileModel(cfg).fit(lows, highs, threads=1)
    model.save(tmp_path / "q.ubj")
    # stand-in out-of-fold predictions: the true percentiles, so the train mapping is near perfect
    write_predictions(tmp_path / "oof.csv", stems, targets(highs), model.levels)
    out = tmp_path / "mapped"
    m = _histmap_stage(tiny_prepared, tmp_path / "q.ubj", out, tmp_path / "histmap.json", tmp_path / "oof.csv")
    for split in SPLITS:
        stems_ = sorted(p.stem for p in list_pairs(tiny_prepared, split))
        assert sorted(p.stem for p in (out / split).glob("*.png")) == stems_
    for split in ("val", "test"):
        assert 0 < m[f"{split}_psnr"] < 60 and -1 <= m[f"{split}_ssim"] <= 1
        assert m[f"{split}_psnr_true_percentiles"] > 0
    assert m["train_cross_fitted"] == 1 and m["train_psnr"] > m["val_psnr"]
    saved = json.loads((tmp_path / "histmap.json").read_text())  # the headline figures of what it returns
    assert set(saved) == {"train_psnr", "val_psnr", "test_psnr", "val_psnr_true_percentiles"}  # no timings
    assert all(saved[k] == round(m[k], 4) for k in saved)  # rounded: a rerun writes the same bytes
    timings = json.loads((tmp_path / "timings" / "histmap.json").read_text())  # untracked, beside it
    assert timings["map_ms_per_image"] == m["map_ms_per_image"] > 0


def test_histmap_stage_names_a_missing_model_and_missing_predictions(tiny_prepared, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        _histmap_stage(tiny_prepared, tmp_path / "nope.ubj", tmp_path / "m", tmp_path / "m.json")
    assert exc.value.code == 2 and "nope.ubj" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
    from lowlight.data.pairs import load_pairs
    from lowlight.histbranch.cross_fit import write_predictions
    from lowlight.histbranch.quantiles import targets

    stems, lows, highs = load_pairs(tiny_prepared, "train")
    QuantileModel(QuantilesConfig(n_estimators=5)).fit(lows, highs, threads=1).save(tmp_path / "q.ubj")
    write_predictions(tmp_path / "oof.csv", stems[:2], targets(highs[:2]), np.arange(0, 101, 5))
    with pytest.raises(SystemExit):
        _histmap_stage(tiny_prepared, tmp_path / "q.ubj", tmp_path / "m", tmp_path / "m.json", tmp_path / "oof.csv")
    assert "no predictions for training image" in capsys.readouterr().err and not (tmp_path / "m").exists()


@pytest.mark.lol
def test_lol_pairs_mapped_with_their_true_percentiles():
    """On real LOL pairs the mapping itself (given the reference's percentiles) recovers most of
    the gap: 8.4 / 5.9 dB unprocessed (the shared README's figures) -> over 25 dB."""
    from conftest import lol_root
    from PIL import Image

    from lowlight.evaluation.scores import psnr

    root = lol_root()
    if root is None:
        pytest.skip("LOL not available at ../shared/datasets/LOL")
    for stem, before in (("2", 8.3746), ("6", 5.9445)):
        low = np.asarray(Image.open(root / "our485" / "low" / f"{stem}.webp").convert("RGB"))
        high = np.asarray(Image.open(root / "our485" / "high" / f"{stem}.webp").convert("RGB"))
        assert psnr(low, high) == pytest.approx(before, abs=1e-3)
        assert psnr(map_image(low, percentiles([high])[0], HistmapConfig(method="interp")), high) > 25


# --------------------------------------------------------------------------- contrast limit


def test_limit_contrast_caps_the_log_slope_and_keeps_the_mean_level():
    from lowlight.histbranch.histmap import limit_contrast, match_lut

    rng = np.random.default_rng(3)
    counts = np.zeros((3, 256))
    counts[:, 100:130] = rng.integers(50, 500, (3, 30))  # a narrow peak: a clear sky
    counts[:, 10:60] += rng.integers(0, 40, (3, 50))
    pdf = np.ones((3, 256)) / 256  # a wide target
    lut = match_lut(counts, pdf)
    v = np.log1p(np.arange(256.0))
    assert (np.diff(np.log1p(lut), axis=-1) > 1.5 * np.diff(v) + 1e-9).any()  # the exact table stretches the peak
    capped = limit_contrast(lut, counts, 1.5)
    assert (np.diff(np.log1p(capped), axis=-1) <= 1.5 * np.diff(v) + 1e-9).all()
    assert (np.diff(capped, axis=-1) >= -1e-9).all()
    w = counts / counts.sum(axis=-1, keepdims=True)
    assert np.allclose((w * capped).sum(-1), (w * lut).sum(-1), atol=1e-3)
    assert limit_contrast(lut, counts, 0.0) is lut


def test_limit_contrast_leaves_gains_and_the_identity_alone():
    from lowlight.histbranch.histmap import limit_contrast

    counts = np.random.default_rng(0).integers(0, 100, (3, 256)).astype(float)
    levels = np.arange(256.0)
    for gain in (1.0, 1.3, 1.5):
        lut = np.tile(np.minimum(levels * gain, 255.0), (3, 1))
        if gain == 1.5:
            lut = np.tile(levels * gain * 0.6, (3, 1))  # no clipping at the top
        assert np.allclose(limit_contrast(lut, counts, 1.5), lut, atol=1e-6)


def test_the_contrast_limit_stops_a_narrow_sky_turning_into_blotches():
    """A clear sky: a faint gradient over ten levels plus noise. Matched to a wider target, the
    exact table stretches it several times over; the limited one keeps it within 1.5x of a
    plain gain, at the same mean level."""
    from lowlight.config import HistmapConfig
    from lowlight.histbranch.histmap import map_image

    rng = np.random.default_rng(1)
    h, w = 60, 80
    sky = 110 + 10 * np.linspace(0, 1, w)[None, :] + rng.normal(0, 1, (h, w))
    img = np.clip(np.rint(np.repeat(sky[..., None], 3, axis=2)), 0, 255).astype(np.uint8)
    q = np.tile(np.linspace(60, 200, 21), (3, 1))  # the booster asks for a wide spread
    exact = map_image(img, q, HistmapConfig(max_slope=0.0)).astype(float)
    limited = map_image(img, q, HistmapConfig(max_slope=1.5)).astype(float)
    spread_in = np.ptp(img[..., 1].astype(float).mean(axis=0))
    gain = limited.mean() / img.mean()
    assert np.ptp(exact[..., 1].mean(axis=0)) > 4 * gain * spread_in
    assert np.ptp(limited[..., 1].mean(axis=0)) <= 1.5 * gain * spread_in + 2
    assert abs(limited.mean() - exact.mean()) < 1.0
