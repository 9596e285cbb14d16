"""``python -m lowlight.export --shipped``: rebuild the package's ONNX pair from its ``.pt`` and ``.ubj``.

Run it whenever the shipped weights change (``make export-shipped`` does the same). The pair
is checked against PyTorch + XGBoost on the pairs of ``--data`` (a prepared dataset's ``val``
split, or a folder with ``low/`` and ``high/``); without one, on synthetic dark photos, which
checks the runtimes agree but not on real photos. Other files: ``--checkpoint``,
``--quantile-model`` and ``--out`` (a folder for ``model.onnx`` and ``quantiles.onnx``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from lowlight.errors import report_user_errors
from lowlight.export.pair import export_pair
from lowlight.inference import onnx_contract, shipped

IMAGE_SUFFIXES = (".png", ".webp", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m lowlight.export", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shipped", action="store_true", help="the package's own weights, in lowlight/weights/")
    ap.add_argument("--checkpoint", type=Path, help="network checkpoint (.pt)")
    ap.add_argument("--quantile-model", type=Path, help="quantile model (.ubj)")
    ap.add_argument("--out", type=Path, help="folder for model.onnx and quantiles.onnx")
    ap.add_argument("--data", type=Path, help="pairs to check on: a prepared dataset or a low/ + high/ folder")
    ap.add_argument("--limit", type=int, default=30, help="check on at most this many pairs (default: %(default)s)")
    args = ap.parse_args(argv)
    if args.shipped:
        args.checkpoint = args.checkpoint or shipped.WEIGHTS_DIR / shipped.NETWORK
        args.quantile_model = args.quantile_model or shipped.WEIGHTS_DIR / shipped.QUANTILE_MODEL
        args.out = args.out or shipped.WEIGHTS_DIR
    if not (args.checkpoint and args.quantile_model and args.out):
        ap.error("give --shipped, or --checkpoint, --quantile-model and --out")
    return args


def folder_pairs(root: Path, limit: int) -> list[tuple[Path, Path]]:
    """(low, high) files of a prepared dataset's val split, or of ``root/low`` and ``root/high``."""
    base = root / "val" if (root / "val" / "low").is_dir() else root
    lows = sorted(p for p in (base / "low").glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return [(p, base / "high" / p.name) for p in lows if (base / "high" / p.name).is_file()][:limit]


def synthetic_pairs(n: int = 4, size: tuple[int, int] = (400, 600)):
    """Smooth photos with texture and noise, and their dark versions (a fixed seed)."""
    rng = np.random.default_rng(0)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    for i in range(n):
        phase = rng.uniform(0, 2 * np.pi, 3)
        high = 0.5 + 0.35 * np.sin(6 * xx[..., None] + 4 * yy[..., None] * (i + 1) + phase)
        high = np.clip(high + rng.normal(0, 0.03, high.shape), 0, 1)
        low = np.clip(high ** 1.2 * 0.12 + rng.normal(0, 0.01, high.shape), 0, 1)
        yield (low * 255).round().astype(np.uint8), (high * 255).round().astype(np.uint8)


@report_user_errors("export")
def main(argv=None) -> None:
    from lowlight.imageio import read_rgb

    args = parse_args(argv)
    files = folder_pairs(args.data, args.limit) if args.data else []
    if args.data and not files:
        sys.exit(f"export: {args.data}: no low/high pairs found")

    def pairs():
        if not files:
            return synthetic_pairs()
        return ((read_rgb(lo), read_rgb(hi)) for lo, hi in files)

    net_out, booster_out = args.out / onnx_contract.NETWORK_FILE, args.out / onnx_contract.BOOSTER_FILE
    figures = export_pair(args.checkpoint, args.quantile_model, net_out, booster_out, pairs)
    where = f"{len(files)} pairs of {args.data}" if files else "synthetic pairs"
    print(f"export: wrote {net_out} and {booster_out}; on {where}: "
          f"{100 * figures['share_within_1_level']:.4f}% of pixels within 1 level (worst "
          f"{figures['max_level_diff']}), PSNR {figures['psnr_exported']:.3f} dB against PyTorch + XGBoost's "
          f"{figures['psnr_reference']:.3f} dB")


if __name__ == "__main__":
    main()
