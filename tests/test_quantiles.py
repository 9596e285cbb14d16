"""The XGBoost quantile model (lowlight.histbranch.quantiles): features, guarantees, files."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import darken, synthetic_photo
from lowlight.config import ConfigError, QuantilesConfig, from_dict
from lowlight.errors import DataError
from lowlight.histbranch.quantile_features import own_percentiles
from lowlight.histbranch.quantile_targets import TARGETS, decode
from lowlight.histbranch.quantiles import (QuantileModel, _merge_single_target, feature_names, features,
                                image_features, targets)


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
    QuantilesConfig(target="values", **SMALL),
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
    own = np.sort(rng.uniform(0, 255, (200, 3, 21)), axis=-1)
    for kind in TARGETS:
        y = decode(raw, kind, own)
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


def test_own_percentiles_are_the_rows_own_percentile_features(photo):
    cfg = QuantilesConfig()
    rows = image_features(photo, cfg)
    names = feature_names(cfg)
    cols = [names.index(f"p{int(p):03d}") for p in np.arange(0, 101, 5)]
    np.testing.assert_array_equal(own_percentiles(rows, cfg, 21), rows[:, cols])


def test_residual_target_needs_the_feature_layout():
    x = np.zeros((4, 3, 5), np.float32)
    with pytest.raises(ValueError, match="5 columns.*residual"):
        QuantileModel(QuantilesConfig(target="residual", n_estimators=2)).fit_arrays(x, np.zeros((4, 3, 21)))


def test_residual_target_leaves_photos_brighter_than_any_reference_alone():
    """Trees cannot extrapolate: fitted on references near one brightness, ``values`` pulls a
    brighter photo down to it; ``residual`` learns "no change" from the identity pairs."""
    highs = [np.clip(synthetic_photo(32, 40, seed=i).astype(int) // 2 + 50, 0, 255).astype(np.uint8)
             for i in range(24)]  # references around luma 110
    lows = [darken(h, factor=0.04 + 0.03 * (i % 4), seed=i) for i, h in enumerate(highs)]
    lows, highs = lows + highs[:12], highs + highs[:12]  # with identity pairs, as prepare makes them
    bright = [np.clip(synthetic_photo(32, 40, seed=100 + i).astype(int) // 2 + 120, 0, 255).astype(np.uint8)
              for i in range(4)]  # luma around 180: brighter than every reference
    own = targets(bright)
    errors = {}
    for kind in ("values", "residual"):
        model = QuantileModel(QuantilesConfig(target=kind, n_estimators=60, min_child_weight=1.0)).fit(lows, highs)
        errors[kind] = float(np.abs(model.predict(bright) - own)[..., 2:-2].mean())
    assert errors["residual"] < 8 and errors["values"] > 2 * errors["residual"], errors


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


def test_a_trusted_digest_skips_only_the_structural_check(fitted, pairs, tmp_path, monkeypatch):
    """The shipped model's digest spares its Python parse; any other bytes are still checked."""
    import hashlib

    import lowlight.histbranch.quantiles as quantiles
    from lowlight.inference import shipped

    shipped_file = shipped.WEIGHTS_DIR / shipped.QUANTILE_MODEL
    if shipped_file.is_file():  # the pinned digest is the file's (update it when re-shipping)
        assert hashlib.sha256(shipped_file.read_bytes()).hexdigest() == shipped.QUANTILE_MODEL_SHA256
    path = fitted[0].save(tmp_path / "q.ubj")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    parsed = []
    real = quantiles.parse_model
    monkeypatch.setattr(quantiles, "parse_model", lambda data: parsed.append(1) or real(data))
    trusted = QuantileModel.load(path, trusted_sha256=frozenset({digest}))
    assert parsed == [] and trusted.cfg == fitted[0].cfg and trusted.step == fitted[0].step
    lows, _ = pairs
    np.testing.assert_array_equal(trusted.predict(lows), fitted[0].predict(lows))
    damaged = tmp_path / "damaged.ubj"
    damaged.write_bytes(path.read_bytes()[:-40])  # a digest that is not trusted: checked, refused
    with pytest.raises(DataError, match="damaged.ubj"):
        QuantileModel.load(damaged, trusted_sha256=frozenset({digest}))
    assert parsed == [1]


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


def _quantiles_stage(data, tmp_path, cfg: dict):
    import yaml

    from conftest import load_stage

    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"base": {"seed": 0, "threads": 1}, "quantiles": cfg}))
    return load_stage("quantiles").main([
        "--params", str(tmp_path / "params.yaml"), "--data", str(data), "--model", str(tmp_path / "m" / "q.ubj"),
        "--metrics", str(tmp_path / "q.json"), "--plots", str(tmp_path / "plots"), "--oof", str(tmp_path / "oof.csv")])


@pytest.mark.slow
def test_quantiles_stage_end_to_end(tiny_prepared, tmp_path):
    from lowlight.histbranch.cross_fit import read_predictions

    # the refit booster throughout (keep_shipped's choice has its own tests in test_local_exposure)
    m = _quantiles_stage(tiny_prepared, tmp_path, {"n_estimators": 10, "examples": 2, "cross_fit_folds": 3,
                                                   "keep_shipped": False})
    assert (tmp_path / "m" / "q.ubj").is_file() and "kept_shipped" not in m
    assert {p.name for p in (tmp_path / "plots").iterdir()} == {"predictions.png", "mae.png", "mae.csv"}
    saved = json.loads((tmp_path / "q.json").read_text())  # the headline; per percentile in mae.csv
    # quality only (timings go beside it), and which booster the stage kept
    assert set(saved) <= {"train_mae", "train_oof_mae", "val_mae", "kept_shipped", "val_map_psnr_refit",
                          "val_map_psnr_shipped", "val_well_lit_psnr_refit", "val_well_lit_psnr_shipped"} \
        and {"train_mae", "val_mae"} <= set(saved)
    assert all(saved[k] == round(m[k], 4) for k in saved)  # rounded: a rerun writes the same bytes
    timings = json.loads((tmp_path / "timings" / "q.json").read_text())
    assert set(timings) == {"fit_seconds", "cross_fit_seconds", "predict_ms_one_image"}
    assert all(isinstance(v, (int, float)) for v in m.values())  # numbers only: dvc exp show reads them
    table = pd.read_csv(tmp_path / "plots" / "mae.csv").set_index("row")
    assert table.loc["p050", "val"] == pytest.approx(m["val_mae_p050"], abs=1e-4)
    assert m["train_images"] == 6 and m["val_images"] == 2
    assert 0 <= m["val_mae"] < 255 and len([k for k in m if k.startswith("val_mae_p")]) == 21
    assert m["fit_seconds"] > 0 and m["predict_ms_one_image"] > 0
    # out-of-fold predictions are worse than in-sample ones: each image was held out of its model
    assert m["train_oof_mae"] > m["train_mae"]
    oof = read_predictions(tmp_path / "oof.csv", 21)
    assert sorted(oof) == sorted(f"train{i:03d}" for i in range(6))


def test_cross_fit_holds_out_whole_groups():
    """An image's out-of-fold prediction comes from a model that never saw its group."""
    from lowlight.histbranch.cross_fit import cross_fit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3, 5)).astype(np.float32)
    y = np.sort(rng.uniform(0, 255, size=(8, 3, 21)), axis=-1)
    groups = ["a", "a", "b", "b", "c", "c", "d", "d"]
    y[0] = y[1] = 200.0  # group "a" alone is bright: no other group can teach that
    cfg = QuantilesConfig(n_estimators=20, min_child_weight=0, subsample=1, colsample_bytree=1, cross_fit_folds=4,
                          target="values")  # bare feature arrays: no own-percentile columns for a residual
    oof = cross_fit(x, y, groups, cfg)
    assert oof.shape == y.shape
    assert oof[:2].mean() < 150  # predicted from b, c, d only
    with pytest.raises(DataError, match="cross_fit_folds"):
        cross_fit(x[:2], y[:2], ["a", "a"], cfg)


def test_quantiles_stage_needs_training_pairs(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exc:
        _quantiles_stage(tmp_path / "empty", tmp_path, {})
    assert exc.value.code == 2 and "no training pairs" in capsys.readouterr().err


# --------------------------------------------------------------------------- crafted model files (issue 13)
#
# XGBoost 3.2 does not check the indices inside a loaded tree: a child index past the end,
# a cycle, a split on a missing feature, a bad parent link or a missing array kills the
# process (segfault or abort) when it loads, dumps or predicts. QuantileModel.load checks
# the structure before XGBoost reads the file. The crafted files are loaded in a child
# process so that a check that misses one fails the test instead of killing the suite.

_LOAD_IN_CHILD = """
import json, sys, time
import numpy as np
from lowlight.errors import DataError
from lowlight.histbranch.quantiles import QuantileModel, _xgb  # noqa: E402
_xgb()  # time the refusals, not XGBoost's import (about a second)
for name, path in json.loads(sys.argv[1]):
    print(json.dumps({"case": name, "started": True}), flush=True)
    t0 = time.perf_counter()
    try:
        model = QuantileModel.load(path)
    except DataError as exc:
        out = {"outcome": "refused", "message": str(exc)}
    except Exception as exc:
        out = {"outcome": "traceback", "message": f"{type(exc).__name__}: {exc}"}
    else:
        model.predict_features(np.random.default_rng(0).random((2, 3, model.booster.num_features()), np.float32))
        out = {"outcome": "loaded", "message": ""}
    print(json.dumps({"case": name, "seconds": time.perf_counter() - t0, **out}), flush=True)
"""


def _trees(d):
    return d["learner"]["gradient_booster"]["model"]["trees"]


def _set_num_target(d, k):
    d["learner"]["learner_model_param"]["num_target"] = str(k)
    d["learner"]["learner_model_param"]["base_score"] = "[" + ",".join(["1E2"] * k) + "]"
    d["learner"]["gradient_booster"]["model"]["tree_info"] = [0] * len(_trees(d))


# name -> (variant in VARIANTS, edit of the model's JSON, words of the message)
CRAFTED = {
    "child index 10**6": (0, lambda d: _trees(d)[0]["left_children"].__setitem__(0, 10**6), "child index"),
    "child 0: a cycle": (0, lambda d: _trees(d)[0]["left_children"].__setitem__(1, 0), "cycle"),
    "node is its own child": (0, lambda d: _trees(d)[0]["right_children"].__setitem__(0, 0), "cycle"),
    "split on feature 10**6": (0, lambda d: _trees(d)[0]["split_indices"].__setitem__(0, 10**6), "feature"),
    "negative split feature": (0, lambda d: _trees(d)[0]["split_indices"].__setitem__(0, -3), "feature"),
    "tree_info target 50": (0, lambda d: d["learner"]["gradient_booster"]["model"]["tree_info"].__setitem__(0, 50),
                            "tree_info"),
    "parent link -2": (0, lambda d: _trees(d)[0]["parents"].__setitem__(3, -2), "parent"),
    "missing loss_changes": (0, lambda d: _trees(d)[1].pop("loss_changes"), "loss_changes"),
    "9 targets, 21 percentiles": (0, lambda d: _set_num_target(d, 9), "9 values per row"),
    # the last node is a leaf (children come after their parent); a leaf's right_children is its leaf index
    "multi-output leaf index 10**6": (1, lambda d: _trees(d)[0]["right_children"].__setitem__(-1, 10**6),
                                      "leaf index"),
    "multi-output child 10**6": (1, lambda d: _trees(d)[0]["left_children"].__setitem__(0, 10**6), "child index"),
}


def _patch_ubj_left_child(data: bytes, value: int) -> bytes:
    """The first left child of the first tree of a .ubj file set to ``value`` (big-endian int32)."""
    at = data.index(b"left_children[$l#L") + len(b"left_children[$l#L") + 8
    return data[:at] + value.to_bytes(4, "big", signed=True) + data[at + 4:]


@pytest.fixture(scope="module")
def crafted_results(fitted, tmp_path_factory):
    """Load every crafted file (and 300 randomly corrupted .ubj files) in one child process."""
    import os
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("crafted")
    cases = []
    sources = {}
    for variant in {v for v, _, _ in CRAFTED.values()}:
        sources[variant] = json.loads(fitted[variant].save(folder / f"v{variant}.json").read_text())
    for name, (variant, edit, _) in CRAFTED.items():
        d = json.loads(json.dumps(sources[variant]))
        edit(d)
        path = folder / f"{len(cases)}.json"
        path.write_text(json.dumps(d))
        cases.append((name, str(path)))
    ubj = fitted[0].save(folder / "v0.ubj").read_bytes()
    for name, value in (("ubj: child index 10**6", 10**6), ("ubj: child 0: a cycle", 0)):
        path = folder / f"{len(cases)}.ubj"
        path.write_bytes(_patch_ubj_left_child(ubj, value))
        cases.append((name, str(path)))
    rng = np.random.default_rng(13)
    for i in range(300):  # random damage: flipped bytes, sometimes a truncation
        data = bytearray(ubj)
        for at in rng.integers(0, len(data), rng.integers(1, 5)):
            data[at] = rng.integers(0, 256)
        if i % 10 == 0:
            data = data[:rng.integers(1, len(data))]
        path = folder / f"fuzz{i}.ubj"
        path.write_bytes(bytes(data))
        cases.append((f"fuzz {i}", str(path)))
    proc = subprocess.run([sys.executable, "-c", _LOAD_IN_CHILD, json.dumps(cases)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    results, last = {}, None
    for line in proc.stdout.splitlines():
        row = json.loads(line)
        if row.get("started"):
            last = row["case"]
        else:
            results[row["case"]] = row
    return results, last, proc.returncode, proc.stderr[-2000:]


def _result(crafted_results, name):
    results, last, code, err = crafted_results
    assert name in results, f"the child process died (exit {code}) loading {last!r}: {err}"
    return results[name]


@pytest.mark.fault
@pytest.mark.parametrize("name", [*CRAFTED, "ubj: child index 10**6", "ubj: child 0: a cycle"])
def test_crafted_tree_structure_is_refused_not_a_crash(crafted_results, name):
    row = _result(crafted_results, name)
    assert row["outcome"] == "refused", row
    msg = row["message"]
    assert "damaged or crafted model" in msg and "dvc repro quantiles" in msg, msg
    if name in CRAFTED:
        assert CRAFTED[name][2] in msg, msg
    assert len(msg.splitlines()) == 2 and len(msg) < 400  # header + one line naming the file
    print(f"{name}: refused in {row['seconds'] * 1000:.1f} ms")
    assert row["seconds"] < 2


@pytest.mark.fault
def test_randomly_damaged_model_files_never_crash_the_process(crafted_results):
    results, last, code, err = crafted_results
    fuzz = [r for name, r in results.items() if name.startswith("fuzz ")]
    assert len(fuzz) == 300, f"the child process died (exit {code}) loading {last!r}: {err}"
    assert {r["outcome"] for r in fuzz} <= {"refused", "loaded"}, [r for r in fuzz if r["outcome"] == "traceback"]
    assert sum(r["outcome"] == "refused" for r in fuzz) > 200  # most damage is structural
    print(f"300 damaged files: {sum(r['outcome'] == 'refused' for r in fuzz)} refused, the rest load and predict; "
          f"slowest {max(r['seconds'] for r in fuzz) * 1000:.1f} ms")


def _with_settings(model, tmp_path, **changes):
    d = json.loads(model.save(tmp_path / "m.json").read_text())
    attrs = d["learner"]["attributes"]
    meta = json.loads(attrs["lowlight_quantiles"])
    meta.update(changes)
    attrs["lowlight_quantiles"] = json.dumps(meta)
    path = tmp_path / "crafted.json"
    path.write_text(json.dumps(d))
    return path


@pytest.mark.fault
@pytest.mark.parametrize("step", [0, 7, -5, "5", True])
def test_bad_percentile_step_in_the_settings_is_refused(fitted, tmp_path, step):
    path = _with_settings(fitted[0], tmp_path, percentile_step=step)
    with pytest.raises(DataError, match=r"crafted.json: unusable lowlight settings in the model"):
        QuantileModel.load(path)


@pytest.mark.fault
def test_an_image_given_as_the_quantile_model_is_refused(tmp_path, photo):
    from PIL import Image

    png = tmp_path / "photo.png"
    Image.fromarray(photo).save(png)
    with pytest.raises(DataError, match=r"photo.png: not a readable XGBoost model"):
        QuantileModel.load(png)


@pytest.mark.fault
def test_oversized_model_file_is_refused_before_reading(tmp_path, monkeypatch):
    import lowlight.histbranch.quantiles as q

    monkeypatch.setattr(q, "MAX_MODEL_BYTES", 1000)  # the bound QuantileModel.load reads
    big = tmp_path / "big.ubj"
    big.write_bytes(b"{" + b"\0" * 2000)
    with pytest.raises(DataError, match=r"big.ubj: .* MiB, larger than any quantile model"):
        QuantileModel.load(big)


@pytest.mark.parametrize("variant", range(len(VARIANTS)))
def test_ubjson_reader_matches_xgboost_json_dump(fitted, variant, tmp_path):
    from lowlight.histbranch.quantile_file import read_ubjson as _read_ubjson

    ours = _read_ubjson(fitted[variant].save(tmp_path / "m.ubj").read_bytes())
    theirs = json.loads(fitted[variant].booster.save_raw("json"))

    def same(a, b, where=""):
        if isinstance(b, dict):
            assert isinstance(a, dict) and a.keys() == b.keys(), where
            for k in b:
                same(a[k], b[k], f"{where}/{k}")
        elif isinstance(b, list) and (not b or isinstance(b[0], (dict, list, str))):
            assert len(a) == len(b), where
            for i, (x, y) in enumerate(zip(a, b)):
                same(x, y, f"{where}[{i}]")
        elif isinstance(b, list):
            # XGBoost prints float32 values in their shortest form (1e-45): equal once read as float32
            np.testing.assert_array_equal(np.asarray(a).astype(np.float32), np.asarray(b, np.float32), err_msg=where)
        else:
            assert a == b, where

    same(ours, theirs)


def test_the_lean_xgboost_import_predicts_the_same_without_sklearn(tmp_path):
    """The command line's start-up: XGBoost without scikit-learn and pandas, same predictions."""
    code = (
        "import sys, json, numpy as np\n"
        "from lowlight.histbranch.xgboost_import import import_xgboost_lean\n"
        "import_xgboost_lean()\n"
        "assert 'sklearn' not in sys.modules and 'pandas' not in sys.modules, sorted(sys.modules)[:5]\n"
        "from lowlight.histbranch.quantiles import QuantileModel\n"
        "from lowlight.inference.shipped import WEIGHTS_DIR\n"
        "img = np.random.default_rng(0).integers(0, 90, (40, 56, 3), dtype=np.uint8)\n"
        "print(json.dumps(QuantileModel.load(WEIGHTS_DIR / 'quantiles.ubj').predict([img]).tolist()))\n"
        "import sklearn  # still importable afterwards\n"
    )
    lean = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert lean.returncode == 0, lean.stderr[-2000:]
    from lowlight.inference.shipped import WEIGHTS_DIR

    img = np.random.default_rng(0).integers(0, 90, (40, 56, 3), dtype=np.uint8)
    full = QuantileModel.load(WEIGHTS_DIR / "quantiles.ubj").predict([img])
    assert np.array_equal(np.array(json.loads(lean.stdout)), full)
