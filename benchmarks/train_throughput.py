"""Training throughput and inference latency of every registered model.

For each model: parameter count; training images per second at a fixed crop and
batch (AdamW step, the configured loss, gradient clipping, as in
``lowlight.training.loop``); and milliseconds per forward pass on a 600 x 400 image
(LOL's size) on CPU, the way inference runs it (eval, channels_last,
``run_padded``). On a CUDA machine the training throughput is measured again on
the GPU in float32 and with mixed precision (bf16 where supported, else fp16
with a GradScaler).

    python benchmarks/train_throughput.py                      # all models, 2 CPU threads
    python benchmarks/train_throughput.py --models unet llcnn --steps 10 --json benchmarks/out/tp.json

Timings depend on what else runs on the machine; the table states the thread
count and the device.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from lowlight.training.losses import build_loss
from lowlight.models import build_model, count_parameters, list_models
from lowlight.models.padding import run_padded
from lowlight.training.data import input_channels
from lowlight.training.loop import cpu_ms_per_image


def train_images_per_second(name: str, device: torch.device, amp: torch.dtype | None, args) -> float:
    torch.manual_seed(0)
    model = build_model(name, in_channels=input_channels(args.inputs)).to(device)
    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    loss_fn = build_loss(args.loss)
    c = input_channels(args.inputs)
    x = torch.rand(args.batch, c, args.crop, args.crop, device=device)
    y = torch.rand(args.batch, 3, args.crop, args.crop, device=device)

    def step():
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            pred = run_padded(model, x)
        loss = loss_fn(pred, y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return args.steps * args.batch / (time.perf_counter() - t)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=None, help=f"default: all ({', '.join(list_models())})")
    ap.add_argument("--inputs", default="low+mapped", choices=["low", "mapped", "low+mapped"])
    ap.add_argument("--loss", default="l1_ssim")
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5, help="timed training steps")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="timed 600x400 forward passes (median)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (the target is a 2-core machine)")
    ap.add_argument("--no-gpu", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    names = args.models or list_models()
    gpu = torch.device("cuda") if torch.cuda.is_available() and not args.no_gpu else None
    amp = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if gpu else None
    rows = []
    for name in names:
        model = build_model(name, in_channels=input_channels(args.inputs))
        row = {"model": name, "parameters": count_parameters(model)}
        row["cpu_ms_600x400"] = cpu_ms_per_image(model, input_channels(args.inputs), repeats=args.repeats)
        row["cpu_train_img_s"] = train_images_per_second(name, torch.device("cpu"), None, args)
        if gpu is not None:
            row["gpu_train_img_s_fp32"] = train_images_per_second(name, gpu, None, args)
            row[f"gpu_train_img_s_{str(amp).replace('torch.', '')}"] = train_images_per_second(name, gpu, amp, args)
        rows.append(row)
        print(json.dumps(row), flush=True)

    where = f"{platform.processor() or platform.machine()}, {args.threads} CPU threads"
    if gpu is not None:
        where += f", {torch.cuda.get_device_name(0)}"
    print(f"\ncrop {args.crop}, batch {args.batch}, inputs {args.inputs}, loss {args.loss}; {where}; "
          f"torch {torch.__version__}\n")
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in r.values()) + " |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"setup": vars(args) | {"json": str(args.json), "where": where},
                                         "rows": rows}, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
