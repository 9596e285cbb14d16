"""How dark the booster's synthetic training pairs are, and photos one to two stops under.

The shipped booster's BSDS500 pairs were darkened to 1/40-1/8 of their exposure
(``data.degrade.exposure_min/max``: three to five stops under). A photo only one or two stops
under lies outside that range, and the shipped pair gets its exposure wrong there: scaled by
one gain to the reference's mean, its output would score 29-32 dB, not 20.

1. **Selection** (equal budget, no held-out photo): boosters refit with the shipped settings on
   LOL ``train`` (388 real pairs), 30 of the 40 train-side BSDS500 photos darkened twice each
   with exposures log-uniform in [1/40, ``emax``] and 20 % identity pairs, two seeds per arm; each
   runs with the shipped network on the other 10 photos darkened evenly at fixed exposures, the
   same 10 under uneven light (``data.degrade`` with ``uneven: 1``) and as themselves, and on LOL
   ``val`` and its 76 distinct references as themselves. About 10 minutes.
2. ``--heldout Q.ubj ...``: the shipped booster and the given ones (e.g. the quantiles stage's
   output on a prepared LOL + BSDS500 folder) on the 20 held-out photos darkened evenly at the
   same fixed exposures (seed 0): the figure to check a choice on, never to make it.

    python benchmarks/exposure_range_ablation.py --lol-prepared DIR [--arms 0.125 0.5]
    python benchmarks/exposure_range_ablation.py --lol-prepared DIR --heldout models/quantiles.ubj \
        [--weights models/model.pt]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import local_exposure as measures  # noqa: E402

EXPOSURES = (0.03, 0.06, 0.125, 0.25, 0.5)  # fixed exposures of the sweep: 5 to 1 stops under
ARMS = (0.125, 0.25, 0.5, 1.0)  # emax: the darkest-to-brightest training exposure's top (0.125 shipped)
SEEDS = (0, 1)
IDENTITY = 0.2  # identity pairs per training pair (data.identity_fraction of the shipped recipe)


def _sweep(enhancer, photos, rng, cfg) -> list[float]:
    from lowlight.data.degrade import darken
    from lowlight.evaluation.scores import psnr

    cells = []
    for e in EXPOSURES:
        c = replace(cfg, uneven=0.0, exposure_min=e, exposure_max=e)
        cells.append(float(np.mean([psnr(enhancer(darken(x, c, rng)), x) for x in photos])))
    return cells


def _lol(enhancer, lol) -> list[float]:
    from lowlight.evaluation.scores import psnr, ssim

    lows, highs, refs = lol
    outs = [enhancer(x) for x in lows]
    self_scores = np.array([psnr(enhancer(x), x) for x in refs])
    return [float(np.mean([psnr(o, h) for o, h in zip(outs, highs)])),
            float(np.mean([ssim(o, h) for o, h in zip(outs, highs)])), float(self_scores.mean()),
            int((self_scores < 25).sum())]


def _read_lol(root: Path):
    from lowlight.data.pairs import list_pairs

    def real(split):
        return [p for p in list_pairs(root, split) if not p.stem.startswith(("clean_", "id_"))]

    train = [(measures._read(p.low), measures._read(p.high)) for p in real("train")]
    val = [(measures._read(p.low), measures._read(p.high)) for p in real("val")]
    refs = list({h.tobytes(): h for _, h in val}.values())
    return train, ([lo for lo, _ in val], [h for _, h in val], refs)


def _fit(shipped_cfg, lol_train, photos, cfg, emax: float, seed: int):
    from lowlight.data.degrade import darken
    from lowlight.histbranch.quantiles import QuantileModel

    rng = np.random.default_rng(100 + seed)
    c = replace(cfg, uneven=0.0, exposure_max=emax, peak_exposure_max=max(emax, cfg.exposure_min))
    lows, highs = [lo for lo, _ in lol_train], [h for _, h in lol_train]
    for x in photos:
        for _ in range(2):
            lows.append(darken(x, c, rng))
            highs.append(x)
    pool = [h for _, h in lol_train] + photos
    for i in rng.choice(len(pool), round(IDENTITY * len(lows)), replace=False):
        lows.append(pool[i])
        highs.append(pool[i])
    return QuantileModel(shipped_cfg).fit(lows, highs, seed=42 + seed, threads=2)


def selection(args, cfg, enhancer, shipped, lol_train, lol_val) -> None:
    from lowlight.data.degrade import darken
    from lowlight.evaluation.scores import psnr, ssim

    held = set(measures._heldout(args.clean, args.holdout))
    side = [p for p in sorted(args.clean.iterdir()) if p.is_file() and p not in held]
    order = np.random.default_rng(7).permutation(len(side))
    fit_photos = [measures._read(side[i]) for i in order[:30]]
    sel_photos = [measures._read(side[i]) for i in order[30:]]
    print(f"selection: boosters fitted on LOL train {len(lol_train)} + {len(fit_photos)} BSDS500 photos x 2 + "
          f"{IDENTITY:.0%} identity pairs; scored on the other {len(sel_photos)} and LOL val")
    heads = [f"e {e:g}" for e in EXPOSURES] + ["uneven", "SSIM", "self", "< 25", "LOL val", "SSIM", "refs", "< 25"]
    print(f"{'booster':<20}" + "".join(f"{h:>8}" for h in heads))

    def row(name, qm):
        enhancer.quantile_model = qm
        rng = np.random.default_rng(11)
        cells = _sweep(enhancer, sel_photos, rng, cfg)
        pairs = [(darken(x, replace(cfg, uneven=1.0), rng), x) for x in sel_photos for _ in range(2)]
        outs = [enhancer(lo) for lo, _ in pairs]
        cells += [np.mean([psnr(o, x) for o, (_, x) in zip(outs, pairs)]),
                  np.mean([ssim(o, x) for o, (_, x) in zip(outs, pairs)])]
        self_scores = np.array([psnr(enhancer(x), x) for x in sel_photos])
        cells += [self_scores.mean(), int((self_scores < 25).sum())] + _lol(enhancer, lol_val)
        return cells

    def show(name, cells):  # SSIM to 4 places, counts as whole numbers (a mean of counts to 1 place)
        print(f"{name:<20}" + "".join(f"{v:8.4f}" if i in (6, 10) else f"{v:8d}" if isinstance(v, int)
                                      else f"{v:8.1f}" if i in (8, 12) else f"{v:8.2f}" for i, v in enumerate(cells)),
              flush=True)

    show("shipped", row("shipped", shipped))
    for emax in args.arms:
        runs = [row(f"emax {emax:g} s{seed}", _fit(shipped.cfg, lol_train, fit_photos, cfg, emax, seed))
                for seed in SEEDS]
        for seed, cells in zip(SEEDS, runs):
            show(f"emax {emax:g} s{seed}", cells)
        show(f"emax {emax:g} mean", [float(np.mean(v)) for v in zip(*runs)])


def heldout(args, cfg, enhancer, shipped, lol_val) -> None:
    from lowlight.histbranch.quantiles import QuantileModel
    from lowlight.inference.enhancer import Enhancer
    from lowlight.inference.shipped import QUANTILE_MODEL, WEIGHTS_DIR

    photos = [measures._read(p) for p in measures._heldout(args.clean, args.holdout)]
    print(f"\nheld-out: {len(photos)} photos darkened evenly at fixed exposures (seed 0), and LOL val")
    heads = [f"e {e:g}" for e in EXPOSURES] + ["LOL val", "SSIM", "refs", "< 25"]
    print(f"{'booster':<28}" + "".join(f"{h:>8}" for h in heads))
    rows = [("shipped", enhancer, shipped)]
    if args.weights:  # the given boosters with this network instead of the shipped one
        enhancer = Enhancer.from_files(WEIGHTS_DIR / QUANTILE_MODEL, args.weights, device="cpu")
    rows += [(str(p) + (f" + {args.weights.name}" if args.weights else ""), enhancer, QuantileModel.load(p))
             for p in args.heldout]
    for name, enhancer, qm in rows:
        enhancer.quantile_model = qm
        cells = _sweep(enhancer, photos, np.random.default_rng(0), cfg) + _lol(enhancer, lol_val)
        print(f"{name[-28:]:<28}" + "".join(f"{v:8.2f}" if i != 6 else f"{v:8.4f}" for i, v in enumerate(cells[:-1]))
              + f"{cells[-1]:8d}", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lol-prepared", type=Path, required=True, help="a prepared LOL folder (train and val pairs)")
    ap.add_argument("--clean", type=Path, default=measures.SHARED / "BSDS500" / "train")
    ap.add_argument("--holdout", type=int, default=20)
    ap.add_argument("--params", type=Path, default=measures.ROOT / "params.yaml", help="data.degrade")
    ap.add_argument("--arms", type=float, nargs="*", default=list(ARMS))
    ap.add_argument("--heldout", type=Path, nargs="*", help="score these boosters on the held-out photos instead")
    ap.add_argument("--weights", type=Path, help="with --heldout: run the given boosters with this network")
    args = ap.parse_args(argv)

    import torch

    from lowlight.config import load_params
    from lowlight.histbranch.quantiles import QuantileModel
    from lowlight.inference.enhancer import Enhancer
    from lowlight.inference.shipped import QUANTILE_MODEL, WEIGHTS_DIR

    torch.set_flush_denormal(True)
    torch.set_num_threads(2)
    cfg = load_params(args.params).data.degrade
    enhancer = Enhancer.pretrained(device="cpu")
    shipped = QuantileModel.load(WEIGHTS_DIR / QUANTILE_MODEL)
    lol_train, lol_val = _read_lol(args.lol_prepared)
    if args.heldout is not None:
        heldout(args, cfg, enhancer, shipped, lol_val)
    else:
        selection(args, cfg, enhancer, shipped, lol_train, lol_val)


if __name__ == "__main__":
    main()
