"""The shadow lift after the network (lowlight/inference/shadows.py), ablated on local_exposure.py's measures.

Rows, all on the shipped weights with the lift off, each photo through the network once:

* ``no lift``: the network's output as it is (``--shadows 0``);
* ``gamma, coarse map``: the first prototype, kept for its figures. The output's luma is
  area-averaged to 24 cells on the short side and blurred into a map ``L``. Where ``L < t``
  the output is raised to ``e = log(t) / log(L)`` (at least 0.5), faded in as the input's
  mean luma falls from 0.3 to 0.2. It lifts black to grey and leaves halos at strong edges;
* ``gain, mean-luma gate, no floor``: the shipped gain (edge-aware) with the first
  prototype's gate instead of its own, and no black floor;
* ``gain t T, no floor``: the shipped gain with its own gate (the input's crushed share,
  20 -> 35 %) at target level ``T`` and no black floor. The shipped
  :data:`~lowlight.inference.shadows.TARGET` is the largest of these whose LOL ``val`` PSNR
  is within 0.05 dB of ``no lift``;
* ``gain t 0.15, floor F``: the shipped gain followed by a black floor of ``F`` (the shipped
  step at :data:`~lowlight.inference.shadows.FLOOR`), its share scaling with the amount;
* ``floor ramp R``: the shipped gain and floor, the floor's share ``min(1, R * amount)``
  (1: as the gain; 100: a step at the gate's start). The shipped
  :data:`~lowlight.inference.shadows.FLOOR_RAMP` is the steepest ramp short of a step (so a
  photo a point further into the gate never gets much more) with which no selection set
  of exposure_restraint_ablation.py loses more than 0.005 dB; with ``--lol-prepared`` those
  sets are printed first for these rows (the floor's benefit is by construction: what it
  fills is black, so only its cost is chosen on). These rows, and those above, raise a pixel's
  colour with its luma (``chroma 1``), as the lift did when they were chosen;
* ``gate G``: the shipped lift, its auto amount ramped from an input crushed share of ``G`` (the
  gate's start; 0.20 before, :data:`~lowlight.inference.shadows.GATE` [0] now) to 35 %. What a
  lower start buys is by construction (more photos lifted and floored), so it is chosen on cost:
  the start is the crushed share from which a photo fails the issue's per-group bound (10 %),
  and the selection sets must lose at most 0.005 dB there; a second table shows the benefit, the
  crushed share on the real dark photos bracketed at more exposures (:data:`GATE_BRACKETS`),
  those with mean luma under 0.25;
* ``chroma C``: the shipped lift with a pixel's colour (its difference from its luma) raised
  by ``gain ** C`` while its luma is raised by the gain (1: the colour ratios kept, as before;
  0: the colour left as it was). The shipped :data:`~lowlight.inference.shadows.CHROMA` is
  the lowest ``C`` (the least of the network's colour bias raised with the shadows) with which no
  selection set loses more than 0.01 dB; the (a) tables' ``colour`` column shows what it
  buys: the colour where the input carries no signal, which can only be invented.

    python benchmarks/local_lift_ablation.py --lol-prepared DIR [--targets 0.15 0.175 0.2] [--floors 0.03 0.055 0.08]
        [--floor-ramps 1 2 3 5 100] [--chromas 1 0.75 0.5 0.25 0] [--gates 0.2 0.15 0.1 0.08 0.05 0]

It prints local_exposure.py's four tables: (a) real dark photos, (b) uneven light, (c)
well-lit photos and (d) LOL ``val`` (with ``--lol-prepared``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import local_exposure as measures  # noqa: E402  (the four measures, as that script prints them)
from lowlight.inference.shadows import FLOOR  # noqa: E402
from exposure_restraint_ablation import selection_arguments, selection_sets  # noqa: E402

GATE_BRACKETS = (0.35, 0.7, 1.4, 2.8, 4.0)  # exposure factors of the gate rows' benefit table (linear light)
CELLS = 24  # the gamma prototype's map: cells on the photo's short side
BLUR = 1.5  # its Gaussian blur, in cells


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    r = max(1, int(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    for axis in (0, 1):
        pad = [(r, r) if i == axis else (0, 0) for i in range(2)]
        a = np.apply_along_axis(np.convolve, axis, np.pad(a, pad, mode="reflect"), k, mode="valid")
    return a


def coarse_illumination(y: np.ndarray) -> np.ndarray:
    """``y`` (H x W float32) smoothed to a coarse map of the light falling on each region."""
    h, w = y.shape
    scale = CELLS / min(h, w)
    small = Image.fromarray(y, mode="F").resize((max(2, round(w * scale)), max(2, round(h * scale))), Image.BOX)
    small = _blur(np.asarray(small), BLUR).astype(np.float32)
    return np.asarray(Image.fromarray(small, mode="F").resize((w, h), Image.BILINEAR), dtype=np.float32)


def mean_gate(low: np.ndarray, lo: float = 0.2, hi: float = 0.3) -> float:
    from lowlight.evaluation.exposure_measures import luma01

    return float(np.clip((hi - luma01(low).mean()) / (hi - lo), 0, 1))


def local_gamma(low: np.ndarray, out: np.ndarray, t: float = 0.2, e_min: float = 0.5) -> np.ndarray:
    """The gamma prototype: ``out`` (uint8) with its dark regions raised towards ``t``."""
    from lowlight.evaluation.exposure_measures import luma01

    o = out.astype(np.float32) / 255
    lum = coarse_illumination(luma01(out))
    e = np.where(lum < t, np.log(t) / np.log(np.clip(lum, 1e-3, t - 1e-6)), 1.0)
    e = 1 - (1 - np.clip(e, e_min, 1.0)) * mean_gate(low)
    return np.clip(np.power(o, e[..., None]) * 255 + 0.5, 0, 255).astype(np.uint8)


def _gate_benefit(gates: dict, dark: Path) -> None:
    """Crushed share (%) on the real dark photos bracketed at :data:`GATE_BRACKETS`, mean luma under 0.25."""
    from lowlight.evaluation.exposure_measures import crushed_share, luma01

    photos = [measures.bracket(measures._read(p), f) for p in sorted(dark.iterdir()) if p.is_file()
              for f in GATE_BRACKETS]
    photos = [x for x in photos if luma01(x).mean() < 0.25]
    print(f"gate rows: crushed % on {len(photos)} bracketed real dark photos (x{', x'.join(map(str, GATE_BRACKETS))}; "
          "mean luma < 0.25)")
    print(f"{'gate':<12}{'input mean':>11}{'mean':>8}{'max':>8}{'over 6 %':>10}")
    inputs = np.array([crushed_share(x) for x in photos])
    for name, fn in gates.items():
        c = np.array([crushed_share(fn(x)) for x in photos])
        print(f"{name:<12}{100 * inputs.mean():11.2f}{100 * c.mean():8.2f}{100 * c.max():8.2f}{int((c > 0.06).sum()):10d}",
              flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", nargs="*", type=float, default=[0.15, 0.175, 0.2], help="gain rows' target levels")
    ap.add_argument("--floors", nargs="*", type=float, default=[0.03, FLOOR, 0.08],
                    help="black floor rows (at the shipped target level)")
    ap.add_argument("--floor-ramps", nargs="*", type=float, default=[1.0, 2.0, 3.0, 5.0, 100.0],
                    help="floor ramp rows (the shipped target and floor)")
    ap.add_argument("--chromas", nargs="*", type=float, default=[1.0, 0.75, 0.5, 0.25, 0.0],
                    help="colour exponent rows (the shipped target, floor and ramp)")
    ap.add_argument("--gates", nargs="*", type=float, default=[0.2, 0.15, 0.1, 0.08, 0.05, 0.0],
                    help="auto gate rows: the input's crushed share where the lift starts (full at the shipped end)")
    selection_arguments(ap, lol_required=False)  # without --lol-prepared, (d) and the selection sets are skipped
    args = ap.parse_args(argv)

    from lowlight.inference.shadows import GATE, TARGET, auto_amount, lift_shadows

    no_lift = measures.shipped_without_lift()  # each photo through the network once, for all rows

    methods = {
        "no lift": no_lift,
        "gamma, coarse map": lambda x: local_gamma(x, no_lift(x)),
        f"gain t {TARGET}, mean gate, no floor": lambda x: lift_shadows(no_lift(x), x, mean_gate(x), TARGET, 0.0,
                                                                         chroma=1.0),
    }
    for t in args.targets:
        methods[f"gain t {t}, no floor"] = (
            lambda t: lambda x: lift_shadows(no_lift(x), x, None, t, 0.0, chroma=1.0))(t)
    for f in args.floors:
        methods[f"gain t {TARGET}, floor {f}, ramp 1"] = (
            lambda f: lambda x: lift_shadows(no_lift(x), x, None, TARGET, f, 1.0, chroma=1.0))(f)
    selected = {f"floor ramp {r:g}": (lambda r: lambda x: lift_shadows(no_lift(x), x, floor_ramp=r, chroma=1.0))(r)
                for r in args.floor_ramps}
    selected.update({f"chroma {c:g}": (lambda c: lambda x: lift_shadows(no_lift(x), x, chroma=c))(c)
                     for c in args.chromas})
    gates = {f"gate {g:g}": (lambda g: lambda x: lift_shadows(no_lift(x), x, auto_amount(x, (g, GATE[1]))))(g)
             for g in args.gates}
    selected.update(gates)
    _gate_benefit(gates, args.dark)
    if args.lol_prepared:
        from lowlight.evaluation.scores import psnr

        sets = selection_sets(args)
        print("selection sets, mean PSNR: " + ", ".join(f"{k} {len(v)}" for k, v in sets.items()))
        for name, fn in selected.items():
            print(f"{name:<16}" + "".join(f"{k:>20} {np.mean([psnr(fn(x), r) for x, r in v]):.3f}"
                                          for k, v in sets.items()), flush=True)
    methods.update(selected)
    measures.heldout_measures(methods, args.dark, args.clean, args.holdout, args.params)
    if args.lol_prepared:
        measures.lol_val(methods, args.lol_prepared)


if __name__ == "__main__":
    main()
