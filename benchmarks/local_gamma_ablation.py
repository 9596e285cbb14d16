"""A classical local step after the network, measured as local_exposure.py measures the model.

The step (a prototype kept here so its figures can be reprinted, not part of the tool): the
output's luma is smoothed into an illumination map ``L`` (area-averaged to ``CELLS`` cells on
the short side, Gaussian-blurred, bilinear back to full size); where ``L < t`` the output is
raised to ``e = log(t) / log(L)`` (at least ``e_min``), so a region at ``L`` comes up to ``t``
and darker pixels come up most, as a gamma does. The step fades in as the input's mean luma
falls from ``gate_hi`` to ``gate_lo``, so photos that are not dark are left alone.

Each variant is ``t,e_min,gate_lo,gate_hi``; the shipped weights run once per photo::

    python benchmarks/local_gamma_ablation.py --lol-prepared DIR [--variants 0.2,0.5,0.2,0.3 ...]

It prints local_exposure.py's four tables, (a) real dark photos, (b) uneven light, (c) well-lit
photos, (d) LOL ``val`` (with ``--lol-prepared``), with a row per variant under ``shipped``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import local_exposure as measures  # noqa: E402  (the four measures, as that script prints them)

CELLS = 24  # illumination map: cells on the photo's short side
BLUR = 1.5  # its Gaussian blur, in cells
DEFAULT_VARIANTS = ["0.2,0.5,0.2,0.3", "0.2,0.5,0.12,0.2", "0.18,0.5,0.15,0.25"]


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    r = max(1, int(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    for axis in (0, 1):
        pad = [(r, r) if i == axis else (0, 0) for i in range(2)]
        a = np.apply_along_axis(np.convolve, axis, np.pad(a, pad, mode="reflect"), k, mode="valid")
    return a


def illumination(y: np.ndarray) -> np.ndarray:
    """``y`` (H x W float32) smoothed to a map of the light falling on each region."""
    h, w = y.shape
    scale = CELLS / min(h, w)
    small = Image.fromarray(y, mode="F").resize((max(2, round(w * scale)), max(2, round(h * scale))), Image.BOX)
    small = _blur(np.asarray(small), BLUR).astype(np.float32)
    return np.asarray(Image.fromarray(small, mode="F").resize((w, h), Image.BILINEAR), dtype=np.float32)


def local_gamma(low: np.ndarray, out: np.ndarray, t: float, e_min: float, gate: tuple[float, float]) -> np.ndarray:
    """``out`` (uint8) with its dark regions raised towards ``t``; ``low`` (the input) sets the gate."""
    from lowlight.evaluation.exposure_measures import luma01

    o = out.astype(np.float32) / 255
    lum = illumination(luma01(out))
    e = np.where(lum < t, np.log(t) / np.log(np.clip(lum, 1e-3, t - 1e-6)), 1.0)
    lo, hi = gate
    fade = float(np.clip((hi - luma01(low).mean()) / (hi - lo), 0, 1))
    e = 1 - (1 - np.clip(e, e_min, 1.0)) * fade
    return np.clip(np.power(o, e[..., None]) * 255 + 0.5, 0, 255).astype(np.uint8)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="*", default=DEFAULT_VARIANTS, help="t,e_min,gate_lo,gate_hi each")
    ap.add_argument("--dark", type=Path, default=measures.SHARED / "dark")
    ap.add_argument("--clean", type=Path, default=measures.SHARED / "BSDS500" / "train")
    ap.add_argument("--holdout", type=int, default=20)
    ap.add_argument("--params", type=Path, default=measures.ROOT / "params.yaml")
    ap.add_argument("--lol-prepared", type=Path, help="a prepared LOL folder for (d); skipped without it")
    args = ap.parse_args(argv)

    from lowlight.inference.enhancer import Enhancer

    enhancer = Enhancer.pretrained(device="cpu")
    cache: dict = {}

    def shipped(x: np.ndarray) -> np.ndarray:  # each photo through the network once, for all variants
        key = (x.shape, x[::13, ::11].tobytes())
        if key not in cache:
            cache[key] = enhancer(x)
        return cache[key]

    methods = {"shipped": shipped}
    for spec in args.variants:
        t, e_min, lo, hi = map(float, spec.split(","))
        methods[f"t {t} gate {lo}-{hi}"] = (lambda t, e, g: lambda x: local_gamma(x, shipped(x), t, e, g))(
            t, e_min, (lo, hi))
    held = measures._heldout(args.clean, args.holdout) if args.clean.is_dir() else []
    if args.dark.is_dir():
        measures.real_dark(methods, args.dark)
    if held:
        measures.uneven(methods, held, args.params)
    measures.well_lit(methods, held)
    if args.lol_prepared:
        measures.lol_val(methods, args.lol_prepared)


if __name__ == "__main__":
    main()
