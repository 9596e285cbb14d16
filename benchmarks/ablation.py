"""Equal-budget ablation of the enhancement networks, on a prepared dataset's `val` split.

Rows: histogram mapping alone (no network), then every registered model trained
on the low image alone and on low + mapped, each with the same budget of
training-step minutes (``train.time_budget_min``; validation passes are not
counted) and otherwise the params of ``params.yaml``'s ``train`` section. Models
are scored by the training loop's own validation (uint8 PSNR/SSIM, the
evaluator's numbers) on the full `val` images; `test` is never looked at.

Run it on LOL after the pipeline has prepared and mapped it (README, "Training on LOL"):

    python benchmarks/ablation.py --budget-min 5 --steps-per-epoch 250 --out metrics/ablation

Each finished run is kept as ``<out>/<model>__<inputs>.json`` and skipped on a
rerun with the same settings, so an interrupted ablation continues where it
stopped. The table goes to ``<out>/ablation.md`` and to stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from lowlight.atomic import write_json, write_text
from lowlight.config import load_params, to_dict
from lowlight.evaluation.folders import evaluate_dirs
from lowlight.models import list_models
from lowlight.training.loop import TrainOutputs, train

INPUTS = ("low", "low+mapped")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--data", type=Path, default=Path("data/prepared"))
    ap.add_argument("--mapped", type=Path, default=Path("data/mapped"))
    ap.add_argument("--budget-min", type=float, default=5.0, help="training-step minutes per run")
    ap.add_argument("--steps-per-epoch", type=int, default=250,
                    help="batches between validations (validation time is outside the budget)")
    ap.add_argument("--models", nargs="+", default=None, help=f"default: llcnn patch_transformer unet (registered: {', '.join(list_models())})")
    ap.add_argument("--inputs", nargs="+", default=list(INPUTS), choices=INPUTS)
    ap.add_argument("--out", type=Path, default=Path("metrics/ablation"))
    ap.add_argument("--force", action="store_true", help="rerun runs that already have a result")
    return ap.parse_args(argv)


def run_one(args, p, model: str, inputs: str) -> dict:
    out = args.out / f"{model}__{inputs.replace('+', '_')}"
    result_file = args.out / f"{model}__{inputs.replace('+', '_')}.json"
    cfg = dataclasses.replace(p.train, model=model, model_args={} if model != p.train.model else p.train.model_args,
                              inputs=inputs, time_budget_min=args.budget_min, epochs=10_000,
                              steps_per_epoch=args.steps_per_epoch,
                              # without a mapped image there is no exposure to anchor to or train towards
                              **({"exposure_anchor": 0.0, "target_exposure": "reference"} if inputs == "low" else {}))
    settings = {"train": to_dict(cfg), "seed": p.base.seed, "data": str(args.data.resolve())}
    if result_file.exists() and not args.force:
        done = json.loads(result_file.read_text())
        if done.get("settings") == settings:
            print(f"{model} / {inputs}: kept from {result_file}")
            return done
    print(f"== {model} on {inputs}: {args.budget_min:g} min of training steps")
    t0 = time.monotonic()
    summary = train(args.data, args.mapped if inputs != "low" else None, cfg, p.base,
                    TrainOutputs(out / "model.pt", out / "train.json", out / "train_log.csv"),
                    extra_params={"histmap": to_dict(p.histmap)})
    summary["wall_minutes_total"] = (time.monotonic() - t0) / 60
    done = {"settings": settings, "summary": summary}
    write_json(result_file, done)
    return done


def histmap_row(args) -> dict:
    df, _ = evaluate_dirs(args.mapped / "val", args.data / "val" / "high")
    return {"psnr": float(df["psnr"].mean()), "ssim": float(df["ssim"].mean()), "images": len(df)}


def table(hist: dict, runs: list[tuple[str, str, dict]], budget: float, steps: int) -> str:
    lines = [f"Equal budget: {budget:g} min of training steps per network on 2 CPU threads ({steps} batches "
             "per epoch, validation not counted); "
             f"LOL `val` ({hist['images']} images, grouped split), uint8 PSNR / SSIM averaged per image.",
             "",
             "| method | input | parameters | epochs | val PSNR (dB) | val SSIM | CPU ms / 600x400 |",
             "|---|---|---:|---:|---:|---:|---:|",
             f"| histogram mapping alone | low | - | - | {hist['psnr']:.2f} | {hist['ssim']:.4f} | - |"]
    for model, inputs, r in runs:
        s = r["summary"]
        lines.append(f"| {model} | {inputs} | {s['parameters']:,} | {s['epochs']} | {s['best_val_psnr']:.2f} | "
                     f"{s['best_val_ssim']:.4f} | {s['cpu_ms_per_600x400']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    args = parse_args(argv)
    p = load_params(args.params)
    models = args.models or [m for m in list_models() if m in ("llcnn", "patch_transformer", "unet")]
    hist = histmap_row(args)
    runs = [(m, i, run_one(args, p, m, i)) for m in models for i in args.inputs]
    text = table(hist, runs, args.budget_min, args.steps_per_epoch)
    write_text(args.out / "ablation.md", text)
    print(text)


if __name__ == "__main__":
    main()
