"""``lowlight evaluate PRED_DIR REF_DIR``: score any method's outputs with the project's evaluator.

Predictions and references are paired by file stem (``12.png`` with ``12.jpg``),
any image format, 8-bit RGB. PSNR (peak 255) and SSIM (Gaussian 11x11, sigma
1.5, per channel) are computed per image and averaged over images, plain and
with the GT-mean correction (see :mod:`lowlight.evaluation.scores`). A missing, extra
or size-mismatched file stops the command with its name.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lowlight.cli.helptext import plain

__all__ = ["add_parser", "run", "format_table"]

_MAX_ROWS = 20  # above this many images only the mean is printed; --csv keeps them all


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("evaluate", help="score enhanced images against references (PSNR, SSIM)",
                       description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pred_dir", type=Path, metavar="PRED_DIR", help="folder of enhanced images")
    p.add_argument("ref_dir", type=Path, metavar="REF_DIR", help="folder of reference images, same stems")
    p.add_argument("--csv", type=Path, help="write per-image scores here")
    p.add_argument("--json", type=Path, help="write the means (and folders scored) here")
    p.add_argument("--workers", type=int, default=None,
                   help="scoring threads (default: the CPUs this process may use)")
    p.set_defaults(handler=run)
    return p


def format_table(df, summary: dict, max_rows: int = _MAX_ROWS) -> str:
    """Per-image rows (when there are few) and the mean, as fixed-width text."""
    head = f"{'image':<16} {'PSNR':>8} {'SSIM':>7} {'PSNR-GTm':>9} {'SSIM-GTm':>9}"
    lines = [head, "-" * len(head)]

    def row(name, psnr, ssim, pg, sg):
        return f"{name[:16]:<16} {psnr:8.3f} {ssim:7.4f} {pg:9.3f} {sg:9.4f}"

    if len(df) <= max_rows:
        for r in df.itertuples(index=False):
            lines.append(row(str(r.stem), r.psnr, r.ssim, r.psnr_gt_mean, r.ssim_gt_mean))
        lines.append("-" * len(head))
    lines.append(row(f"mean of {summary['n_images']}", summary["psnr"], summary["ssim"],
                     summary["psnr_gt_mean"], summary["ssim_gt_mean"]))
    lines.append("PSNR in dB (uint8 RGB, peak 255); GTm: output scaled to the reference's grey mean first.")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from lowlight.atomic import atomic_path, write_json
    from lowlight.evaluation.folders import evaluate_dirs

    df, summary = evaluate_dirs(args.pred_dir, args.ref_dir, workers=args.workers)
    print(format_table(df, summary))
    if args.csv is not None:
        with atomic_path(args.csv) as tmp:
            df.to_csv(tmp, index=False, float_format="%.6f")
    if args.json is not None:
        write_json(args.json, {"pred_dir": str(args.pred_dir), "ref_dir": str(args.ref_dir), **summary})
    return 0
