"""Speed and memory of `lowlight enhance` on CPU: the figures issue 6 asks for.

1. End-to-end time for one 600 x 400 image (histogram features, XGBoost
   prediction, mapping, network), decoding excluded: median over repeats, with
   the time of each step.
2. Images per second over a folder of 100 such images (decoded beforehand).
3. A 6000 x 4000 image in a fresh process: wall time, peak resident memory
   (whole process, Python and torch included), output size, and the largest
   difference between tiled and whole-image output on a 1600 x 1200 crop.

Inputs are LOL low images when ``--lol`` points at a copy (default
``../shared/datasets/LOL``), else the demo photos darkened by the project's own
low-light model. Weights: the ones shipped in the package unless
``--quantiles``/``--weights`` name the pipeline's outputs.

    python benchmarks/enhance_speed.py                 # 2 threads, shipped weights
    python benchmarks/enhance_speed.py --weights models/model.pt --quantiles models/quantiles.ubj
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=None, help="network checkpoint (default: shipped)")
    ap.add_argument("--quantiles", type=Path, default=None, help="quantile model (default: shipped)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lol", type=Path, default=Path("../shared/datasets/LOL"))
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--big", default="6000x4000", help="WxH of the large image; '' to skip")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def load_enhancer(args):
    import torch

    from lowlight.inference.enhancer import Enhancer

    torch.set_num_threads(args.threads)
    if args.weights is None and args.quantiles is None:
        return Enhancer.pretrained(device="cpu")
    if args.weights is None or args.quantiles is None:
        raise SystemExit("give both --weights and --quantiles, or neither (shipped weights)")
    return Enhancer.from_files(args.quantiles, args.weights, device="cpu")


def sample_images(args, n: int) -> tuple[list[np.ndarray], str]:
    """n uint8 400 x 600 x 3 dark images, decoded (and darkened) before any timing."""
    from lowlight.imageio import is_image_file, read_rgb

    low = args.lol / "our485" / "low"
    if low.is_dir():
        files = sorted(p for p in low.iterdir() if is_image_file(p))[:n]
        imgs = [read_rgb(f) for f in files]
        imgs = [im[:400, :600] for im in imgs if im.shape[0] >= 400 and im.shape[1] >= 600]
        if imgs:
            return (imgs * n)[:n], f"LOL our485/low ({low})"
    from PIL import Image

    from lowlight.config import DegradeConfig
    from lowlight.data.degrade import apply_degradation, sample_degradation
    from lowlight.data.prepare import demo_photo_paths

    rng = np.random.default_rng(0)
    photos = [np.asarray(Image.open(p).convert("RGB").resize((600, 400))) for _, p, _ in demo_photo_paths()]
    imgs = [apply_degradation(photos[i % len(photos)], sample_degradation(DegradeConfig(), rng), DegradeConfig(), rng)
            for i in range(n)]
    return imgs, "demo photos darkened by lowlight.data.degrade"


def big_image(w: int, h: int) -> np.ndarray:
    """A dark, textured, noisy image of w x h (a smooth scene, shot noise, edges), built in
    bands of rows so that making it does not count towards the measured peak memory."""
    rng = np.random.default_rng(1)
    out = np.empty((h, w, 3), dtype=np.uint8)
    tint = np.array([1.0, 0.8, 0.6], dtype=np.float32)
    xx = np.arange(w, dtype=np.float32)
    for y0 in range(0, h, 256):
        yy = np.arange(y0, min(y0 + 256, h), dtype=np.float32)[:, None]
        base = 20 + 15 * (np.sin(xx / 97.0)[None, :] * np.cos(yy / 61.0))[..., None] * tint
        base += 10 * ((xx[None, :] // 400 + yy // 300) % 2)[..., None]
        base += rng.normal(0, 3, size=(len(yy), w, 1)).astype(np.float32)
        out[y0:y0 + len(yy)] = np.clip(base, 0, 255).astype(np.uint8)
    return out


def child(args) -> None:
    """Runs in a fresh process so peak memory is this image's alone."""
    w, h = (int(v) for v in args.big.lower().split("x"))
    enh = load_enhancer(args)
    img = big_image(w, h)
    t0 = time.perf_counter()
    out = enh(img)
    seconds = time.perf_counter() - t0
    crop = np.ascontiguousarray(img[:1200, :1600])
    diff = 0
    if enh.network is not None:  # the whole enhancer both ways (exposure anchor included)
        whole = dataclasses.replace(enh, tile_pixels=crop.shape[0] * crop.shape[1])(crop)
        diff = int(np.abs(whole.astype(int) - forced_tiles(enh)(crop).astype(int)).max())
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB -> GiB
    print(json.dumps({"seconds": seconds, "peak_gib": peak_gb, "in": [h, w], "out": list(out.shape[:2]),
                      "tile_vs_whole_max_diff": diff}))


def forced_tiles(enh):
    """The same enhancer forced to tile a 1600 x 1200 crop (tiles of 512)."""
    return dataclasses.replace(enh, tile_pixels=0, tile=512)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        return child(args)
    import torch

    enh = load_enhancer(args)
    imgs, source = sample_images(args, args.images)
    print(f"inputs: {source}; torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")

    one = imgs[0]
    enh(one)  # warm-up (oneDNN kernel selection, XGBoost predictor)
    steps = {"percentiles (features + XGBoost)": [], "mapping": [], "network": [], "end to end": []}
    from lowlight.histbranch.histmap import map_image

    for _ in range(args.repeats):
        t0 = time.perf_counter()
        q = enh.predict_percentiles(one)
        t1 = time.perf_counter()
        mapped = map_image(one, q, enh.histmap)
        t2 = time.perf_counter()
        if enh.network is not None:
            enh._run(one, mapped)
        t3 = time.perf_counter()
        enh(one)
        t4 = time.perf_counter()
        for times, dt in zip(steps.values(), (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            times.append(dt)
    print("one 600 x 400 image, median of", args.repeats, "runs:")
    for k, v in steps.items():
        print(f"  {k:34s} {1000 * float(np.median(v)):7.1f} ms")

    t0 = time.perf_counter()
    for im in imgs:
        enh(im)
    dt = time.perf_counter() - t0
    print(f"{len(imgs)} images of 600 x 400: {dt:.2f} s, {len(imgs) / dt:.1f} images/s")

    if args.big:
        cmd = [sys.executable, __file__, "--child", "--big", args.big, "--threads", str(args.threads)]
        if args.weights is not None:
            cmd += ["--weights", str(args.weights), "--quantiles", str(args.quantiles)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"large-image run failed:\n{done.stderr[-3000:]}")
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{args.big} image: {r['seconds']:.1f} s, peak memory {r['peak_gib']:.2f} GiB (whole process), "
              f"output {r['out'][1]}x{r['out'][0]}; tiled vs whole on a 1600x1200 crop: max difference "
              f"{r['tile_vs_whole_max_diff']} levels")


if __name__ == "__main__":
    main()
