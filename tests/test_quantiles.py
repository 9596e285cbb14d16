"""The XGBoost quantile model (lowlight.quantiles): features, guarantees, files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import darken, synthetic_photo
from lowlight.config import ConfigError, QuantilesConfig, from_dict
from lowlight.errors import DataError
from lowlight.quantiles import (QuantileModel, _decode, _merge_single_target, feature_names, features,
                                image_features, targets, train_quantile_model)


def _pairs(n=8, size=(24, 32)):
    highs = [synthetic_photo(*size, seed=i) for i in range(n)]
    lows = [darken(h, factor=0.04 + 0.03 * (i % 4), seed=i) for i, h in enumerate(highs)]
    return lows, highs


SMALL = dict(n_estimators=5, max_depth=3, min_child_weight=1.0)  # tiny data: let trees split
VARIANTS = [
    QuantilesConfig(**SMALL),
    QuantilesConfig(strategy="multi_output_tree", **SMALL),
    QuantilesConfig(strategy="per_percentile", **SMALL),
    QuantilesConfig(strategy="per_percentile", objective="quantile", **SMALL),
    QuantilesConfig(target="increments", texture=False, grid=0, **SMALL),
]


@pytest.fixture(scope="module")
def pairs():
    return _pairs()


@pytest.fixture(scope="module")
def fitted(pairs):
    lows, highs = pairs
    return [QuantileModel(cfg).fit(lows, highs, seed=0, threads=1) for cfg in VARIANTS]


# --------------------------------------------------------------------------- features


@pytest.mark.parametrize("cfg", [QuantilesConfig(), QuantilesConfig(texture=False, grid=0, bins=16),
                                 QuantilesConfig(grid=7)])
def test_feature_rows_match_their_names(cfg, photo):
    x = image_features(photo, cfg)
    assert x.shape == (3, len(feature_names(cfg))) and x.dtype == np.float32
    assert np.all(np.isfinite(x))
    names = feature_names(cfg)
    pct = np.percentile(photo.reshape(-1, 3), np.arange(0, 101, 5), axis=0).T
    for c in range(3):
        assert x[c, names.index("p050")] == pytest.approx(pct[c, 10])
        assert x[c, names.index(["is_r", "is_g", "is_b"][c])] == 1
        assert x[c, names.index("mean")] == pytest.approx(photo[..., c].mean(), rel=1e-5)
    assert np.all(x[:, [names.index(n) for n in names if n.startswith("hist")]].sum(axis=1) == pytest.approx(1))


def test_texture_features_see_noise():
    flat = np.full((64, 64, 3), 40, np.uint8)
    noisy = np.clip(40 + np.random.default_rng(0).normal(0, 5, flat.shape), 0, 255).astype(np.uint8)
    cfg = QuantilesConfig()
    i = feature_names(cfg).index("noise")
    assert image_features(flat, cfg)[0, i] == 0
    assert 2 < image_features(noisy, cfg)[0, i] < 8  # luma averages the channels' noise down


def test_grid_features_follow_the_layout():
    img = np.zeros((40, 60, 3), np.uint8)
    img[:20, :30] = 200  # top-left quarter bright
    cfg = QuantilesConfig(grid=2, texture=False)
    names = feature_names(cfg)
    x = image_features(img, cfg)[0]
    assert x[names.index("grid00")] == pytest.approx(200, abs=1) and x[names.index("grid11")] == 0
    tiny = image_features(np.full((1, 1, 3), 9, np.uint8), QuantilesConfig(grid=4))  # smaller than the grid
    assert np.all(np.isfinite(tiny))


# --------------------------------------------------------------------------- guarantees


def test_decode_is_monotone_and_in_range_for_any_raw_output():
    rng = np.random.default_rng(0)
    raw = rng.normal(0, 500, (200, 3, 21))
    for kind in ("values", "increments"):
        y = _decode(raw, kind)
        assert np.all(np.diff(y, axis=-1) >= 0) and y.min() >= 0 and y.max() <= 255


ADVERSARIAL = {
    "black": np.zeros((24, 30, 3), np.uint8),
    "single_value": np.full((24, 30, 3), 131, np.uint8),
    "saturated": np.full((24, 30, 3), 255, np.uint8),
    "one_pixel": np.array([[[255, 0, 7]]], np.uint8),
    "noise": np.random.default_rng(3).integers(0, 256, (24, 30, 3), dtype=np.uint8),
}


@pytest.mark.parametrize("variant", range(len(VARIANTS)))
def test_predictions_are_monotone_and_in_range_on_adversarial_images(fitted, variant):
    model = fitted[variant]
    pred = model.predict(list(ADVERSARIAL.values()))
    assert pred.shape == (len(ADVERSARIAL), 3, 21)
    assert np.all(np.isfinite(pred))
    assert np.all(np.diff(pred, axis=-1) >= 0)
    assert pred.min() >= 0 and pred.max() <= 255


def test_the_model_learns_something(pairs):
    lows, highs = pairs
    model = QuantileModel(QuantilesConfig(n_estimators=60, min_child_weight=1.0)).fit(lows, highs, seed=0, threads=1)
    y = targets(highs)
    err = np.abs(model.predict(lows) - y).mean()
    assert err < 0.5 * np.abs(y - y.mean(axis=0)).mean()  # far better than the mean curve on its train set


# --------------------------------------------------------------------------- strategies


def test_quantile_objective_needs_per_percentile():
    with pytest.raises(ConfigError, match="per_percentile"):
        from_dict(QuantilesConfig, {"objective": "quantile", "strategy": "one_output_per_tree"})


def test_per_percentile_merge_predicts_what_the_separate_boosters_predict(pairs):
    import xgboost as xgb

    lows, highs = pairs
    cfg = QuantilesConfig(strategy="per_percentile", n_estimators=5, max_depth=2)
    model = QuantileModel(cfg)
    x = features(lows, cfg).reshape(-1, len(feature_names(cfg)))
    y = targets(highs).reshape(-1, 21)
    params = model._params(seed=0, threads=1)
    dtrain = xgb.DMatrix(x)
    boosters, bases = [], []
    for j in range(21):
        dtrain.set_label(y[:, j])
        b = xgb.train(params, dtrain, num_boost_round=5)
        boosters.append(b)
        bases.append(float(json.loads(json.loads(b.save_config())["learner"]["learner_model_param"]
                                      ["base_score"])[0]))
    separate = np.stack([b.inplace_predict(x) for b in boosters], axis=1)
    merged = _merge_single_target(boosters, bases).inplace_predict(x)
    np.testing.assert_allclose(merged, separate, rtol=1e-6, atol=1e-4)


# --------------------------------------------------------------------------- files


@pytest.mark.parametrize("variant", range(len(VARIANTS)))
def test_save_load_round_trip(fitted, pairs, variant, tmp_path):
    model = fitted[variant]
    path = model.save(tmp_path / "q.ubj")
    loaded = QuantileModel.load(path)
    assert loaded.cfg == model.cfg and loaded.step == model.step
    lows, _ = pairs
    np.testing.assert_array_equal(loaded.predict(lows), model.predict(lows))
    assert path.read_bytes()[:1] == b"{"  # UBJSON object: XGBoost's own format, not a pickle


def test_load_errors_name_the_file(tmp_path, fitted):
    with pytest.raises(DataError, match="missing.ubj.*does not exist"):
        QuantileModel.load(tmp_path / "missing.ubj")
    bad = tmp_path / "corrupt.ubj"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(DataError, match="corrupt.ubj.*not a readable XGBoost model"):
        QuantileModel.load(bad)
    foreign = tmp_path / "foreign.ubj"
    booster = fitted[0].booster.copy()
    booster.set_attr(lowlight_quantiles=None)
    booster.save_model(str(foreign))
    with pytest.raises(DataError, match="foreign.ubj.*without lowlight's settings"):
        QuantileModel.load(foreign)
    with pytest.raises(ValueError, match="ubj"):
        fitted[0].save(tmp_path / "model.pkl")


def test_unfitted_model_refuses_to_predict(photo):
    with pytest.raises(RuntimeError, match="not fitted"):
        QuantileModel().predict([photo])


# --------------------------------------------------------------------------- the stage function


@pytest.mark.slow
def test_train_quantile_model_end_to_end(tiny_prepared, tmp_path):
    cfg = QuantilesConfig(n_estimators=10, examples=2)
    m = train_quantile_model(tiny_prepared, cfg, seed=0, threads=0, model_path=tmp_path / "m" / "q.ubj",
                             metrics_json=tmp_path / "q.json", plots_dir=tmp_path / "plots")
    assert (tmp_path / "m" / "q.ubj").is_file()
    assert {p.name for p in (tmp_path / "plots").iterdir()} == {"predictions.png", "mae.png"}
    saved = json.loads((tmp_path / "q.json").read_text())
    assert saved == m
    assert m["train_images"] == 6 and m["val_images"] == 2
    assert 0 <= m["val_mae"] < 255 and len([k for k in m if k.startswith("val_mae_p")]) == 21
    assert m["fit_seconds"] > 0 and m["predict_ms_one_image"] > 0


def test_train_quantile_model_needs_training_pairs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no training pairs"):
        train_quantile_model(tmp_path / "empty", QuantilesConfig(), 0, 1, tmp_path / "q.ubj", tmp_path / "q.json",
                             tmp_path / "plots")
