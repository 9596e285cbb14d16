"""Local exposure: uneven-light degradation, per-cell features and predictions, the blended
mapping, and the exposure measures."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from lowlight.config import DegradeConfig, HistmapConfig, QuantilesConfig
from lowlight.data.degrade import apply_degradation, darken, sample_degradation
from lowlight.data.illumination import illumination, sample_field
from lowlight.evaluation.baselines import lime
from lowlight.evaluation.exposure_measures import crushed_share, loe, luma01, newly_blown, no_signal_colour
from lowlight.histbranch.cross_fit import read_predictions, write_predictions
from lowlight.histbranch.histmap import map_image
from lowlight.histbranch.histogram import percentile_levels
from lowlight.histbranch.quantile_features import feature_names, features, image_features, targets
from lowlight.histbranch.quantiles import QuantileModel
from lowlight.histbranch.regions import blend_tables, cell_bounds, cells, local_config

from conftest import darken as simple_darken
from conftest import load_stage, synthetic_photo

SMALL = dict(n_estimators=4, max_depth=2, min_child_weight=1.0, cross_fit_folds=0)


# --------------------------------------------------------------------------- uneven light


def _field(seed=0, ratio=30.0, aspect=0.75):
    return sample_field(np.random.default_rng(seed), aspect, ratio, 3, 1.0, 0.5, 0.2)


@pytest.mark.parametrize("seed", range(5))
def test_field_spans_its_ratio_and_is_smooth(seed):
    f = _field(seed)
    lum = illumination(90, 120, f) @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    assert lum.max() == pytest.approx(1.0, abs=0.02)
    assert lum.min() == pytest.approx(1.0 / f.ratio, rel=0.05)
    # smooth: no neighbour step larger than a few percent of the range (a window has soft edges)
    assert np.abs(np.diff(lum, axis=0)).max() < 0.25 and np.abs(np.diff(lum, axis=1)).max() < 0.25


def test_uneven_off_draws_as_before():
    """uneven 0 consumes the generator exactly as the one-exposure model did: old prepared data reproduces."""
    cfg = DegradeConfig()
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    d = sample_degradation(cfg, a)
    exposure = float(np.exp(b.uniform(np.log(cfg.exposure_min), np.log(cfg.exposure_max))))
    gains = b.uniform(1 - cfg.color_cast, 1 + cfg.color_cast, 3)
    assert d.field is None and d.exposure == exposure and np.allclose(d.gains, gains)
    assert a.uniform() == b.uniform()


def test_uneven_light_keeps_a_bright_and_a_dark_side():
    img = np.full((60, 80, 3), 180, np.uint8)
    cfg = DegradeConfig(uneven=1.0, read_noise=0.0, full_well=1e7, color_cast=0.0, light_ratio_max=30)
    d = sample_degradation(cfg, np.random.default_rng(1), 0.75)
    out = apply_degradation(img, d, cfg, np.random.default_rng(2))
    y = luma01(out)
    assert d.field is not None and y.max() > 3 * max(y.min(), 1 / 255)
    again = apply_degradation(img, d, cfg, np.random.default_rng(2))
    assert np.array_equal(out, again)


def test_uneven_share_follows_the_param():
    cfg = DegradeConfig(uneven=0.5)
    rng = np.random.default_rng(0)
    share = np.mean([sample_degradation(cfg, rng).field is not None for _ in range(400)])
    assert 0.4 < share < 0.6


# --------------------------------------------------------------------------- cells


@pytest.mark.parametrize("n,g", [(1, 4), (3, 4), (7, 4), (400, 4), (401, 6)])
def test_cells_cover_the_axis(n, g):
    b = cell_bounds(n, g)
    assert (b[:, 1] > b[:, 0]).all() and b[0, 0] == 0 and b[-1, 1] == n
    if n >= g:
        assert (b[1:, 0] == b[:-1, 1]).all()


def test_region_features_are_the_cells_own_features():
    img = simple_darken(synthetic_photo(64, 80, seed=2))
    cfg = QuantilesConfig(regions=4)
    x = features([img], cfg)[0]
    assert x.shape == (4, 4, 3, len(feature_names(cfg)))
    names = feature_names(local_config(cfg))
    texture = [i for i, n in enumerate(names) if n.startswith(("grad", "noise"))]
    whole = image_features(img, replace(cfg, regions=1))
    for i, row in enumerate(cells(img, 4)):
        for j, cell in enumerate(row):
            own = image_features(np.ascontiguousarray(cell), local_config(cfg))
            keep = [k for k in range(own.shape[1]) if k not in texture]
            np.testing.assert_allclose(x[i, j][:, keep], own[:, keep], rtol=1e-5, atol=1e-4)
            # the border differences are the only change: the texture stays close
            np.testing.assert_allclose(x[i, j][:, texture], own[:, texture], rtol=0.2, atol=0.3)
            np.testing.assert_allclose(x[i, j][:, len(names):-2], whole, rtol=1e-6)


def test_tiny_images_get_per_cell_features():
    img = simple_darken(synthetic_photo(5, 7, seed=1))
    assert features([img], QuantilesConfig(regions=4)).shape[:4] == (1, 4, 4, 3)


def test_regional_model_fits_predicts_saves_and_reloads(tmp_path):
    photos = [synthetic_photo(40, 48, seed=s) for s in range(6)]
    lows = [simple_darken(p, seed=s) for s, p in enumerate(photos)]
    cfg = QuantilesConfig(regions=2, **SMALL)
    model = QuantileModel(cfg).fit(lows, photos, seed=0)
    pred = model.predict(lows[:2])
    assert pred.shape == (2, 2, 2, 3, 21)
    assert (np.diff(pred, axis=-1) >= 0).all() and pred.min() >= 0 and pred.max() <= 255
    path = model.save(tmp_path / "q.ubj")
    again = QuantileModel.load(path)
    np.testing.assert_allclose(again.predict(lows[:2]), pred)
    assert targets(photos[:1], regions=2).shape == (1, 2, 2, 3, 21)


def test_per_cell_predictions_round_trip_through_the_csv(tmp_path):
    levels = percentile_levels(5)
    pred = np.sort(np.random.default_rng(0).uniform(0, 255, (3, 2, 2, 3, 21)), axis=-1)
    write_predictions(tmp_path / "oof.csv", ["a", "b", "c"], pred, levels)
    back = read_predictions(tmp_path / "oof.csv", 21)
    np.testing.assert_allclose(back["b"], pred[1], atol=1e-4)


# --------------------------------------------------------------------------- blended mapping


def test_equal_tables_blend_to_one_lookup():
    low = (np.random.default_rng(0).random((33, 47, 3)) * 255).astype(np.uint8)
    lut = np.sort(np.random.default_rng(1).uniform(0, 255, (3, 256)), axis=-1)
    out = blend_tables(low, np.broadcast_to(lut, (3, 3, 3, 256)))
    expect = np.clip(np.rint(np.take_along_axis(lut, low.reshape(-1, 3).T.astype(np.intp), axis=1)), 0, 255)
    np.testing.assert_array_equal(out.reshape(-1, 3).T, expect.astype(np.uint8))


def test_mapping_each_cell_onto_its_own_histogram_is_near_identity():
    img = synthetic_photo(60, 90, seed=4)
    out = map_image(img, targets([img], regions=4)[0], HistmapConfig(max_slope=0.0))  # the blend alone
    err = np.abs(out.astype(int) - img)
    # near a cell border a pixel is partly mapped by its neighbour's table, which knows
    # only the neighbour's levels: small, smooth changes there, none elsewhere
    assert np.median(err) <= 1 and err.mean() < 4.0


def test_blended_mapping_has_no_seams():
    """A flat grey image whose cells get very different targets: the result changes smoothly."""
    img = np.full((120, 160, 3), 40, np.uint8)
    q = np.empty((4, 4, 3, 21))
    for i in range(4):
        for j in range(4):
            q[i, j] = 40 + 40 * ((i + j) % 2)  # a checkerboard of targets
    out = map_image(img, q, HistmapConfig()).astype(int)
    assert np.abs(np.diff(out, axis=0)).max() <= 2 and np.abs(np.diff(out, axis=1)).max() <= 2
    assert out.max() - out.min() >= 30  # and the cells' decisions do show


def test_local_mapping_refuses_luminance_space():
    img = synthetic_photo(20, 20)
    with pytest.raises(ValueError, match="rgb"):
        map_image(img, targets([img], regions=2)[0], HistmapConfig(space="luminance"))


def test_local_mapping_lifts_a_dark_half_and_keeps_a_bright_half():
    photo = synthetic_photo(80, 120, seed=5)
    dark = photo.copy()
    dark[:, :60] = (dark[:, :60] * 0.12).astype(np.uint8)
    local = map_image(dark, targets([photo], regions=4)[0], HistmapConfig())
    whole = map_image(dark, targets([photo])[0], HistmapConfig())
    err = lambda x: np.abs(x.astype(int) - photo).mean()  # noqa: E731
    assert err(local) < 0.6 * err(whole)


# --------------------------------------------------------------------------- measures and baselines


def test_exposure_measures():
    x = synthetic_photo(60, 80, seed=1)
    assert loe(x, x) == 0.0
    assert loe(x, 255 - x) > 1000
    assert crushed_share(np.zeros_like(x)) == 1.0 and crushed_share(x) < 0.2
    assert newly_blown(x, x) == 0.0 and newly_blown(x, np.full_like(x, 255)) > 0.8


def test_no_signal_colour_reads_only_where_the_input_is_black():
    x = np.full((10, 10, 3), 80, np.uint8)
    assert np.isnan(no_signal_colour(x, x))  # every pixel carries a signal
    x[:5] = (2, 1, 0)  # no signal (brightest channel under 3)
    out = np.full_like(x, 200)
    out[:5] = (20, 26, 14)  # lifted to olive: 12 levels of colour
    out[5:] = (255, 0, 0)  # colour where the input has a signal does not count
    assert no_signal_colour(x, out) == 12.0


def test_lime_baseline_lifts_shadows_locally():
    img = synthetic_photo(60, 80, seed=3)
    img[:, :40] //= 8
    out = lime(img)
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert luma01(out[:, :40]).mean() > 2 * luma01(img[:, :40]).mean()


def test_darken_accepts_uneven_params():
    out = darken(synthetic_photo(30, 40), DegradeConfig(uneven=1.0), np.random.default_rng(0))
    assert out.shape == (30, 40, 3) and out.dtype == np.uint8


def test_a_regional_model_exports_to_onnx_and_predicts_the_same(tmp_path):
    """The export stage takes whatever booster the quantiles stage kept, a regional one included."""
    pytest.importorskip("onnx")
    import json

    from lowlight.export.booster_onnx import booster_to_onnx
    from lowlight.inference.onnx_models import load_quantile_model

    photos = [synthetic_photo(40, 48, seed=s) for s in range(6)]
    lows = [simple_darken(p, seed=s) for s, p in enumerate(photos)]
    model = QuantileModel(QuantilesConfig(regions=2, **SMALL)).fit(lows, photos, seed=0)
    path = tmp_path / "quantiles.onnx"
    path.write_bytes(booster_to_onnx(json.loads(model.booster.save_raw("json")), model._meta()).SerializeToString())
    exported = load_quantile_model(path)
    np.testing.assert_allclose(exported.predict(lows[:3]), model.predict(lows[:3]), atol=1e-3)


def test_the_quantiles_stage_keeps_the_better_of_refit_and_shipped():
    """A booster refit on a handful of photos must not replace the shipped one when it maps ``val`` worse."""
    stage = load_stage("quantiles")
    photos = [synthetic_photo(48, 64, seed=s) for s in range(6)]
    lows = [simple_darken(p, factor=0.1, seed=s) for s, p in enumerate(photos)]
    weak = QuantileModel(QuantilesConfig(regions=2, n_estimators=1, max_depth=1, min_child_weight=1.0,
                                         cross_fit_folds=0)).fit(lows[:2], photos[:2], seed=0)
    own_oof = weak.predict(lows[:4])
    metrics: dict = {}
    model, oof = stage.keep_better(weak, own_oof, lows[:4], (lows[4:], photos[4:]), HistmapConfig(), metrics)
    assert metrics["val_map_psnr_shipped"] > metrics["val_map_psnr_refit"]  # one stump on two photos
    assert metrics["kept_shipped"] == 1 and model is not weak and model.cfg.regions == 1  # the shipped one
    np.testing.assert_allclose(oof, model.predict(lows[:4]))  # its predictions stand in for the out-of-fold ones
    metrics = {}
    model, oof = stage.keep_better(model, oof, lows[:4], (lows[4:], photos[4:]), HistmapConfig(), metrics)
    assert metrics["kept_shipped"] == 0  # a tie keeps the refit model


def test_the_quantiles_stage_keeps_the_shipped_booster_when_a_refit_lifts_well_lit_photos():
    """Mapping the dark val images as well is not enough: a refit that changes photos needing nothing loses."""
    from lowlight.inference.shipped import QUANTILE_MODEL, QUANTILE_MODEL_SHA256, WEIGHTS_DIR

    stage = load_stage("quantiles")
    shipped = QuantileModel.load(WEIGHTS_DIR / QUANTILE_MODEL, trusted_sha256=frozenset({QUANTILE_MODEL_SHA256}))

    class LiftsBrightPhotos:  # the shipped predictions on dark inputs, a darkened target on bright ones
        def predict(self, images):
            pred = shipped.predict(images)
            bright = np.array([im.mean() > 60 for im in images]).reshape((-1,) + (1,) * (pred.ndim - 1))
            return np.where(bright, pred * 0.5, pred)

    photos = [synthetic_photo(48, 64, seed=s) for s in range(6)]
    lows = [simple_darken(p, factor=0.1, seed=s) for s, p in enumerate(photos)]
    refit = LiftsBrightPhotos()
    metrics: dict = {}
    model, _ = stage.keep_better(refit, shipped.predict(lows[:4]), lows[:4], (lows[4:], photos[4:]), HistmapConfig(),
                                 metrics)
    assert metrics["val_map_psnr_refit"] == metrics["val_map_psnr_shipped"]  # the same on the dark images
    assert metrics["val_well_lit_psnr_shipped"] > metrics["val_well_lit_psnr_refit"] + 1
    assert metrics["kept_shipped"] == 1 and model is not refit
