"""Validation of a training run: whole ``val`` images scored as the enhancer will output them.

:func:`validate` runs the evaluated weights (the EMA when on) on every validation image,
rounds to uint8, applies the exposure anchor (:mod:`lowlight.inference.exposure`), the
exposure restraint (:mod:`lowlight.inference.restraint`) and the auto shadow lift
(:mod:`lowlight.inference.shadows`), and scores with the evaluate stage's
own metrics, so a checkpoint's epoch is picked on ``lowlight enhance``'s pixels.
:func:`start_as_best` makes a fine-tune's starting weights epoch 0.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from lowlight.inference.exposure import anchor_exposure
from lowlight.inference.restraint import restrain_exposure
from lowlight.inference.shadows import lift_shadows
from lowlight.models.checkpoint import save_checkpoint
from lowlight.models.devices import autocast
from lowlight.models.padding import run_padded, unwrap
from lowlight.training.data import to_tensor
from lowlight.training.outputs import to_uint8
from lowlight.training.state import Run, to_device

__all__ = ["validate", "start_as_best", "val_output"]


def val_output(model, data, i: int, device: torch.device, amp=None, exposure_anchor: float = 0.0):
    """Validation image ``i`` through ``model``: the float output (1 x 3 x H x W) and the uint8
    picture after the exposure anchor, the restraint and the auto shadow lift, the pixels ``lowlight enhance``
    gives. The one place that makes them: validation scores them, the sample plot shows them,
    the ablation harness rescores them."""
    x = to_device(to_tensor(data.inputs[i])[None], device)
    with autocast(device, amp):
        pred = run_padded(model, x)
    pred8 = to_uint8(pred)
    if exposure_anchor > 0:
        pred8 = anchor_exposure(pred8, data.mapped[i], exposure_anchor)
    return pred, lift_shadows(restrain_exposure(pred8, data.lows[i]), data.lows[i])


@torch.inference_mode()
def validate(run: Run) -> dict[str, float]:
    """Loss, PSNR and SSIM over whole validation images (each rank takes every world-th image).

    PSNR and SSIM are of the uint8 output after the exposure anchor and the shadow lift, as the
    enhancer gives it; the loss is the network's own output's."""
    from lowlight.evaluation.scores import psnr, ssim  # the evaluate stage's uint8 metrics, so the numbers agree

    model, data, device = run.evaluated.eval(), run.val_data, run.device
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, psnr, ssim, count
    for i in range(run.ranks.rank, len(data), run.ranks.world):
        y = to_device(to_tensor(data.targets[i])[None], device)
        pred, pred8 = val_output(model, data, i, device, run.amp, run.cfg.exposure_anchor)
        sums += torch.tensor([float(run.loss_fn(pred.float(), y)), float(psnr(pred8, data.targets[i])),
                              float(ssim(pred8, data.targets[i])), 1.0], dtype=torch.float64, device=device)
    if run.ranks.world > 1:
        dist.all_reduce(sums)
    n = max(float(sums[3]), 1.0)
    return {"val_loss": float(sums[0]) / n, "val_psnr": float(sums[1]) / n, "val_ssim": float(sums[2]) / n}


def start_as_best(run: Run) -> None:
    """Fine-tuning (``train.init``): the starting weights are validated as epoch 0 and kept as the
    best until an epoch beats them on ``val``, so a fine-tune never saves worse weights than it
    started from (``best_epoch`` 0 then says that none did)."""
    st = run.state
    scores = validate(run)
    st.best_psnr, st.best_ssim, st.best_epoch = scores["val_psnr"], scores["val_ssim"], 0
    st.history.append({"epoch": 0, **scores})  # on the curves, so the point to beat is on the plots
    run.best_weights = {k: v.detach().cpu().clone() for k, v in unwrap(run.evaluated).state_dict().items()}
    if run.ranks.main:
        run.say(f"epoch 0 (train.init's weights)  val_loss {scores['val_loss']:.4f}  "
                f"val_psnr {scores['val_psnr']:.2f} dB  val_ssim {scores['val_ssim']:.4f}")
        metrics = {"val_psnr": st.best_psnr, "val_ssim": st.best_ssim, "epoch": 0}
        save_checkpoint(run.outputs.checkpoint, unwrap(run.evaluated), run.cfg.inputs, run.params, metrics)
        run.tracker.log_metrics(scores, step=0, prefix="train.")
