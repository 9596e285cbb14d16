"""Grid index of real dark photos: the inputs brightened by a plain gamma vs ``lowlight enhance``.

A learned upsampler can print a regular 2/4/8-px grid that shows only in a zoomed
flat region (see :mod:`lowlight.evaluation.periodic`). This prints, for every photo in a
folder (default ``../shared/datasets/dark``: DICM and NPE shots), the grid index
of the input brightened by a plain gamma (a stand-in for "the same photo, just
brighter": it adds no pattern) and of the enhanced output, then the medians and
their ratio. The issue's bar: the ratio of medians at most 1.5. Beside them, each photo's
mean level (0-255) before and after: how much brighter it came out.

    python benchmarks/grid_index.py [--folder ../shared/datasets/dark] [--weights W --quantile-model Q]
    python benchmarks/grid_index.py --outputs OUT   # score outputs made elsewhere (e.g. by an older version)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from lowlight.imageio import is_image_file
from lowlight.evaluation.periodic import grid_index


def gamma_brighten(rgb: np.ndarray, target: float = 0.45) -> np.ndarray:
    """Gamma that brings the mean to ``target`` (0..1): the plain reference brightening."""
    x = rgb.astype(np.float64) / 255.0
    mean = float(np.clip(x.mean(), 1e-3, 0.999))
    g = np.log(target) / np.log(mean)
    return np.clip(np.rint(255.0 * x ** g), 0, 255).astype(np.uint8)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "dark")
    ap.add_argument("--weights", type=Path, help="network checkpoint (default: the shipped one)")
    ap.add_argument("--quantile-model", type=Path, help="quantile model (default: the shipped one)")
    ap.add_argument("--outputs", type=Path, help="folder of enhanced outputs named <photo stem>.png to score "
                    "instead of running the enhancer")
    args = ap.parse_args(argv)

    import torch

    from lowlight.inference.enhancer import Enhancer, default_weights

    torch.set_flush_denormal(True)
    if args.outputs is None:
        q, n = default_weights()
        enhancer = Enhancer.from_files(args.quantile_model or q, args.weights or n, device="cpu")
    else:
        def enhancer(rgb, path=None):
            return np.asarray(Image.open(args.outputs / f"{path.stem}.png").convert("RGB"))
    photos = sorted(p for p in args.folder.iterdir() if p.is_file() and is_image_file(p))
    if not photos:
        raise SystemExit(f"{args.folder}: no photos")
    rows = []
    print(f"{'photo':<18} {'gamma':>7} {'enhanced':>9}   mean level: {'input':>6} {'enhanced':>9}")
    for p in photos:
        rgb = np.asarray(Image.open(p).convert("RGB"))
        out = enhancer(rgb) if args.outputs is None else enhancer(rgb, p)
        g, e = grid_index(gamma_brighten(rgb)), grid_index(out)
        rows.append((g, e))
        print(f"{p.name:<18} {g:7.2f} {e:9.2f}               {rgb.mean():6.1f} {out.mean():9.1f}")
    g_med, e_med = (float(np.median([r[i] for r in rows])) for i in (0, 1))
    print(f"{'median':<18} {g_med:7.2f} {e_med:9.2f}   ratio {e_med / g_med:.2f} (bar: <= 1.5)")


if __name__ == "__main__":
    main()
