"""Resumable training: the whole loop state after every epoch, and continuing from it.

The state goes to ``<checkpoint folder>/.train_state/<name>.last.pt`` (outside DVC's
outputs, which ``dvc repro`` deletes before rerunning) with the optimiser, schedule,
scaler, EMA and best weights. A rerun whose params, data and code match
(``run.identity``) continues after the last finished epoch; any other state is ignored
with a line saying why.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch.distributed as dist

from lowlight.models.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from lowlight.training.state import LoopState, Run, state_path

__all__ = ["resume", "save_state", "drop_state"]


def resume(run: Run) -> None:
    """Continue an interrupted run whose params, data and code match; rank 0 reads, every rank gets it."""
    path = state_path(run.outputs.checkpoint)
    saved = None
    if run.ranks.main and path.is_file():
        try:
            ckpt = read_checkpoint(path)
            if ckpt.get("train_state", {}).get("identity") == run.identity:
                saved = ckpt
            else:
                run.say(f"train: {path} is from other params or data; starting afresh")
        except CheckpointError as exc:
            run.say(f"train: ignoring unusable training state: {exc}")
    if run.ranks.world > 1:
        box = [saved]
        dist.broadcast_object_list(box, src=0)
        saved = box[0]
    if saved is None:
        return
    run.model.load_state_dict(saved["state_dict"])
    run.optimizer.load_state_dict(saved["optimizer"])
    if run.plateau is not None:
        run.plateau.load_state_dict(saved["scheduler"])
    run.scaler.load_state_dict(saved["scaler"])
    if run.ema is not None:
        run.ema.load_state_dict(saved["ema"])
    known = {f for f in asdict(LoopState())}
    run.state = LoopState(**{k: v for k, v in saved["train_state"].items() if k in known})
    run.best_weights = saved["best_state_dict"]
    run.resumed_from = run.state.epoch
    run.say(f"train: resuming after epoch {run.state.epoch} from {path}")


def save_state(run: Run, metrics: dict[str, Any]) -> None:
    """Rank 0: everything a rerun needs to continue after this epoch."""
    st = run.state
    extra = {"epoch": st.epoch, "optimizer": run.optimizer.state_dict(),
             "scheduler": run.plateau.state_dict() if run.plateau is not None else {},
             "scaler": run.scaler.state_dict(), "best_state_dict": run.best_weights,
             "train_state": {**asdict(st), "identity": run.identity}}
    if run.ema is not None:
        extra["ema"] = run.ema.state_dict()
    save_checkpoint(state_path(run.outputs.checkpoint), run.model, run.cfg.inputs, run.params, metrics, extra=extra)


def drop_state(run: Run) -> None:
    """Training ended normally: remove its state (and the folder, when nothing else is in it)."""
    last = state_path(run.outputs.checkpoint)
    last.unlink(missing_ok=True)
    try:
        last.parent.rmdir()
    except OSError:
        pass  # other files there
