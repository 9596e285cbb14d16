"""Dividing the light out of the input before the tool: the true light field, and one estimated from the photo.

Uneven light multiplies the scene by a smooth field (:mod:`lowlight.data.illumination`). If the
field were known, dividing it out of the dark input (in linear light, brightest point kept)
would leave an evenly lit dark photo, the kind the shipped pair handles. This script asks how
far that goes, on the selection sets of exposure_restraint_ablation.py (the 40 BSDS500 photos
outside the held-out 20: darkened with uneven light, darkened evenly, and as themselves):

* ``shipped``: the photo as it is;
* ``true field, k K``: the degradation's own field divided out, to the power ``K``
  (uneven set only: the others have no field). A ceiling: no photo says its field;
* ``estimated, r R, k K``: a field estimated from the photo, the smooth upper envelope of its
  linear max-RGB (the bright-channel idea behind LIME's illumination map): a thumbnail of 64
  pixels on the short side, a maximum filter of radius ``R`` thumbnail pixels, a box blur of the
  same radius, scaled so its 99th percentile is 1 and floored at 1/30, brought to full size
  bilinearly and divided out to the power ``K``.

    python benchmarks/light_field_ablation.py            # about 2 minutes on 2 cores

The true field, and the held-out photos' figures, are also printed by
``python benchmarks/local_exposure.py`` under (b).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import local_exposure as measures  # noqa: E402

THUMB = 64
RATIO = 30.0  # the envelope's floor: the degradation's largest light ratio


def estimated_field(low: np.ndarray, radius: int) -> np.ndarray:
    """The smooth upper envelope of ``low``'s linear max-RGB, brightest (99th percentile) 1: H x W float32."""
    from scipy import ndimage

    from lowlight.srgb import srgb_to_linear

    top = srgb_to_linear(low.max(axis=2) / 255.0).astype(np.float32)
    h, w = top.shape
    s = THUMB / min(h, w)
    small = np.asarray(Image.fromarray(top, mode="F").resize((max(2, round(w * s)), max(2, round(h * s))), Image.BOX))
    env = ndimage.maximum_filter(small, size=2 * radius + 1, mode="nearest")
    env = ndimage.uniform_filter(env, size=2 * radius + 1, mode="nearest")
    env = np.clip(env / max(float(np.percentile(env, 99)), 1e-6), 1.0 / RATIO, 1.0).astype(np.float32)
    return np.asarray(Image.fromarray(env, mode="F").resize((w, h), Image.BILINEAR))


def sets(args):
    """The selection sets of exposure_restraint_ablation.py, drawn the same way, with the uneven set's fields."""
    from lowlight.config import load_params
    from lowlight.data.degrade import darken
    from lowlight.data.illumination import illumination

    cfg = load_params(args.params).data.degrade
    held = set(measures._heldout(args.clean, args.holdout))
    clean = [measures._read(p) for p in sorted(args.clean.iterdir()) if p.is_file() and p not in held]
    rng = np.random.default_rng(1)
    uneven = []
    for x in clean:
        low, d = darken(x, replace(cfg, uneven=1.0), rng, return_params=True)
        uneven.append((low, x, illumination(x.shape[0], x.shape[1], d.field)))
    even = [(darken(x, replace(cfg, uneven=0.0), rng), x, None) for x in clean]
    return {"train-side uneven": uneven, "train-side even": even,
            "train-side well-lit": [(x, x, None) for x in clean]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clean", type=Path, default=measures.SHARED / "BSDS500" / "train")
    ap.add_argument("--holdout", type=int, default=20)
    ap.add_argument("--params", type=Path, default=measures.ROOT / "params.yaml")
    ap.add_argument("--radii", type=int, nargs="*", default=[3, 6, 10])
    ap.add_argument("--powers", type=float, nargs="*", default=[0.5, 1.0])
    args = ap.parse_args(argv)

    import torch

    from lowlight.evaluation.scores import psnr, ssim
    from lowlight.inference.enhancer import Enhancer

    torch.set_flush_denormal(True)
    torch.set_num_threads(2)
    enhancer = Enhancer.pretrained(device="cpu")
    data = sets(args)
    rows = {"shipped": lambda low, field: low}
    for k in args.powers:
        rows[f"true field, k {k:g}"] = (lambda k: lambda low, field: None if field is None
                                        else measures.without_light(low, field, k))(k)
    for r in args.radii:
        for k in args.powers:
            rows[f"estimated, r {r}, k {k:g}"] = (lambda r, k: lambda low, field: measures.without_light(
                low, estimated_field(low, r), k))(r, k)
    print("PSNR / SSIM (well-lit: PSNR and how many of the 40 under 25 dB): " + ", ".join(data))
    print(f"{'row':<24}" + "".join(f"{name:>22}" for name in data))
    for name, prepare in rows.items():
        cells = []
        for key, pairs in data.items():
            inputs = [prepare(low, field) for low, _, field in pairs]
            if any(x is None for x in inputs):
                cells.append(f"{'-':>22}")
                continue
            outs = [enhancer(x) for x in inputs]
            p = np.array([psnr(o, ref) for o, (_, ref, _) in zip(outs, pairs)])
            if key.endswith("well-lit"):
                cells.append(f"{p.mean():15.2f} ({int((p < 25).sum()):2d})")
            else:
                cells.append(f"{p.mean():13.2f} / {np.mean([ssim(o, ref) for o, (_, ref, _) in zip(outs, pairs)]):.4f}")
        print(f"{name:<24}" + "".join(cells), flush=True)


if __name__ == "__main__":
    main()
