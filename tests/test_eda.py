"""Percentile EDA (lowlight.histbranch.eda) and the three histogram-branch stage scripts."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from lowlight.config import ConfigError, EdaConfig, from_dict
from lowlight.histbranch.eda import correlation_matrix, correlation_summary

from conftest import REPO


def _strict_json(path):
    def refuse(name):
        raise ValueError(f"{path}: {name} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_correlation_matrix_matches_numpy():
    rng = np.random.default_rng(0)
    low = rng.normal(size=(30, 5))
    high = low @ rng.normal(size=(5, 5)) + rng.normal(size=(30, 5))
    want = np.corrcoef(low.T, high.T)[:5, 5:]
    np.testing.assert_allclose(correlation_matrix(low, high), want, atol=1e-12)


def test_correlation_of_a_constant_percentile_is_undefined():
    low = np.c_[np.zeros(10), np.arange(10.0)]
    high = np.c_[np.arange(10.0), 2 * np.arange(10.0)]
    corr = correlation_matrix(low, high)
    assert np.isnan(corr[0]).all() and corr[1] == pytest.approx([1.0, 1.0])


def test_eda_step_must_divide_100():
    with pytest.raises(ConfigError, match="percentile_step"):
        from_dict(EdaConfig, {"percentile_step": 3}, prefix="eda")


@pytest.mark.slow
def test_run_eda_outputs(tiny_prepared, tmp_path):
    cfg = EdaConfig(examples=2)
    m = run_eda(tiny_prepared, cfg, tmp_path / "eda" / "p.csv", tmp_path / "eda.json", tmp_path / "plots")
    saved = _strict_json(tmp_path / "eda.json")  # the headline figures; every channel's are in the CSV
    assert saved == {k: round(m[k], 4) for k in ("train_images", "mean_luma_corr", "corr_pooled_frac_ge_threshold",
                                                 "corr_luma_mean")}  # rounded: a rerun writes the same bytes
    table = pd.read_csv(tmp_path / "eda" / "p.csv")
    assert len(table) == 6 * 4  # 6 training pairs x (r, g, b, luma)
    assert set(table["channel"]) == {"r", "g", "b", "luma"}
    assert [c for c in table.columns if c.startswith("low_p")][-1] == "low_p100"
    row = table[(table["stem"] == "train000") & (table["channel"] == "g")].iloc[0]
    from lowlight.imageio import read_rgb

    high = read_rgb(tiny_prepared / "train" / "high" / "train000.png")
    assert row["high_p050"] == pytest.approx(np.percentile(high[..., 1], 50), abs=0.01)
    for name in ("r", "g", "b", "pooled", "luma"):
        frac = m[f"corr_{name}_frac_ge_threshold"]
        assert 0 <= frac <= 1
    assert m["low_mean_luma"] < m["high_mean_luma"]
    assert {p.name for p in (tmp_path / "plots").iterdir()} == {"correlation.png", "histograms.png",
                                                                "brightness.png", "correlations.csv"}
    details = pd.read_csv(tmp_path / "plots" / "correlations.csv").set_index("correlation")
    assert details.loc["luma", "frac_ge_threshold"] == pytest.approx(m["corr_luma_frac_ge_threshold"], rel=1e-5)


def test_threshold_fraction_counts_percentile_pairs():

    corr = np.array([[0.9, 0.6, np.nan], [0.59, -0.7, 0.61], [0.1, 0.2, 1.0]])
    s = correlation_summary(corr, 0.6)
    assert s["frac_ge_threshold"] == pytest.approx(4 / 9)  # 0.9, 0.6, 0.61, 1.0; NaN counts as below
    assert s["undefined"] == 1 and s["max"] == 1.0
    assert s["diag_mean"] == pytest.approx((0.9 - 0.7 + 1.0) / 3)


def test_run_eda_needs_two_pairs(tmp_path, capsys):
    from conftest import write_prepared

    root = write_prepared(tmp_path / "one", counts={"train": 1})
    with pytest.raises(SystemExit) as exc:
        run_eda(root, EdaConfig(), tmp_path / "p.csv", tmp_path / "e.json", tmp_path / "plots")
    assert exc.value.code == 2 and "at least 2" in capsys.readouterr().err


def _stage(name):
    from conftest import load_stage

    return load_stage(name)


def run_eda(data, cfg, csv, metrics, plots):
    """The eda stage on ``data`` with ``cfg`` (written to a params file)."""
    import yaml

    params = metrics.parent / "eda_params.yaml"
    params.parent.mkdir(parents=True, exist_ok=True)
    params.write_text(yaml.safe_dump({"eda": {"percentile_step": cfg.percentile_step, "examples": cfg.examples,
                                              "corr_threshold": cfg.corr_threshold}}))
    return _stage("eda").main(["--params", str(params), "--data", str(data), "--percentiles", str(csv),
                               "--metrics", str(metrics), "--plots", str(plots)])


def _dvc_args(name):
    """The stage's command line from dvc.yaml, minus ``python stages/<name>.py``."""
    import yaml

    cmd = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][name]["cmd"].split()
    assert cmd[:2] == ["python", f"stages/{name}.py"]
    return cmd[2:]


@pytest.mark.slow
def test_stage_scripts_run_in_order(tiny_prepared, tmp_path, monkeypatch, capsys):
    """eda -> quantiles -> histmap with dvc.yaml's exact command lines."""
    import shutil

    import yaml

    pytest.importorskip("lowlight.evaluation.scores")
    (tmp_path / "data").mkdir()
    shutil.move(tiny_prepared, tmp_path / "data" / "prepared")
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump({"quantiles": {"n_estimators": 5, "grid": 2}, "histmap": {"method": "kde"}}))
    monkeypatch.chdir(tmp_path)
    for name in ("eda", "quantiles", "histmap"):
        _stage(name).main(_dvc_args(name))
    out = capsys.readouterr().out
    assert "eda:" in out and "quantiles:" in out and "histmap: kde/rgb" in out
    hm = _strict_json(tmp_path / "metrics" / "histmap.json")
    assert math.isfinite(hm["val_psnr"]) and math.isfinite(hm["train_psnr"]) and "(out-of-fold)" in out
    assert len(list((tmp_path / "data" / "mapped" / "train").glob("*.png"))) == 6
    assert (tmp_path / "data" / "eda" / "percentiles.csv").is_file()
    assert (tmp_path / "plots" / "quantiles" / "predictions.png").is_file()


def test_stage_reports_a_missing_dataset_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        _stage("eda").main(["--params", str(tmp_path / "none.yaml"), "--data", str(tmp_path), "--percentiles",
                        str(tmp_path / "p.csv"), "--metrics", str(tmp_path / "e.json"), "--plots", str(tmp_path)])
    assert exc.value.code == 2
    assert "eda: error:" in capsys.readouterr().err
