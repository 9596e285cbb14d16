"""Training under torchrun with two CPU processes (Gloo): both ranks end with the same weights."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import numpy as np
from PIL import Image

from lowlight.models.checkpoint import load_checkpoint
from lowlight.training.loop import weights_digest

SCRIPT = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    from lowlight.config import BaseConfig, TrainConfig
    from lowlight.training.loop import TrainOutputs, train

    prepared, mapped, out = map(Path, sys.argv[1:4])
    # llcnn has batch norm: its running statistics must end equal on both ranks too
    cfg = TrainConfig(model="llcnn", model_args={"channels": 4, "modules": 1}, inputs="low+mapped", epochs=2,
                      batch_size=2, crop_size=24, examples=1)
    summary = train(prepared, mapped, cfg, BaseConfig(seed=0, device="cpu", threads=1),
                    TrainOutputs(out / "model.pt", out / "metrics.json", out / "log.csv", out / "plots"))
    (out / f"rank{os.environ['RANK']}.json").write_text(json.dumps(summary))
""")


def make_mapped(prepared: Path, out: Path) -> Path:
    """Stand-in for the histmap stage: a plain brightening of each low image."""
    for split in ("train", "val"):
        (out / split).mkdir(parents=True, exist_ok=True)
        for p in sorted((prepared / split / "low").glob("*.png")):
            low = np.asarray(Image.open(p)).astype(np.float64)
            Image.fromarray(np.clip(low * 3.0, 0, 255).astype(np.uint8)).save(out / split / p.name)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_cpu_ranks_end_identical(tiny_prepared, tmp_path):
    mapped = make_mapped(tiny_prepared, tmp_path / "mapped")
    out = tmp_path / "out"
    out.mkdir()
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(script),
           str(tiny_prepared), str(mapped), str(out)]
    env = {**os.environ, "LOWLIGHT_MLFLOW": "0", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world_size"] == 2 and r["epochs"] == 2 for r in ranks)
    assert ranks[0]["final_weights_sha256"] == ranks[1]["final_weights_sha256"]
    # validation is split between the ranks and summed: both see the same numbers
    assert ranks[0]["best_val_psnr"] == ranks[1]["best_val_psnr"]
    # rank 0 alone writes: one log with one row per epoch, one checkpoint
    assert len((out / "log.csv").read_text().strip().splitlines()) == 3
    model, meta = load_checkpoint(out / "model.pt")
    assert meta["model"] == "llcnn" and meta["metrics"]["epoch"] == ranks[0]["best_epoch"]
    if ranks[0]["best_epoch"] == 2:  # the best checkpoint is the final model: same digest
        assert weights_digest(model) == ranks[0]["final_weights_sha256"]
