"""The training loop on tiny data: outputs, determinism, resume, NaN stop, budgets, bad data, MLflow."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lowlight.training import losses
from lowlight.models.checkpoint import load_checkpoint, read_checkpoint
from lowlight.config import BaseConfig, TrainConfig
from lowlight.errors import DataError, user_errors
from lowlight.evaluation.scores import psnr
from lowlight.inference.exposure import anchor_exposure
from lowlight.models.padding import run_padded
from lowlight.training.data import CropDataset, load_split, stack_inputs
from lowlight.training.loop import LOG_COLUMNS, TrainingError, TrainOutputs, state_path, to_uint8, train

REPO = Path(__file__).resolve().parents[1]
# one thread: the results do not depend on it, and on a busy 2-core machine two threads wait on each other
BASE = BaseConfig(seed=3, device="cpu", threads=1)
# tiny but complete: 6 train pairs of 48x64 -> 3 steps of 2 crops per epoch, 2 val images
CFG = TrainConfig(model="unet_small", model_args={"widths": [8, 16]}, epochs=2, batch_size=2, crop_size=32,
                  examples=2, lr=5e-3)


def make_mapped(prepared: Path, out: Path) -> Path:
    """Stand-in for the histmap stage: a plain brightening of each low image."""
    for split in ("train", "val", "test"):
        (out / split).mkdir(parents=True, exist_ok=True)
        for p in sorted((prepared / split / "low").glob("*.png")):
            low = np.asarray(Image.open(p)).astype(np.float64)
            Image.fromarray(np.clip(low * 3.0, 0, 255).astype(np.uint8)).save(out / split / p.name)
    return out


@pytest.fixture
def data(tiny_prepared, tmp_path):
    return tiny_prepared, make_mapped(tiny_prepared, tmp_path / "mapped")


def run(data, out: Path, cfg: TrainConfig = CFG, base: BaseConfig = BASE, **kwargs) -> dict:
    prepared, mapped = data
    outputs = TrainOutputs(out / "models" / "model.pt", out / "metrics.json", out / "log.csv", out / "plots")
    return train(prepared, mapped, cfg, base, outputs, **kwargs)


class CountingLoss:
    """The configured loss, with a fault injected at call number ``at`` (train and val calls alike)."""

    def __init__(self, name: str, at: int, fault: str):
        self.inner, self.at, self.fault, self.calls = losses.LOSSES[name], at, fault, 0

    def __call__(self, pred, target):
        self.calls += 1
        out = self.inner(pred, target)
        if self.calls == self.at:
            if self.fault == "kill":
                raise KeyboardInterrupt("simulated kill")
            return out * float("nan")
        return out


@pytest.mark.slow
def test_two_epochs_write_every_output(data, tmp_path):
    out = tmp_path / "run"
    summary = run(data, out)
    assert summary["epochs"] == 2 and summary["stopped"] == "epochs"
    assert summary["parameters"] > 0 and summary["cpu_ms_per_600x400"] > 0
    assert np.isfinite(summary["best_val_psnr"]) and 0 < summary["best_val_ssim"] <= 1

    with open(out / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert list(rows[0]) == LOG_COLUMNS
    assert all(np.isfinite(float(r[k])) for r in rows for k in LOG_COLUMNS)

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["best_val_psnr"] == pytest.approx(max(float(r["val_psnr"]) for r in rows), abs=1e-4)
    assert "cpu_ms_per_600x400" not in metrics and summary["kept_starting_weights"] is False  # init: none
    timings = json.loads((out / "timings" / "metrics.json").read_text())  # untracked, beside the metrics
    assert timings["cpu_ms_per_600x400"] > 0 and len(timings["epoch_seconds"]) == 2
    assert metrics["epochs"] == 2 and summary["model"] == "unet_small"
    assert all(isinstance(v, (int, float)) for v in metrics.values())  # numbers only, for dvc exp show
    assert {p.name for p in (out / "plots").iterdir()} == {"loss_curves.png", "val_samples.png"}
    assert not state_path(out / "models" / "model.pt").exists(), "finished runs leave no resume state"

    # the checkpoint alone reproduces the best validation PSNR through the inference path
    model, meta = load_checkpoint(out / "models" / "model.pt")
    assert meta["inputs"] == "low+mapped" and meta["model"] == "unet_small"
    assert meta["params"]["train"]["crop_size"] == 32 and meta["metrics"]["epoch"] == summary["best_epoch"]
    # (after the exposure anchor, as the enhancer applies it)
    val = load_split(data[0], data[1], "val", "low+mapped")
    alpha = meta["params"]["train"]["exposure_anchor"]
    assert alpha == CFG.exposure_anchor > 0
    scores, free = [], []
    for x, m, y in zip(val.inputs, val.mapped, val.targets):
        t = torch.from_numpy(x.transpose(2, 0, 1).copy())[None].float() / 255
        with torch.inference_mode():
            out = to_uint8(run_padded(model, t))
        scores.append(psnr(anchor_exposure(out, m, alpha), y))
        free.append(psnr(out, y))
    assert np.mean(scores) == pytest.approx(summary["best_val_psnr"], abs=1e-3)
    assert np.mean(free) != pytest.approx(summary["best_val_psnr"], abs=1e-3)  # the anchor did act


@pytest.mark.slow
def test_same_seed_same_weights_on_cpu(data, tmp_path):
    a = run(data, tmp_path / "a")
    b = run(data, tmp_path / "b")
    assert a["final_weights_sha256"] == b["final_weights_sha256"]
    wa = read_checkpoint(tmp_path / "a" / "models" / "model.pt")["state_dict"]
    wb = read_checkpoint(tmp_path / "b" / "models" / "model.pt")["state_dict"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    c = run(data, tmp_path / "c", base=replace(BASE, seed=4))
    assert c["final_weights_sha256"] != a["final_weights_sha256"]


@pytest.mark.slow
def test_worker_processes_do_not_change_results(data, tmp_path):
    one = replace(CFG, epochs=1, examples=0)
    a = run(data, tmp_path / "a", one)
    b = run(data, tmp_path / "b", replace(one, num_workers=2))
    assert a["final_weights_sha256"] == b["final_weights_sha256"]


@pytest.mark.slow
@pytest.mark.fault
def test_resume_after_kill_matches_uninterrupted(data, tmp_path, monkeypatch):
    cfg = replace(CFG, epochs=3)
    reference = run(data, tmp_path / "ref", cfg)

    out = tmp_path / "killed"
    # calls per epoch: 3 training steps + 2 validation images; die in epoch 2's second step
    monkeypatch.setitem(losses.LOSSES, "l1_ssim", CountingLoss("l1_ssim", at=7, fault="kill"))
    with pytest.raises(KeyboardInterrupt):
        run(data, out, cfg)
    saved = read_checkpoint(state_path(out / "models" / "model.pt"))
    assert saved["epoch"] == 1
    monkeypatch.undo()

    (out / "models" / "model.pt").unlink()  # as `dvc repro` deletes outputs before rerunning
    resumed = run(data, out, cfg)
    assert resumed["resumed_from_epoch"] == 1 and resumed["epochs"] == 3
    # all randomness is keyed by (seed, epoch, sample): on CPU the resumed run is the same run
    assert resumed["final_weights_sha256"] == reference["final_weights_sha256"]
    assert resumed["best_val_psnr"] == pytest.approx(reference["best_val_psnr"], abs=1e-9)
    with open(out / "log.csv") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [1, 2, 3]


@pytest.mark.slow
def test_state_from_other_params_is_not_resumed(data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setitem(losses.LOSSES, "l1_ssim", CountingLoss("l1_ssim", at=7, fault="kill"))
    with pytest.raises(KeyboardInterrupt):
        run(data, out)
    monkeypatch.undo()
    summary = run(data, out, replace(CFG, lr=1e-3))
    assert summary["resumed_from_epoch"] == 0 and summary["epochs"] == 2


@pytest.mark.slow
def test_state_from_other_code_is_not_resumed(data, tmp_path, monkeypatch):
    import lowlight.training.build as training

    out = tmp_path / "run"
    monkeypatch.setitem(losses.LOSSES, "l1_ssim", CountingLoss("l1_ssim", at=7, fault="kill"))
    with pytest.raises(KeyboardInterrupt):
        run(data, out)
    monkeypatch.undo()
    monkeypatch.setattr(training, "code_digest", lambda name: "edited model source")
    assert run(data, out)["resumed_from_epoch"] == 0


@pytest.mark.slow
@pytest.mark.fault
def test_nan_loss_stops_and_keeps_last_good_checkpoint(data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setitem(losses.LOSSES, "l1_ssim", CountingLoss("l1_ssim", at=6, fault="nan"))
    with pytest.raises(TrainingError) as err:
        run(data, out, replace(CFG, epochs=3))
    msg = str(err.value)
    assert "loss became nan at epoch 2, step 1" in msg and "model.pt" in msg
    assert isinstance(err.value, user_errors())
    model, meta = load_checkpoint(out / "models" / "model.pt")  # epoch 1's weights, finite
    assert meta["metrics"]["epoch"] == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert read_checkpoint(state_path(out / "models" / "model.pt"))["epoch"] == 1


@pytest.mark.slow
def test_time_budget_and_early_stopping(data, tmp_path):
    budget = run(data, tmp_path / "budget", replace(CFG, epochs=50, time_budget_min=1e-6))
    assert budget["stopped"] == "time_budget" and budget["epochs"] == 1
    # a learning rate too small to change any uint8 pixel: no improvement after epoch 1
    early = run(data, tmp_path / "early", replace(CFG, epochs=50, patience=2, lr=1e-12))
    assert early["stopped"] == "early_stopping" and early["epochs"] == 3 and early["best_epoch"] == 1


@pytest.mark.parametrize("inputs", ["low", "mapped", "low+mapped"])
def test_inputs_and_crops(data, inputs):
    split = load_split(data[0], data[1], "train", inputs)
    channels = {"low": 3, "mapped": 3, "low+mapped": 6}[inputs]
    assert split.inputs[0].shape == (48, 64, channels)
    if inputs != "mapped":
        np.testing.assert_array_equal(split.inputs[0][..., :3], split.lows[0])
    ds = CropDataset(split.inputs, split.targets, 16, length=20, seed=0)
    ds.set_epoch(1)
    x, y = ds[7]
    assert x.shape == (channels, 16, 16) and y.shape == (3, 16, 16) and x.dtype == torch.uint8
    x2, _ = ds[7]
    assert torch.equal(x, x2), "a sample depends on (seed, epoch, index) only"
    ds.set_epoch(2)
    assert not torch.equal(ds[7][0], x)


def test_crops_keep_input_and_target_aligned():
    # the target is the input's last channels: any crop/flip/turn must keep them equal
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    ds = CropDataset([np.concatenate([img, img], axis=2)], [img], 8, length=64, seed=1)
    for i in range(64):
        x, y = ds[i]
        assert torch.equal(x[3:], y)


def test_stack_inputs_order():
    low, mapped = np.zeros((4, 5, 3), np.uint8), np.full((4, 5, 3), 9, np.uint8)
    assert (stack_inputs(low, mapped, "low+mapped")[..., 3:] == 9).all()
    with pytest.raises(ValueError, match="needs the histogram-mapped image"):
        stack_inputs(low, None, "mapped")


@pytest.mark.fault
def test_crop_larger_than_images_is_named(data, tmp_path):
    with pytest.raises(DataError, match=r"train.crop_size 64 is larger than 6 train image\(s\); lower "
                                        r"train.crop_size to at most 48"):
        run(data, tmp_path / "run", replace(CFG, crop_size=64))


def test_missing_mapped_images_are_listed(data, tmp_path):
    (data[1] / "train" / "train002.png").unlink()
    with pytest.raises(DataError, match="train002.png: missing"):
        run(data, tmp_path / "run")


def test_in_channels_follows_inputs(data, tmp_path):
    with pytest.raises(user_errors(), match="in_channels"):
        run(data, tmp_path / "run", replace(CFG, model_args={"in_channels": 3}))


@pytest.mark.slow
def test_stage_script_runs(data, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(
        "base: {seed: 1, device: cpu, threads: 1}\n"
        "train: {model: llcnn_small, model_args: {channels: 4, modules: 1}, inputs: low, exposure_anchor: 0,"
        " target_exposure: reference, loss: mse_mae, epochs: 1,"
        " batch_size: 3, crop_size: 24, examples: 1}\n")
    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO / "stages" / "train.py"), "--params", str(params), "--data", str(data[0]),
           "--mapped", str(data[1]), "--checkpoint", str(out / "model.pt"), "--metrics", str(out / "m.json"),
           "--log", str(out / "log.csv"), "--plots", str(out / "plots")]
    env = {**os.environ, "LOWLIGHT_MLFLOW": "0"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "best val PSNR" in done.stdout
    assert load_checkpoint(out / "model.pt")[1]["inputs"] == "low"
    params.write_text("train: {model: unet, crop_size: 500}\n")
    err = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert err.returncode == 2 and "train: error:" in err.stderr and "crop_size 500" in err.stderr


# --------------------------------------------------------------------------- MLflow, for real


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


@pytest.mark.slow
def test_metrics_reach_a_real_mlflow_server(data, tmp_path, monkeypatch):
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    if not mlflow_bin.exists():
        pytest.skip("mlflow command not installed beside this Python")
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    store = tmp_path / "mlflow"
    store.mkdir()
    server = subprocess.Popen(
        [str(mlflow_bin), "server", "--backend-store-uri", f"sqlite:///{store / 'db.sqlite'}",
         "--artifacts-destination", str(store / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=open(store / "server.log", "w"), start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(uri + "/health", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow server did not start: {(store / 'server.log').read_text()[-2000:]}")
                time.sleep(0.5)

        from lowlight.tracking import stage_run

        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        monkeypatch.setenv("LOWLIGHT_MLFLOW", "1")
        cfg = replace(CFG, epochs=1)
        out = tmp_path / "run"
        with stage_run("train", params={"train.lr": cfg.lr}, experiment="lowlight-test") as tracker:
            summary = run(data, out, cfg, tracker=tracker)
            tracker.log_artifact(out / "plots")
            run_id = tracker.run_id

        got = _get(f"{uri}/api/2.0/mlflow/runs/get?run_id={run_id}")["run"]
        assert got["info"]["status"] == "FINISHED"
        assert {p["key"]: p["value"] for p in got["data"]["params"]}["train.lr"] == str(cfg.lr)
        query = urllib.parse.urlencode({"run_id": run_id, "metric_key": "train.val_psnr"})
        history = _get(f"{uri}/api/2.0/mlflow/metrics/get-history?{query}")["metrics"]
        assert [m["step"] for m in history] == [1]
        assert history[0]["value"] == pytest.approx(summary["best_val_psnr"], abs=1e-6)
        names = {m["key"] for m in got["data"]["metrics"]}
        assert {f"train.{k}" for k in LOG_COLUMNS if k != "epoch"} <= names
        arts = _get(f"{uri}/api/2.0/mlflow/artifacts/list?{urllib.parse.urlencode({'run_id': run_id, 'path': 'train'})}")
        assert any(f["path"].endswith("loss_curves.png") for f in arts.get("files", []))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.mark.slow
def test_init_starts_from_a_checkpoint_and_refuses_another_model(data, tmp_path):
    from lowlight.config import ConfigError

    first = run(data, tmp_path / "first")
    start = tmp_path / "first" / "models" / "model.pt"
    # a learning rate too small to move any weight: the run ends where it started
    tuned = run(data, tmp_path / "tuned", replace(CFG, init=str(start), epochs=1, lr=1e-12, ema_decay=0.0))
    assert tuned["best_val_psnr"] == pytest.approx(first["best_val_psnr"], abs=0.05)
    a = load_checkpoint(tmp_path / "tuned" / "models" / "model.pt")[0].state_dict()
    b = load_checkpoint(start)[0].state_dict()
    assert all(torch.allclose(a[k], b[k], rtol=0, atol=1e-9) for k in b)  # lr 1e-12 moves only the last bits
    with pytest.raises(ConfigError, match="train.init"):
        run(data, tmp_path / "other", replace(CFG, init=str(start), model_args={"widths": [8, 8]}))
    with pytest.raises(ConfigError, match="train.init"):
        run(data, tmp_path / "missing", replace(CFG, init=str(tmp_path / "nope.pt")))


@pytest.mark.slow
def test_a_fine_tune_never_saves_worse_weights_than_it_started_from(data, tmp_path):
    """train.init: the starting weights are validated as epoch 0 and stay the best until an
    epoch beats them; a learning rate that wrecks the network leaves them in the checkpoint."""
    first = run(data, tmp_path / "first")
    start = tmp_path / "first" / "models" / "model.pt"
    wrecked = run(data, tmp_path / "wrecked", replace(CFG, init=str(start), epochs=2, lr=0.5, grad_clip=0.0,
                                                      ema_decay=0.0))
    assert wrecked["best_epoch"] == 0 and wrecked["epochs"] == 2
    assert wrecked["best_val_psnr"] == pytest.approx(first["best_val_psnr"], abs=1e-6)  # the same weights, rescored
    with open(tmp_path / "wrecked" / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]  # epoch 0, the starting weights, is on the curves
    assert float(rows[0]["val_psnr"]) == pytest.approx(wrecked["best_val_psnr"], abs=1e-4) and rows[0]["train_loss"] == ""
    assert all(float(r["val_psnr"]) < wrecked["best_val_psnr"] for r in rows[1:])
    assert wrecked["kept_starting_weights"] is True
    a, meta = load_checkpoint(tmp_path / "wrecked" / "models" / "model.pt")
    b = load_checkpoint(start)[0].state_dict()
    assert all(torch.equal(a.state_dict()[k], b[k]) for k in b)
    assert meta["metrics"]["epoch"] == 0


def test_target_exposure_mapped_scales_the_train_targets_only(data, tmp_path, monkeypatch):
    from lowlight.evaluation.scores import grey_mean
    from lowlight.training import build
    from lowlight.training.data import at_mapped_exposure

    prepared, mapped = data
    split = load_split(prepared, mapped, "train", "low+mapped")
    scaled = at_mapped_exposure(split)
    for ref, m, t in zip(split.targets, split.mapped, scaled.targets):
        gain = np.float32(grey_mean(m) / grey_mean(ref))  # one gain per image: the mapped image's exposure
        assert np.array_equal(t, np.clip(np.rint(ref.astype(np.float32) * gain), 0, 255).astype(np.uint8))
        assert abs(grey_mean(t) - grey_mean(m)) < abs(grey_mean(ref) - grey_mean(m)) / 2
    assert all(np.array_equal(a, b) for a, b in zip(split.inputs, scaled.inputs))

    seen = {}
    real = build.CropDataset
    monkeypatch.setattr(build, "CropDataset", lambda inputs, targets, *a, **k: seen.setdefault("t", targets) and
                        real(inputs, targets, *a, **k))
    run(data, tmp_path / "mapped_exposure", replace(CFG, epochs=1, target_exposure="mapped"))
    assert all(np.array_equal(a, b) for a, b in zip(seen["t"], scaled.targets))
    # validation still scores against the references as shot
    from lowlight.training.validation import val_output

    summary = json.loads((tmp_path / "mapped_exposure" / "metrics.json").read_text())
    model, meta = load_checkpoint(tmp_path / "mapped_exposure" / "models" / "model.pt", "cpu")
    val = load_split(prepared, mapped, "val", "low+mapped")
    alpha = meta["params"]["train"]["exposure_anchor"]
    scores = [psnr(val_output(model, val, i, torch.device("cpu"), exposure_anchor=alpha)[1], val.targets[i])
              for i in range(len(val))]
    assert summary["best_val_psnr"] == pytest.approx(float(np.mean(scores)), abs=1e-4)  # metrics.json: 4 decimals
    with pytest.raises(ValueError, match="train.target_exposure"):
        replace(CFG, inputs="low", exposure_anchor=0.0)
