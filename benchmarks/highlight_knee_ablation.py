"""The exposure anchor's highlight shoulder (lowlight/inference/exposure.py), ablated: how its knee was chosen.

Every row is the shipped pair, end to end, with the anchor's gain applied through
``shoulder_table`` at the given knee (``none``: scaled and clipped, as before the shoulder).
The knee is chosen on the selection sets of ``exposure_restraint_ablation.py``, never on the
held-out photos: the train-side BSDS500 photos as themselves, darkened with uneven light
and evenly (seed 1), 120 LOL ``train`` pairs and LOL ``val``. Each cell is the mean PSNR and
the newly blown share (luma > 0.98 beyond the input's, in %).

The rule: the lowest knee (the most highlight range held) with which no selection set loses
more than 0.1 dB against ``none``. Then local_exposure.py's held-out
measures, (a) real dark photos with their exposure brackets, (b) uneven light and (c)
well-lit photos, are printed for ``none`` and the shipped knee.

    python benchmarks/highlight_knee_ablation.py --lol-prepared DIR

About 5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import local_exposure as measures  # noqa: E402  (the held-out measures, as that script prints them)
from exposure_restraint_ablation import selection_arguments, selection_sets  # noqa: E402  (the same sets)

KNEES = (None, 0.9, 0.8, 0.7)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    selection_arguments(ap)
    args = ap.parse_args(argv)

    import torch

    from lowlight.evaluation.exposure_measures import newly_blown
    from lowlight.evaluation.scores import psnr
    from lowlight.inference.enhancer import Enhancer
    from lowlight.inference.exposure import KNEE

    torch.set_flush_denormal(True)
    torch.set_num_threads(2)
    methods = {f"knee {k if k is not None else 'none'}": Enhancer.pretrained(device="cpu", highlight_knee=k)
               for k in KNEES}
    sets = selection_sets(args)
    print("selection sets (mean PSNR / newly blown %): " + ", ".join(f"{k} {len(v)}" for k, v in sets.items()))
    print(f"{'knee':<12}" + "".join(f"{k:>26}" for k in sets))
    for name, fn in methods.items():
        cells = []
        for pairs in sets.values():
            outs = [fn(x) for x, _ in pairs]
            cells.append(f"{np.mean([psnr(o, ref) for o, (_, ref) in zip(outs, pairs)]):.3f} / "
                         f"{100 * np.mean([newly_blown(x, o) for o, (x, _) in zip(outs, pairs)]):.3f}")
        print(f"{name:<12}" + "".join(f"{c:>26}" for c in cells), flush=True)
    print(f"\nshipped: knee {KNEE}")
    measures.heldout_measures({k: methods[k] for k in ("knee none", f"knee {KNEE}")}, args.dark, args.clean,
                              args.holdout, args.params)


if __name__ == "__main__":
    main()
