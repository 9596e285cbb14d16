"""Checkpoints rebuild their model from the file alone and never run pickled code."""

from __future__ import annotations

import pytest
import torch

from lowlight.models.checkpoint import CheckpointError, load_checkpoint, load_model, read_checkpoint, save_checkpoint
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


# --------------------------------------------------------------------------- crafted checkpoints (issue 13)


def _crafted(tmp_path, name="crafted.pt", **changes):
    """A valid checkpoint of a small U-Net with some entries replaced (``...`` removes one)."""
    path = save_checkpoint(tmp_path / "good.pt", build_model("unet_small", in_channels=6, widths=[8, 16]),
                           "low+mapped")
    ckpt = read_checkpoint(path)
    for key, value in changes.items():
        if value is ...:
            ckpt.pop(key)
        else:
            ckpt[key] = value
    torch.save(ckpt, tmp_path / name)
    return tmp_path / name


def _refused(path, *words, bound: float = 2.0) -> str:
    import time

    t0 = time.perf_counter()
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    seconds = time.perf_counter() - t0
    msg = str(err.value)
    assert msg.startswith(str(path)) and "\n" not in msg and len(msg) < 400, msg
    for w in words:
        assert w in msg, (w, msg)
    print(f"refused in {seconds * 1000:.0f} ms: {msg[len(str(path)) + 2:]}")
    assert seconds < bound
    return msg


@pytest.mark.fault
@pytest.mark.parametrize("args", [
    {"in_channels": 6, "widths": [3000] * 3},  # 3.4 GiB and 14 s before the fix
    {"in_channels": 6, "widths": [131072] * 4},  # a 618 GB allocation
    {"in_channels": 6, "widths": [1] * 100_000},  # 100 k tiny levels: many modules, few parameters
    {"in_channels": 6, "unshuffle": 10_000},
])
def test_a_huge_model_is_refused_before_it_is_allocated(tmp_path, args):
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _refused(_crafted(tmp_path, model_args=args), "refused before allocating it", "50,000,000 parameters")
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 200, f"peak memory grew by {grown_mib:.0f} MiB"


def test_the_largest_registered_model_is_far_below_the_bound(tmp_path):
    from lowlight.models.checkpoint import MAX_PARAMETERS, MAX_TENSORS
    from lowlight.models import count_parameters, list_models

    for name in list_models():
        model = build_model(name)
        assert count_parameters(model) < MAX_PARAMETERS / 20
        assert len(list(model.modules())) + len(model.state_dict()) < MAX_TENSORS / 4


@pytest.mark.fault
@pytest.mark.parametrize("changes, words", [
    ({"model": ["unet"]}, ["'model' must be a model name"]),
    ({"model_args": [1, 2]}, ["'model_args' must map argument names"]),
    ({"model_args": {1: 2}}, ["'model_args' must map argument names"]),
    ({"model_args": {"in_channels": -6, "widths": [8, 16]}}, ["cannot rebuild its model", "negative dimension"]),
    ({"model_args": {"in_channels": "6"}}, ["cannot rebuild its model"]),
    ({"model_args": {"in_channels": 6, "widths": "wide"}}, ["cannot rebuild its model"]),
    ({"version": "1"}, ["'version' must be a whole number, got '1'"]),
    ({"version": None}, ["'version' must be a whole number, got None"]),
    ({"version": -1}, ["'version' must be a whole number"]),
    ({"params": "fast"}, ["'params' must be a mapping, got 'fast'"]),
    ({"metrics": [1, 2]}, ["'metrics' must be a mapping"]),
    ({"inputs": ["low"]}, ["unknown inputs ['low']"]),
    ({"inputs": "x" * 100_000}, ["unknown inputs 'xxxx"]),
    ({"inputs": "low"}, ["inputs 'low' feed 3 channels", "in_channels=6"]),
    ({"state_dict": [1]}, ["'state_dict' must map parameter names to tensors"]),
    ({"state_dict": {"stem.0.0.weight": "w"}}, ["'state_dict' must map parameter names to tensors"]),
    ({"state_dict": {}}, ["weights do not fit model 'unet_small'", "missing"]),
])
def test_crafted_fields_are_one_line_errors(tmp_path, changes, words):
    _refused(_crafted(tmp_path, **changes), *words)


@pytest.mark.fault
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused(tmp_path, bad):
    """NaN weights made all-black images with exit code 0."""
    path = _crafted(tmp_path)
    ckpt = read_checkpoint(path)
    key = next(k for k, t in ckpt["state_dict"].items() if t.is_floating_point())
    ckpt["state_dict"][key].view(-1)[0] = bad
    torch.save(ckpt, path)
    _refused(path, f"weight '{key}' holds NaN or infinite values")


def _pickle_with_reduce(func, args) -> bytes:
    """A protocol-2 pickle of ``{'format': ..., 'x': func(*args)}`` written by hand (GLOBAL + REDUCE)."""
    import pickle

    class Call:
        def __reduce__(self):
            return func, args

    return pickle.dumps({"format": "lowlight-checkpoint", "x": Call()}, protocol=2)


@pytest.mark.fault
@pytest.mark.parametrize("kind", ["os.system", "allowed global, crafted call", "unknown opcode in a zip",
                                  "persistent id", "__reduce__ payload"])
def test_pickled_code_is_described_as_refused_not_damaged(tmp_path, kind):
    import collections
    import os
    import zipfile

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    if kind == "os.system":
        path.write_bytes(_pickle_with_reduce(os.system, (f"touch {marker}",)))
    elif kind == "allowed global, crafted call":  # OrderedDict is allowed; calling it with 5 is not a checkpoint
        path.write_bytes(_pickle_with_reduce(collections.OrderedDict, (5,)))
    elif kind == "unknown opcode in a zip":  # EXT1 (0x82): a real opcode the weights-only unpickler refuses
        torch.save({"format": "lowlight-checkpoint"}, path)
        with zipfile.ZipFile(path) as z:
            files = {n: z.read(n) for n in z.namelist()}
        name = next(n for n in files if n.endswith("data.pkl"))
        files[name] = b"\x80\x02\x82\x01."
        with zipfile.ZipFile(path, "w") as z:
            for n, data in files.items():
                z.writestr(n, data)
    elif kind == "persistent id":
        path.write_bytes(b"\x80\x02P0\n.")
    else:
        torch.save({"format": "lowlight-checkpoint", "payload": _Payload(marker)}, path)
    msg = _refused(path, "refused: loading it would run code (")
    assert "damaged" not in msg
    assert not marker.exists()


@pytest.mark.fault
@pytest.mark.parametrize("content", [b"", b"not a zip file at all", b"PK\x03\x04" + b"\0" * 60, b"\x80\x02\xff."])
def test_real_damage_is_described_as_damaged(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    msg = _refused(path, "not a readable PyTorch checkpoint (damaged")
    assert "would run code" not in msg


@pytest.mark.fault
def test_truncated_checkpoint_is_damaged(tmp_path):
    good = _crafted(tmp_path)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _refused(cut, "not a readable PyTorch checkpoint (damaged")
