"""Well-lit photos left alone: PSNR of ``enhance(photo)`` against the photo itself.

A photo that is already well exposed should come back nearly as it was. This
runs the enhancer on the clean photos that the ``prepare`` stage holds out
(:func:`lowlight.data.prepare.heldout_photos`: the same ``--holdout`` photos of the
folder that ``data.extra_clean_holdout`` keeps out of every split, so no stage
has trained on them) and prints each photo's PSNR/SSIM against itself, its mean
luma before and after, and the mean and minimum PSNR. The issue's bar: mean at
least 30 dB, none below 25 dB. Then the other side of the trade-off: the same photos
darkened by the low-light model the synthetic training pairs use, enhanced, against the photo.

    python benchmarks/well_lit.py [--folder ../shared/datasets/BSDS500/train] [--holdout 20]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from lowlight.config import DegradeConfig
from lowlight.data.degrade import darken
from lowlight.evaluation.scores import grey_mean, psnr, ssim
from lowlight.imageio import is_image_file
from lowlight.data.prepare import heldout_photos


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", type=Path,
                    default=Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "BSDS500" / "train")
    ap.add_argument("--holdout", type=int, default=20, help="data.extra_clean_holdout of the training run")
    ap.add_argument("--weights", type=Path, help="network checkpoint (default: the shipped one)")
    ap.add_argument("--quantile-model", type=Path, help="quantile model (default: the shipped one)")
    args = ap.parse_args(argv)

    import torch

    from lowlight.inference.enhancer import Enhancer, default_weights

    torch.set_flush_denormal(True)
    q, n = default_weights()
    enhancer = Enhancer.from_files(args.quantile_model or q, args.weights or n, device="cpu")
    photos = heldout_photos(sorted(p for p in args.folder.iterdir() if p.is_file() and is_image_file(p)),
                            args.holdout)
    print(f"{'photo':<14} {'PSNR':>6} {'SSIM':>7} {'luma in':>8} {'luma out':>9}")
    # beside each photo, the other side of the trade-off: the photo darkened by the training
    # pairs' low-light model (one seeded draw each), enhanced, against the photo
    rng = np.random.default_rng(0)
    scores, dark = [], []
    for p in photos:
        rgb = np.asarray(Image.open(p).convert("RGB"))
        out = enhancer(rgb)
        scores.append(psnr(out, rgb))
        dark.append(psnr(enhancer(darken(rgb, DegradeConfig(), rng)), rgb))
        print(f"{p.name:<14} {scores[-1]:6.2f} {ssim(out, rgb):7.4f} {grey_mean(rgb):8.1f} {grey_mean(out):9.1f}")
    print(f"{len(scores)} held-out photos: mean PSNR {np.mean(scores):.2f} dB, min {np.min(scores):.2f} dB "
          "(bar: mean >= 30, min >= 25)")
    print(f"the same photos darkened (lowlight.data.degrade, seed 0): mean PSNR {np.mean(dark):.2f} dB, "
          f"min {np.min(dark):.2f} dB")


if __name__ == "__main__":
    main()
