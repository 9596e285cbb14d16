"""Speed and memory of `lowlight enhance` on CPU: ONNX Runtime against the PyTorch path, and cost per pixel.

1. One 600 x 400 image end to end (features, quantile booster, mapping, network), decoding
   excluded, best of repeats run in turn: the exported pair in ONNX Runtime (what the tool runs) and
   the PyTorch + XGBoost pipeline it was exported from, in this same run, with each one's
   network alone.
2. The ms/MP curve of the tool at 0.24, 1, 4, 12 and 24 MP, each size in a fresh process
   (best of repeats after one warm-up; peak resident memory of the whole process), and each
   size's cost per megapixel relative to 1 MP.

Inputs are LOL low images when ``--lol`` points at a copy (default ``../shared/datasets/LOL``),
else synthetic dark photos. Weights: the shipped ones.

    python benchmarks/enhance_speed.py                  # all of it
    python benchmarks/enhance_speed.py --sizes ''        # the 600 x 400 comparison only
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZES = {"0.24": (600, 400), "1": (1224, 816), "4": (2448, 1632), "12": (4240, 2832), "24": (6000, 4000)}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lol", type=Path, default=Path("../shared/datasets/LOL"))
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--sizes", default=",".join(SIZES), help="megapixel sizes of the curve, of " + ", ".join(SIZES))
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def sample_image(args) -> np.ndarray:
    from lowlight.imageio import is_image_file, read_rgb

    low = args.lol / "our485" / "low"
    if low.is_dir():
        for f in sorted(p for p in low.iterdir() if is_image_file(p)):
            im = read_rgb(f)
            if im.shape[0] >= 400 and im.shape[1] >= 600:
                return np.ascontiguousarray(im[:400, :600])
    return big_image(600, 400)


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


def _best_ms(fns, repeats: int) -> list[float]:
    """Each function's best time of ``repeats`` in ms, the functions run in turn each round.

    Best-of-N (timeit's convention): on a shared machine other work only ever adds time, so the
    minimum is the steadiest estimate of a function's own cost; running the contenders in turn
    exposes them to the same background load."""
    for fn in fns:
        fn()  # warm-up (kernel selection, first allocations)
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, t in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            t.append(time.perf_counter() - t0)
    return [1000 * min(t) for t in times]


def compare_600x400(args) -> None:
    from lowlight.inference import shipped
    from lowlight.inference.enhancer import Enhancer

    img = sample_image(args)
    ort_enh = Enhancer.pretrained(device="cpu")
    torch_enh = Enhancer.from_files(shipped.WEIGHTS_DIR / shipped.QUANTILE_MODEL, shipped.WEIGHTS_DIR / shipped.NETWORK)
    mapped = ort_enh.map(img)
    print(f"one 600 x 400 image, best of {args.repeats} runs (the two in turn, this process):")
    whole = _best_ms([lambda: ort_enh(img), lambda: torch_enh(img)], args.repeats)
    net = _best_ms([lambda: ort_enh._run(img, mapped), lambda: torch_enh._run(img, mapped)], args.repeats)
    rows = list(zip(("ONNX Runtime", "PyTorch + XGBoost"), whole, net))
    for name, whole, net in rows:
        print(f"  {name:<18} end to end {whole:6.1f} ms   network alone {net:6.1f} ms")
    print(f"  ONNX Runtime / PyTorch end to end: {rows[0][1] / rows[1][1]:.2f}")


def child(args) -> None:
    """One size in a fresh process, so its peak memory is its own."""
    from lowlight.inference.enhancer import Enhancer

    w, h = SIZES[args.child]
    enh = Enhancer.pretrained(device="cpu")
    img = big_image(w, h)
    repeats = 5 if w * h < 2e6 else 3 if w * h < 2e7 else 1
    ms = _best_ms([lambda: enh(img)], repeats)[0]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB -> GiB
    print(json.dumps({"ms": ms, "mp": w * h / 1e6, "peak_gib": peak}))


def curve(args) -> None:
    sizes = [s for s in args.sizes.split(",") if s]
    rows = {}
    for s in sizes:
        done = subprocess.run([sys.executable, __file__, "--child", s], capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{s} MP run failed:\n{done.stderr[-3000:]}")
        rows[s] = json.loads(done.stdout.strip().splitlines()[-1])
    base = rows.get("1")
    print("the tool (ONNX Runtime) by photo size, each in a fresh process:")
    for s, r in rows.items():
        per = r["ms"] / r["mp"]
        rel = f"  {per / (base['ms'] / base['mp']):.2f}x of 1 MP" if base else ""
        print(f"  {s:>5} MP ({SIZES[s][0]}x{SIZES[s][1]}): {r['ms'] / 1000:6.2f} s, {per:6.0f} ms/MP, "
              f"peak {r['peak_gib']:.2f} GiB{rel}")


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        return child(args)
    compare_600x400(args)
    if args.sizes:
        curve(args)


if __name__ == "__main__":
    main()
