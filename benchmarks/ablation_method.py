"""Equal-budget ablation of the method's parts, on a prepared dataset's `val` split.

Each row switches one part of the default method off (or changes it) and trains
the network with the same budget of optimiser steps (``--epochs`` x
``--steps-per-epoch``; a step budget stays equal on a busy machine, a time budget
does not), otherwise with ``params.yaml``'s ``train`` section. Rows:

* ``full``: the default (cross-fitted mapping for training, global branch, EMA,
  cosine schedule);
* ``no_cross_fit``: the training images mapped with the quantile model's
  in-sample predictions (``--mapped-in-sample``, made by the histmap stage
  without ``--train-predictions``);
* ``no_global``: the U-Net without its global branch;
* ``no_ema``: no moving average of the weights;
* ``plateau``: ReduceLROnPlateau instead of the cosine schedule;
* ``no_extra_data``: a dataset prepared without identity and synthetic pairs
  (``--data-without-extra`` / ``--mapped-without-extra``);
* ``color_term``: ``train.color_weight: 1`` (an L1 term on each image's channel means);
* ``no_anchor``: ``train.exposure_anchor: 0`` (the network's own brightness, not pulled
  towards the mapping's; ``lowlight/inference/exposure.py``);
* ``reference_exposure``: ``train.target_exposure: reference`` (the training targets at the
  references' own exposure, not scaled to the mapped image's; ``lowlight/training/data.py``).

Scores come from the best checkpoint run on every `val` image, after its exposure anchor
as the enhancer applies it, through :func:`lowlight.evaluation.scores.score_pair` (uint8
PSNR, SSIM and the separately named GT-mean PSNR); `test` is never looked at. ``ms / image`` is the network's
CPU forward pass on 600 x 400. Finished rows are kept in ``<out>/<row>.json``
and skipped on a rerun with the same settings.

    python benchmarks/ablation_method.py --data data/prepared --mapped data/mapped \\
        --mapped-in-sample data/mapped_in_sample --epochs 5 --out metrics/ablation_method
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from lowlight.atomic import write_json, write_text
from lowlight.config import load_params, to_dict
from lowlight.training.loop import TrainOutputs, train

ROWS = {
    "full": {},
    "no_cross_fit": {"mapped": "mapped_in_sample"},
    "no_global": {"model_args": {"global_branch": False}},
    "no_ema": {"ema_decay": 0.0},
    "plateau": {"schedule": "plateau"},
    "no_extra_data": {"data": "data_without_extra", "mapped": "mapped_without_extra"},
    "color_term": {"color_weight": 1.0},
    "no_anchor": {"exposure_anchor": 0.0},
    "reference_exposure": {"target_exposure": "reference"},
}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--data", type=Path, default=Path("data/prepared"))
    ap.add_argument("--mapped", type=Path, default=Path("data/mapped"))
    ap.add_argument("--mapped-in-sample", type=Path, help="train mapped with in-sample predictions (no_cross_fit)")
    ap.add_argument("--data-without-extra", type=Path, help="prepared without identity/synthetic pairs")
    ap.add_argument("--mapped-without-extra", type=Path, help="its mapped images")
    ap.add_argument("--rows", nargs="+", default=None, choices=list(ROWS), help="default: every row whose inputs exist")
    ap.add_argument("--epochs", type=int, default=5, help="epochs per row: the budget is a number of steps, "
                    "which a busy machine cannot make unequal (a time budget it can)")
    ap.add_argument("--steps-per-epoch", type=int, default=200)
    ap.add_argument("--out", type=Path, default=Path("metrics/ablation_method"))
    ap.add_argument("--retime", action="store_true",
                    help="measure each kept row's network time again (training measures it on a busy machine)")
    return ap.parse_args(argv)


def score_val(checkpoint: Path, data: Path, mapped: Path) -> dict:
    """The checkpoint on every val image (its exposure anchor applied): means of PSNR, SSIM, GT-mean PSNR."""
    import torch

    from lowlight.models.checkpoint import load_checkpoint
    from lowlight.evaluation.scores import score_pair
    from lowlight.training.data import load_split
    from lowlight.training.validation import val_output

    model, meta = load_checkpoint(checkpoint)
    split = load_split(data, mapped, "val", meta["inputs"])
    alpha = meta["params"]["train"].get("exposure_anchor", 0.0)
    rows = []
    with torch.inference_mode():
        for i, ref in enumerate(split.targets):
            rows.append(score_pair(val_output(model, split, i, torch.device("cpu"), exposure_anchor=alpha)[1], ref))
    return {k: float(np.mean([r[k] for r in rows])) for k in ("psnr", "ssim", "psnr_gt_mean")} | {"images": len(rows)}


def run_row(args, p, name: str) -> dict | None:
    spec = dict(ROWS[name])
    data = getattr(args, spec.pop("data", "data").replace("-", "_"))
    mapped = getattr(args, spec.pop("mapped", "mapped").replace("-", "_"))
    if data is None or mapped is None:
        return None
    cfg = dataclasses.replace(p.train, **{k: ({**p.train.model_args, **v} if k == "model_args" else v)
                                         for k, v in spec.items()},
                              time_budget_min=0.0, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                              patience=args.epochs)
    settings = {"train": to_dict(cfg), "seed": p.base.seed, "data": str(Path(data).resolve()),
                "mapped": str(Path(mapped).resolve())}
    result_file = args.out / f"{name}.json"
    if result_file.exists():
        done = json.loads(result_file.read_text())
        if done.get("settings") == settings:
            print(f"{name}: kept from {result_file}")
            return done
    print(f"== {name}: {args.epochs} x {args.steps_per_epoch} steps")
    t0 = time.monotonic()
    out = args.out / name
    summary = train(data, mapped, cfg, p.base, TrainOutputs(out / "model.pt", out / "train.json", out / "train_log.csv"),
                    extra_params={"histmap": to_dict(p.histmap)})
    scores = score_val(out / "model.pt", data, mapped)
    done = {"settings": settings, "summary": summary, "val": scores, "wall_minutes": (time.monotonic() - t0) / 60}
    write_json(result_file, done)
    return done


def retime(out: Path, name: str) -> float:
    from lowlight.models.checkpoint import load_checkpoint
    from lowlight.training.data import input_channels
    from lowlight.training.loop import cpu_ms_per_image

    model, meta = load_checkpoint(out / name / "model.pt")
    return cpu_ms_per_image(model, input_channels(meta["inputs"]), repeats=7)


def table(results: dict[str, dict], epochs: int, steps: int, batch: int) -> str:
    first = next(iter(results.values()))
    lines = [f"Equal budget: {epochs * steps} steps of {batch} crops per row ({epochs} epochs of {steps}); `val` split "
             f"({first['val']['images']} images), uint8 PSNR / SSIM per image then averaged; GT-mean PSNR "
             "first scales the output to the reference's grey mean.", "",
             "| row | val PSNR (dB) | val SSIM | GT-mean PSNR (dB) | epochs | network ms / 600x400 |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        v, s = r["val"], r["summary"]
        lines.append(f"| {name} | {v['psnr']:.2f} | {v['ssim']:.4f} | {v['psnr_gt_mean']:.2f} | {s['epochs']} | "
                     f"{s['cpu_ms_per_600x400']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    args = parse_args(argv)
    p = load_params(args.params)
    results = {}
    for name in args.rows or list(ROWS):
        r = run_row(args, p, name)
        if r is None:
            print(f"{name}: skipped (its inputs were not given)")
            continue
        if args.retime:
            r["summary"]["cpu_ms_per_600x400"] = retime(args.out, name)
        results[name] = r
    text = table(results, args.epochs, args.steps_per_epoch, p.train.batch_size)
    write_text(args.out / "ablation.md", text)
    print(text)


if __name__ == "__main__":
    main()
