"""Stage `train`: train the enhancement network on low (+ histogram-mapped) images.

Also runs under ``torchrun --nproc_per_node=N stages/train.py ...`` (DistributedDataParallel);
rank 0 alone writes the outputs and talks to MLflow (the live train run, see lowlight.tracking).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# this checkout's lowlight, not an installed one: `dvc exp run --temp` and queued experiments run a copy
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lowlight.config import flatten, load_params, to_dict
from lowlight.errors import report_user_errors
from lowlight.provenance import file_sha256
from lowlight.tracking import CHECKPOINT_TAG, KEPT_TAG, stage_run
from lowlight.training.loop import TrainOutputs, train


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--data", type=Path, required=True, help="prepared dataset root")
    ap.add_argument("--mapped", type=Path, required=True, help="histogram-mapped images (<split>/<stem>.png)")
    ap.add_argument("--checkpoint", type=Path, required=True, help="best model (.pt)")
    ap.add_argument("--metrics", type=Path, required=True, help="summary metrics (JSON)")
    ap.add_argument("--log", type=Path, required=True, help="per-epoch log (CSV)")
    ap.add_argument("--plots", type=Path, required=True, help="folder for the PNGs")
    return ap.parse_args(argv)


@report_user_errors("train")
def main(argv=None) -> None:
    args = parse_args(argv)
    p = load_params(args.params)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    params = {**flatten(p.base, "base"), **flatten(p.train, "train")}
    # the train run: live per-epoch curves (and system metrics); the pipeline run (stages/track.py) adopts it
    with stage_run("train", params=params, experiment=p.base.experiment, system_metrics=p.base.system_metrics,
                   on=None if main_rank else False) as tracker:
        outputs = TrainOutputs(args.checkpoint, args.metrics, args.log, args.plots)
        result = train(args.data, args.mapped, p.train, p.base, outputs, tracker,
                       extra_params={"histmap": to_dict(p.histmap)})
        if main_rank:
            report(result, p.train, args.checkpoint, tracker)


def report(result: dict, cfg, checkpoint: Path, tracker) -> None:
    """The summary line, a plain one when training changed nothing, and the kept epoch's figures in MLflow."""
    print(f"train: best val PSNR {result['best_val_psnr']:.2f} dB, SSIM {result['best_val_ssim']:.4f} "
          f"(epoch {result['best_epoch']} of {result['epochs']}, stopped by {result['stopped']}); "
          f"{result['parameters']} parameters, {result['cpu_ms_per_600x400']:.0f} ms per 600x400 on CPU")
    kept = bool(result["kept_starting_weights"])
    if kept:
        print(f"train: no epoch beat the starting weights (train.init: {cfg.init}); "
              f"{checkpoint} holds them unchanged")
    # beside the per-epoch curves (whose last point is the last epoch, not the kept one)
    tracker.log_metrics({k: result[k] for k in ("best_val_psnr", "best_val_ssim", "best_epoch")}, prefix="train.")
    tracker.set_tags({CHECKPOINT_TAG: file_sha256(checkpoint), "train.stopped": result["stopped"],
                      KEPT_TAG: str(kept).lower()})


if __name__ == "__main__":
    main()
