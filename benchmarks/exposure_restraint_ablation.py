"""The exposure restraint (lowlight/inference/restraint.py), ablated: how its two ramps were chosen.

Every row is the shipped pair's output (each photo through the network once) followed by the
restraint with the given ramps and then the shipped shadow lift:

* ``off``: no restraint (the exposure anchor's, i.e. the booster's, overall level);
* ``mean a-b, crushed c-d[, noise e-f]``: the weight rises from 0 at input grey mean ``a``
  to 1 at ``b``, times one that rises from 0 at crushed share ``c`` to 1 at ``d`` [times one
  that rises from 0 at flat-patch noise ``e`` to 1 at ``f`` levels].

The ramps are chosen on the selection sets, never on the held-out photos:

* **train-side well-lit**: the BSDS500 photos outside ``data.extra_clean_holdout``, as
  themselves (mean PSNR, and how many under 25 dB);
* **train-side uneven / even**: the same photos darkened once with uneven light and once
  evenly by ``data.degrade`` (seed 1);
* **LOL train** (``--lol-pairs`` real pairs) and **LOL val**.

The rule: first the mean and crushed ramps, without noise: the largest LOL ``val`` PSNR
among those that lose at most 0.1 dB on the train-side uneven photos. Then the noise ramp
for them: the one that loses nothing on the train-side darkened photos (uneven and even,
both carrying the degradation's sensor noise) and keeps the most of the train-side
well-lit gain. Then (a) real dark photos, (b) uneven light and (c) well-lit
photos (local_exposure.py's held-out measures) are printed for ``off`` and the shipped ramps.

    python benchmarks/exposure_restraint_ablation.py --lol-prepared DIR

About 4 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import local_exposure as measures  # noqa: E402  (the four measures, as that script prints them)

RAMPS = [((0.2, 0.3), (0.2, 0.1), None), ((0.2, 0.3), (0.15, 0.05), None), ((0.18, 0.28), (0.15, 0.05), None),
         ((0.22, 0.32), (0.15, 0.05), None), ((0.2, 0.25), (0.15, 0.05), None),
         ((0.2, 0.3), (0.2, 0.1), (1.5, 1.0)), ((0.2, 0.3), (0.2, 0.1), (2.0, 1.5)), ((0.2, 0.3), (0.2, 0.1), (1.2, 0.8))]


def _name(mean, crushed, noise) -> str:
    return f"mean {mean[0]}-{mean[1]}, crushed {crushed[0]}-{crushed[1]}" + (
        f", noise {noise[0]}-{noise[1]}" if noise else "")


def selection_sets(args) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """(input, reference) pairs of the selection sets."""
    from lowlight.config import load_params
    from lowlight.data.degrade import darken
    from lowlight.data.pairs import list_pairs

    cfg = load_params(args.params).data.degrade
    held = set(measures._heldout(args.clean, args.holdout))
    clean = [measures._read(p) for p in sorted(args.clean.iterdir()) if p.is_file() and p not in held]
    rng = np.random.default_rng(1)
    sets = {"train-side well-lit": [(x, x) for x in clean],
            "train-side uneven": [(darken(x, replace(cfg, uneven=1.0), rng), x) for x in clean],
            "train-side even": [(darken(x, replace(cfg, uneven=0.0), rng), x) for x in clean]}
    for split, n in (("train", args.lol_pairs), ("val", None)):
        pairs = [p for p in list_pairs(args.lol_prepared, split) if not p.stem.startswith(("clean_", "id_"))]
        if n is not None:
            pairs = [pairs[i] for i in sorted(rng.choice(len(pairs), min(n, len(pairs)), replace=False))]
        sets[f"LOL {split}"] = [(measures._read(p.low), measures._read(p.high)) for p in pairs]
    return sets


def selection_arguments(ap: argparse.ArgumentParser, lol_required: bool = True) -> None:
    """The arguments :func:`selection_sets` and local_exposure.py's held-out measures read."""
    ap.add_argument("--lol-prepared", type=Path, required=lol_required,
                    help="a prepared LOL folder (train and val pairs)")
    ap.add_argument("--lol-pairs", type=int, default=120, help="LOL train pairs in the selection sets")
    ap.add_argument("--dark", type=Path, default=measures.SHARED / "dark")
    ap.add_argument("--clean", type=Path, default=measures.SHARED / "BSDS500" / "train")
    ap.add_argument("--holdout", type=int, default=20)
    ap.add_argument("--params", type=Path, default=measures.ROOT / "params.yaml")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    selection_arguments(ap)
    args = ap.parse_args(argv)

    from lowlight.evaluation.scores import psnr
    from lowlight.inference.restraint import CRUSHED, MEAN, NOISE, restrain_exposure
    from lowlight.inference.shadows import lift_shadows

    raw = measures.shipped_without_lift(restrain=False)
    methods = {"off": lambda x: lift_shadows(raw(x), x)}
    for mean, crushed, noise in RAMPS:
        methods[_name(mean, crushed, noise)] = (lambda m, c, n: lambda x: lift_shadows(
            restrain_exposure(raw(x), x, m, c, n), x))(mean, crushed, noise)
    sets = selection_sets(args)
    print("selection sets (mean PSNR; well-lit: and how many under 25 dB): "
          + ", ".join(f"{k} {len(v)}" for k, v in sets.items()))
    print(f"{'ramps':<48}" + "".join(f"{k:>22}" for k in sets))
    for name, fn in methods.items():
        cells = []
        for key, pairs in sets.items():
            s = np.array([psnr(fn(x), ref) for x, ref in pairs])
            cells.append(f"{s.mean():.3f}" + (f" ({int((s < 25).sum())})" if "well-lit" in key else ""))
        print(f"{name:<48}" + "".join(f"{c:>22}" for c in cells), flush=True)
    shipped = _name(MEAN, CRUSHED, NOISE)
    print(f"\nshipped: {shipped}")
    measures.heldout_measures({k: methods[k] for k in ("off", shipped)}, args.dark, args.clean, args.holdout,
                              args.params)


if __name__ == "__main__":
    main()
