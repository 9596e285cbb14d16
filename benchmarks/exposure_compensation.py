"""What the exposure control (``lowlight enhance --exposure EV``, the app's exposure slider) can give back.

The tool's own exposure is one decision per photo, and where it is wrong no other setting mends it:
``--strength`` blends in 8-bit space and ``--shadows`` only lifts dark regions. The exposure
compensation scales the result's linear light by ``2 ** EV`` (highlights rolled off), as a raw
converter's exposure slider does. This prints, on the 20 held-out BSDS500 photos (the ones
``local_exposure.py`` scores), mean PSNR against the clean photo at each EV of a grid, and with the
best EV of the grid per photo (what a person who sets the slider by eye can reach at most):

- darkened evenly to 1/4 and 1/2 of their exposure (two and one stop under: outside the range the
  shipped booster was trained on, where its exposure is furthest off);
- darkened with uneven light (``local_exposure.py`` (b), seed 0).

It also times one setting on a 12-megapixel result (a table lookup). About 90 seconds.

    python benchmarks/exposure_compensation.py
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import local_exposure as measures  # noqa: E402

EVS = (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clean", type=Path, default=measures.SHARED / "BSDS500" / "train")
    ap.add_argument("--holdout", type=int, default=20)
    ap.add_argument("--params", type=Path, default=measures.ROOT / "params.yaml", help="data.degrade")
    args = ap.parse_args(argv)

    import torch

    from lowlight.config import load_params
    from lowlight.data.degrade import darken
    from lowlight.evaluation.scores import psnr
    from lowlight.inference.enhancer import Enhancer
    from lowlight.inference.exposure import compensate_exposure

    torch.set_flush_denormal(True)
    torch.set_num_threads(2)
    cfg = load_params(args.params).data.degrade
    enhancer = Enhancer.pretrained(device="cpu")
    photos = [measures._read(p) for p in measures._heldout(args.clean, args.holdout)]
    sets = {"1/4 (2 stops under)": replace(cfg, uneven=0.0, exposure_min=0.25, exposure_max=0.25),
            "1/2 (1 stop under)": replace(cfg, uneven=0.0, exposure_min=0.5, exposure_max=0.5),
            "uneven light (b)": replace(cfg, uneven=1.0)}
    print(f"{len(photos)} held-out photos, the shipped pair; mean PSNR (dB) against the clean photo at each "
          "--exposure EV, and with the best EV of the grid per photo")
    print(f"{'set':<22}" + "".join(f"{f'{ev:+g}':>7}" for ev in EVS) + f"{'best':>7}  best EVs (count)")
    for name, c in sets.items():
        rng = np.random.default_rng(0)
        table = []
        for clean in photos:
            out = enhancer(darken(clean, c, rng))
            table.append([psnr(compensate_exposure(out, ev), clean) for ev in EVS])
        table = np.array(table)
        picked = np.array(EVS)[table.argmax(axis=1)]
        counts = ", ".join(f"{ev:+g}: {int((picked == ev).sum())}" for ev in EVS if (picked == ev).any())
        print(f"{name:<22}" + "".join(f"{v:7.2f}" for v in table.mean(axis=0))
              + f"{table.max(axis=1).mean():7.2f}  {counts}", flush=True)

    big = np.random.default_rng(1).integers(0, 256, (3000, 4000, 3), dtype=np.uint8)
    compensate_exposure(big, 1.0)
    t = time.perf_counter()
    compensate_exposure(big, 1.0)
    print(f"one exposure setting on a 12-megapixel result: {1000 * (time.perf_counter() - t):.0f} ms")


if __name__ == "__main__":
    main()
