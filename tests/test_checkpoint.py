"""Checkpoints rebuild their model from the file alone and never run pickled code."""

from __future__ import annotations

import pytest
import torch

from lowlight.checkpoint import CheckpointError, load_checkpoint, load_model, read_checkpoint, save_checkpoint
from lowlight.errors import user_errors
from lowlight.models import build_model
from lowlight.models.padding import run_padded


class _Payload:
    """Unpickling this would create a marker file: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_round_trip_rebuilds_the_model(tmp_path):
    torch.manual_seed(0)
    model = build_model("unet_small", in_channels=6, widths=[8, 16])
    path = save_checkpoint(tmp_path / "m.pt", model, "low+mapped", params={"train": {"lr": 0.01}},
                           metrics={"val_psnr": 20.5})
    loaded, meta = load_checkpoint(path)
    assert not loaded.training
    assert meta["model"] == "unet_small" and meta["model_args"] == {"in_channels": 6, "widths": [8, 16]}
    assert meta["inputs"] == loaded.inputs == "low+mapped"
    assert meta["params"] == {"train": {"lr": 0.01}} and meta["metrics"] == {"val_psnr": 20.5}
    x = torch.rand(1, 6, 21, 30)
    with torch.inference_mode():
        torch.testing.assert_close(run_padded(loaded, x), run_padded(model.eval(), x), rtol=1e-5, atol=1e-6)
    assert isinstance(load_model(path), type(model))


def test_resume_state_round_trip(tmp_path):
    model = build_model("llcnn", in_channels=3, channels=4, modules=1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.rand(2, 3, 8, 8)).mean().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
    sched.step(1.0)
    save_checkpoint(tmp_path / "s.pt", model, "low", extra={
        "epoch": 3, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
        "scaler": torch.amp.GradScaler("cuda", enabled=False).state_dict(),
        "train_state": {"history": [{"epoch": 1, "val_psnr": 12.0}], "best_psnr": float("-inf")}})
    ckpt = read_checkpoint(tmp_path / "s.pt")
    assert ckpt["epoch"] == 3 and ckpt["train_state"]["history"][0]["val_psnr"] == 12.0
    opt2 = torch.optim.AdamW(model.parameters(), lr=1e-3)
    opt2.load_state_dict(ckpt["optimizer"])  # loads without pickled code
    sched2 = torch.optim.lr_scheduler.ReduceLROnPlateau(opt2)
    sched2.load_state_dict(ckpt["scheduler"])
    assert sched2.best == sched.best


def test_denormal_weights_are_zeroed(tmp_path):
    torch.set_flush_denormal(False)  # load_checkpoint turns flushing on for the whole process
    model = build_model("llcnn", in_channels=3, channels=4, modules=1, batch_norm=False)
    with torch.no_grad():
        model.tail.weight[0, 0, 0, 0] = 1e-40  # a float32 denormal
        model.tail.weight[0, 0, 0, 1] = 0.5
    save_checkpoint(tmp_path / "d.pt", model, "low")
    w = read_checkpoint(tmp_path / "d.pt")["state_dict"]["tail.weight"]
    assert w[0, 0, 0, 0] == 0 and w[0, 0, 0, 1] == 0.5
    assert model.tail.weight[0, 0, 0, 0] != 0  # the live model is untouched


@pytest.mark.fault
def test_pickled_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "lowlight-checkpoint", "model": "unet", "payload": _Payload(marker)}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert not marker.exists(), "loading the checkpoint ran code"
    msg = str(err.value)
    assert str(path) in msg and "refused" in msg
    assert isinstance(err.value, user_errors())  # stages print it as one line, not a traceback


@pytest.mark.fault
@pytest.mark.parametrize("content,problem", [
    (None, "does not exist"),
    (b"not a zip file at all", "not a readable PyTorch checkpoint"),
    ({"state_dict": {}}, "not a lowlight checkpoint"),
    ({"format": "lowlight-checkpoint", "version": 1, "model": "unet"}, "missing model_args, inputs, state_dict"),
    ({"format": "lowlight-checkpoint", "version": 1, "model": "nope", "model_args": {}, "inputs": "low",
      "state_dict": {}}, "cannot rebuild its model: unknown model 'nope'"),
    ({"format": "lowlight-checkpoint", "version": 99, "model": "unet"}, "newer lowlight"),
])
def test_bad_files_are_named(tmp_path, content, problem):
    path = tmp_path / "bad.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_mismatched_weights_are_named(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", build_model("unet_small", in_channels=6), "low+mapped")
    ckpt = read_checkpoint(path)
    ckpt["model_args"] = {"in_channels": 3}
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="weights do not fit model 'unet_small'"):
        load_checkpoint(path)
