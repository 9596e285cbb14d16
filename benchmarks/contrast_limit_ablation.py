"""The mapping's contrast limit (``histmap.max_slope``), ablated with the shipped weights.

Each row is the shipped pair with the mapping's table capped at that log-log slope, its
mean level kept (``lowlight/histbranch/histmap.py``, ``limit_contrast``; 0 = exact
matching, as the weights were trained). Everything after the mapping is the default (the
network, the anchor and the shadow lift). The selection measures are on LOL ``val``:

* dark photos against their references (PSNR / SSIM / GT-mean PSNR);
* its references given as the input, against themselves: a well-lit photo should come back
  as it was.

The shipped value is the one no worse than 0 on both measures and best on the first.
The held-out measures of local_exposure.py follow: (a) real dark photos, (b) uneven light,
(c) well-lit photos.

    python benchmarks/contrast_limit_ablation.py --lol-prepared DIR [--slopes 0 1.25 1.5 2 3]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import local_exposure as measures  # noqa: E402  (the four measures, as that script prints them)


def lol_val_references(methods: dict, root: Path) -> None:
    from lowlight.data.pairs import list_pairs
    from lowlight.evaluation.scores import psnr

    refs = {p.high.name: p.high for p in list_pairs(root, "val") if not p.stem.startswith(("clean_", "id_"))}
    images = [measures._read(p) for p in refs.values()]
    print(f"\nLOL val references as the input, against themselves ({len(images)})")
    print(f"{'method':<22} {'PSNR':>6} {'< 25 dB':>8}")
    for name, fn in methods.items():
        s = np.array([psnr(fn(x), x) for x in images])
        print(f"{name:<22} {s.mean():6.2f} {int((s < 25).sum()):8d}", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slopes", nargs="*", type=float, default=[0.0, 1.25, 1.5, 2.0, 3.0])
    ap.add_argument("--lol-prepared", type=Path, required=True, help="a prepared LOL folder (its val split)")
    ap.add_argument("--dark", type=Path, default=measures.SHARED / "dark")
    ap.add_argument("--clean", type=Path, default=measures.SHARED / "BSDS500" / "train")
    ap.add_argument("--holdout", type=int, default=20)
    ap.add_argument("--params", type=Path, default=measures.ROOT / "params.yaml")
    ap.add_argument("--skip-heldout", action="store_true", help="only the LOL val selection measures")
    args = ap.parse_args(argv)

    import torch

    from lowlight.inference.enhancer import Enhancer

    torch.set_flush_denormal(True)
    torch.set_num_threads(2)
    shipped = Enhancer.pretrained(device="cpu")
    methods = {f"max_slope {s:g}": replace(shipped, histmap=replace(shipped.histmap, max_slope=s)) for s in args.slopes}
    measures.lol_val(methods, args.lol_prepared)
    lol_val_references(methods, args.lol_prepared)
    if args.skip_heldout:
        return
    measures.heldout_measures(methods, args.dark, args.clean, args.holdout, args.params)


if __name__ == "__main__":
    main()
