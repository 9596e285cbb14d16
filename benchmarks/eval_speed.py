"""How long the evaluator takes to score 15 pairs of 600x400 images (LOL's test-set size).

The budget (issue 4) is 5 seconds on 2 CPU cores for all four metrics (PSNR,
SSIM and their GT-mean variants). Two timings are printed: scoring arrays in
memory (:func:`lowlight.evaluation.scores.score_images`) and scoring PNG files from two
folders, decoding included (:func:`lowlight.evaluation.folders.evaluate_dirs`, what
``lowlight evaluate`` runs). Images are synthetic unless ``--lol`` names a LOL
``our485`` folder, whose first 15 pairs are then used.

    python benchmarks/eval_speed.py [--workers 2] [--lol ../shared/datasets/LOL/our485]

Exits 1 when either timing is over ``--budget`` seconds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lowlight.evaluation.folders import evaluate_dirs
from lowlight.evaluation.scores import score_images
from lowlight.image_writer import write_image
from lowlight.imageio import load_image


def synthetic_pair(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured reference and a dark, noisy version of it (content does not change the cost)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    ref = 0.5 + 0.3 * np.sin(xx[..., None] * rng.uniform(5, 30, 3) + yy[..., None] * rng.uniform(5, 30, 3))
    ref = np.clip(ref + rng.normal(0, 0.05, ref.shape), 0, 1)
    low = np.clip(ref * 0.1 + rng.normal(0, 0.01, ref.shape), 0, 1)
    return (np.rint(low * 255).astype(np.uint8), np.rint(ref * 255).astype(np.uint8))


def lol_pairs(root: Path, n: int) -> tuple[dict, dict]:
    lows = sorted((root / "low").iterdir())[:n]
    preds, refs = {}, {}
    for p in lows:
        high = root / "high" / p.name
        if high.stat().st_size < 256:  # the shared copy keeps repeated files as a stub naming the original
            high = high.parent / high.read_text().strip()
        preds[p.stem], refs[p.stem] = load_image(p).rgb, load_image(high).rgb
    return preds, refs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=15)
    ap.add_argument("--workers", type=int, default=2, help="scoring threads (the budget is for 2 cores)")
    ap.add_argument("--lol", type=Path, help="LOL our485 folder to take real images from")
    ap.add_argument("--budget", type=float, default=5.0, help="seconds allowed for each timing")
    args = ap.parse_args(argv)

    if args.lol:
        preds, refs = lol_pairs(args.lol, args.pairs)
        source = f"LOL {args.lol}"
    else:
        made = {f"{i:03d}": synthetic_pair(400, 600, i) for i in range(args.pairs)}
        preds, refs = {k: v[0] for k, v in made.items()}, {k: v[1] for k, v in made.items()}
        source = "synthetic"
    h, w = next(iter(refs.values())).shape[:2]

    score_images(dict(list(preds.items())[:1]), dict(list(refs.items())[:1]), workers=1)  # imports, warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    df = score_images(preds, refs, workers=args.workers)
    t_mem, c_mem = time.perf_counter() - t0, time.process_time() - c0

    with tempfile.TemporaryDirectory() as tmp:
        pred_dir, ref_dir = Path(tmp, "pred"), Path(tmp, "ref")
        for k in preds:
            write_image(pred_dir / f"{k}.png", preds[k])
            write_image(ref_dir / f"{k}.png", refs[k])
        t0, c0 = time.perf_counter(), time.process_time()
        evaluate_dirs(pred_dir, ref_dir, workers=args.workers)
        t_dirs, c_dirs = time.perf_counter() - t0, time.process_time() - c0

    print(f"{len(df)} pairs of {w}x{h} ({source}), {args.workers} workers, 4 metrics each "
          f"(psnr, ssim, psnr_gt_mean, ssim_gt_mean)")
    # CPU seconds say what the work costs when other processes share the cores (wall time then grows)
    print(f"score_images (arrays in memory):       {t_mem:.2f} s  (CPU {c_mem:.2f} s)")
    print(f"evaluate_dirs (PNG decoding included): {t_dirs:.2f} s  (CPU {c_dirs:.2f} s)")
    ok = max(t_mem, t_dirs) < args.budget
    print(f"budget {args.budget:.1f} s: {'ok' if ok else 'OVER'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
