"""The evaluate stage's library function, its stage script and the `lowlight evaluate` command."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lowlight.evaluation.baselines import baselines
from lowlight.config import EvaluateConfig
from lowlight.errors import DataError
from lowlight.evaluation.folders import evaluate_dirs
from lowlight.evaluation.scores import METRICS
from lowlight.imageio import read_rgb

from conftest import REPO, load_stage, write_prepared

_stage = load_stage("evaluate")
run_evaluation, EvalOutputs = _stage.run_evaluation, _stage.EvalOutputs  # the stage's own scoring loop


def _brighten(low: np.ndarray) -> np.ndarray:
    return np.clip(low.astype(np.int32) * 4, 0, 255).astype(np.uint8)


FAKE_METHODS = {"identity": lambda x: x.copy(), "times4": _brighten}


def _run(root, tmp_path, methods=FAKE_METHODS, cfg=EvaluateConfig(examples=2)):
    out = tmp_path / "out"
    outputs = EvalOutputs(out / "metrics" / "eval.json", out / "metrics" / "per_image.csv", out / "plots",
                          out / "metrics" / "eval_table.md")
    return run_evaluation(root, methods, cfg, outputs, workers=2), out


def test_run_evaluation_writes_every_output(tiny_prepared, tmp_path):
    result, out = _run(tiny_prepared, tmp_path)
    assert result["split"] == "test" and result["n_images"] == 2
    saved = json.loads((out / "metrics" / "eval.json").read_text())
    ident = result["methods"]["identity"]  # the one classical baseline among the fakes
    assert saved == {"n_images": 2, "test_split": 1,  # rounded, so a rerun writes the same bytes
                     "best_baseline": {"psnr": round(ident["psnr"], 4), "ssim": round(ident["ssim"], 4)}}
    timings = json.loads((out / "metrics" / "timings" / "eval.json").read_text())  # untracked, beside it
    assert set(timings) == {f"{name}_seconds_per_image" for name in result["methods"]}
    assert "s / image" not in (out / "metrics" / "eval_table.md").read_text()
    methods = pd.read_csv(out / "plots" / "methods.csv").set_index("method")
    assert "seconds_per_image" not in methods.columns  # the plots folder is DVC-tracked: no timings
    assert methods.loc["times4", "psnr"] == pytest.approx(result["methods"]["times4"]["psnr"], abs=1e-6)
    for name in FAKE_METHODS:
        assert set(result["methods"][name]) == {*METRICS, "seconds_per_image"}

    df = pd.read_csv(out / "metrics" / "per_image.csv", dtype={"stem": str})
    assert df["stem"].tolist() == ["test000", "test001"]
    assert {"psnr_identity", "ssim_identity", "psnr_times4", "ssim_gt_mean_times4"} <= set(df.columns)
    assert df["psnr_times4"].mean() == pytest.approx(result["methods"]["times4"]["psnr"], abs=1e-5)

    for png in ("comparison.png", "psnr_per_image.png"):
        with Image.open(out / "plots" / png) as im:
            assert im.size[0] > 200 and im.size[1] > 100

    table = (out / "metrics" / "eval_table.md").read_text()
    assert "`test`" in table and "2 images" in table
    m = result["methods"]["times4"]
    assert f"| times4 | {m['psnr']:.2f} | {m['ssim']:.4f} | {m['psnr_gt_mean']:.2f} |" in table


def test_well_lit_input_scores_each_distinct_reference_against_itself(tmp_path):
    from lowlight.evaluation.scores import PSNR_CAP, psnr

    root = write_prepared(tmp_path / "prepared", counts={"train": 1, "val": 0, "test": 3})
    shared = root / "test" / "high"
    refs = sorted(shared.iterdir())
    refs[2].write_bytes(refs[0].read_bytes())  # two shots of one scene share their reference, as in LOL
    calls = []

    def counting(x):
        calls.append(x.shape)
        return _brighten(x)

    out = tmp_path / "out"
    outputs = EvalOutputs(out / "eval.json", out / "per_image.csv", out / "plots", out / "eval_table.md")
    result = run_evaluation(root, {"identity": lambda x: x.copy(), "pipeline": counting}, EvaluateConfig(examples=0),
                            outputs, workers=1, well_lit=("pipeline", "shipped"))
    assert len(calls) == 3 + 2  # every low image, then each of the 2 distinct references once
    expected = np.mean([psnr(_brighten(read_rgb(p)), read_rgb(p)) for p in refs[:2]])
    assert result["methods"]["pipeline"]["psnr_well_lit"] == pytest.approx(expected)
    assert result["methods"]["pipeline"]["psnr_well_lit"] < PSNR_CAP and "psnr_well_lit" not in result["methods"]["identity"]
    assert json.loads((out / "eval.json").read_text())["pipeline"]["psnr_well_lit"] == pytest.approx(expected, abs=1e-4)
    table = (out / "eval_table.md").read_text()
    assert f"| {expected:.2f} |" in table and "| identity |" in table and " | - |\n" in table


def test_identity_scores_equal_the_folder_evaluator(tiny_prepared, tmp_path):
    result, _ = _run(tiny_prepared, tmp_path)
    _, summary = evaluate_dirs(tiny_prepared / "test" / "low", tiny_prepared / "test" / "high")
    for m in METRICS:
        assert result["methods"]["identity"][m] == pytest.approx(summary[m], abs=1e-12)
    assert result["methods"]["times4"]["psnr"] > result["methods"]["identity"]["psnr"]


def test_val_split_is_used_and_said_when_test_is_empty(tmp_path):
    root = write_prepared(tmp_path / "prepared", counts={"train": 2, "val": 3, "test": 0})
    result, out = _run(root, tmp_path)
    assert result["split"] == "val" and result["n_images"] == 3
    assert "`val`" in (out / "metrics" / "eval_table.md").read_text()


def test_no_images_to_evaluate_is_a_data_error(tmp_path):
    root = write_prepared(tmp_path / "prepared", counts={"train": 2})
    with pytest.raises(DataError, match="test and val splits are both empty"):
        _run(root, tmp_path)


def test_a_method_returning_the_wrong_thing_is_named(tiny_prepared, tmp_path):
    with pytest.raises(ValueError, match="method 'half'.*uint8"):
        _run(tiny_prepared, tmp_path, methods={"half": lambda x: x[::2]})
    with pytest.raises(ValueError, match="lower-case identifiers"):
        _run(tiny_prepared, tmp_path, methods={"Pipe Line": lambda x: x})


def test_run_evaluation_with_the_real_baselines(tiny_prepared, tmp_path):
    result, out = _run(tiny_prepared, tmp_path, methods=baselines(), cfg=EvaluateConfig(examples=1))
    assert list(result["methods"]) == ["identity", "histeq", "clahe", "gamma"]
    ident = result["methods"]["identity"]["psnr"]
    assert all(result["methods"][n]["psnr"] > ident for n in ("histeq", "clahe", "gamma"))


def test_examples_zero_draws_no_grid(tiny_prepared, tmp_path):
    _, out = _run(tiny_prepared, tmp_path, cfg=EvaluateConfig(examples=0))
    assert not (out / "plots" / "comparison.png").exists()
    assert (out / "plots" / "psnr_per_image.png").exists()


# --------------------------------------------------------------------------- the stage script


class _FakeEnhancer:
    """Stands in for lowlight.inference.enhancer.Enhancer: no trained models needed."""

    @classmethod
    def from_files(cls, quantile_model, checkpoint, histmap, device):
        assert device == "cpu"
        return cls()

    @classmethod
    def pretrained(cls, device):
        return cls()

    def map(self, rgb):
        return np.clip(rgb.astype(np.int32) * 3, 0, 255).astype(np.uint8)

    def __call__(self, rgb):
        return np.clip(rgb.astype(np.int32) * 5, 0, 255).astype(np.uint8)


def _load_stage():
    spec = importlib.util.spec_from_file_location("stage_evaluate", REPO / "stages" / "evaluate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_stage_script_runs_all_methods_and_says_which_split(tmp_path, monkeypatch, capsys):
    stage = _load_stage()
    monkeypatch.setattr(stage, "Enhancer", _FakeEnhancer)
    root = write_prepared(tmp_path / "prepared", counts={"train": 1, "val": 2, "test": 0})
    params = tmp_path / "params.yaml"
    params.write_text("evaluate:\n  examples: 1\n")
    args = ["--params", str(params), "--data", str(root), "--quantile-model", "q.ubj", "--checkpoint", "m.pt",
            "--metrics", str(tmp_path / "eval.json"), "--per-image", str(tmp_path / "eval.csv"),
            "--plots", str(tmp_path / "plots"), "--table", str(tmp_path / "eval_table.md")]
    stage.main(args)
    printed = capsys.readouterr().out
    assert "test split is empty; scored the val split" in printed
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["test_split"] == 0 and set(result) == {"n_images", "test_split", "pipeline", "histmap", "shipped",
                                                          "best_baseline"}
    assert set(result["pipeline"]) == {"psnr", "ssim", "psnr_gt_mean", "psnr_well_lit"}
    assert all(isinstance(v, (int, float)) for m in result.values() for v in (m.values() if isinstance(m, dict)
                                                                            else [m]))  # numbers only
    methods = pd.read_csv(tmp_path / "plots" / "methods.csv")
    assert methods["method"].tolist() == ["identity", "histeq", "clahe", "gamma", "histmap", "pipeline", "shipped"]
    assert result["best_baseline"]["psnr"] == pytest.approx(methods["psnr"][:4].max(), abs=1e-4)  # eval.json is rounded to 4 decimals
    df = pd.read_csv(tmp_path / "eval.csv")
    assert "psnr_pipeline" in df  # the column dvc.yaml plots
    assert (tmp_path / "plots" / "comparison.png").exists()


def test_stage_arguments_match_dvc_yaml():
    import yaml

    cmd = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["evaluate"]["cmd"].split()
    args = _load_stage().parse_args(cmd[2:])
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["evaluate"]
    outs = {next(iter(o)) if isinstance(o, dict) else o for o in spec["outs"]}
    assert str(args.plots) in outs and str(args.table) in outs
    assert str(args.metrics) in {next(iter(m)) for m in spec["metrics"]}
    plot = next(iter(spec["plots"][0].items()))
    assert plot[0] == str(args.per_image) and "psnr_pipeline" in (plot[1]["x"], plot[1]["y"])


# --------------------------------------------------------------------------- `lowlight evaluate`


def _folders(tmp_path, n=3):
    root = write_prepared(tmp_path / "prepared", counts={"val": n})
    return root / "val" / "low", root / "val" / "high"


def test_cli_evaluate_prints_a_table_and_writes_files(tmp_path, capsys):
    from lowlight.cli.main import main

    pred, ref = _folders(tmp_path)
    rc = main(["evaluate", str(pred), str(ref), "--csv", str(tmp_path / "s.csv"),
               "--json", str(tmp_path / "s.json"), "--workers", "2"])
    assert rc == 0
    out = capsys.readouterr().out
    _, summary = evaluate_dirs(pred, ref)
    assert "val000" in out and "mean of 3" in out
    assert f"{summary['psnr']:8.3f}" in out
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["psnr"] == pytest.approx(summary["psnr"]) and saved["n_images"] == 3
    assert len(pd.read_csv(tmp_path / "s.csv")) == 3


def test_cli_evaluate_names_a_missing_file(tmp_path, capsys):
    from lowlight.cli.main import main

    pred, ref = _folders(tmp_path)
    (pred / "val001.png").unlink()
    assert main(["evaluate", str(pred), str(ref)]) == 2
    err = capsys.readouterr().err
    assert "val001.png: reference has no prediction" in err


def test_python_m_lowlight_evaluate(tmp_path):
    import subprocess

    pred, ref = _folders(tmp_path, n=1)
    proc = subprocess.run([sys.executable, "-m", "lowlight", "evaluate", str(pred), str(ref)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "mean of 1" in proc.stdout
