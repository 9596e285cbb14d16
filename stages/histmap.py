"""DVC stage ``histmap``: map every low image onto its predicted histogram (see
lowlight.histmap); the mapped images are the network's second input."""

from __future__ import annotations

import argparse
from pathlib import Path

from lowlight.config import load_params
from lowlight.errors import report_user_errors
from lowlight.histmap import map_dataset
from lowlight.tracking import pipeline_run


@report_user_errors("histmap")
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--data", type=Path, required=True, help="prepared dataset root")
    ap.add_argument("--model", type=Path, required=True, help="quantile model (.ubj)")
    ap.add_argument("--train-predictions", type=Path,
                    help="out-of-fold percentiles for the training images (the quantiles stage's --oof)")
    ap.add_argument("--out", type=Path, required=True, help="mapped images (<split>/<stem>.png), replaced whole")
    ap.add_argument("--metrics", type=Path, required=True, help="PSNR/SSIM of the mapped images (JSON)")
    args = ap.parse_args(argv)
    p = load_params(args.params)
    with pipeline_run("histmap", params=p.histmap, experiment=p.base.experiment) as tracker:
        m = map_dataset(args.data, args.model, p.histmap, args.out, args.metrics, args.train_predictions)
        tracker.log_metrics(m, prefix="histmap.")
        tracker.log_artifact(args.metrics)
    scores = "; ".join(f"{s} PSNR {m[f'{s}_psnr']:.2f} dB, SSIM {m[f'{s}_ssim']:.4f} (true percentiles "
                       f"{m[f'{s}_psnr_true_percentiles']:.2f} dB)" for s in ("val", "test") if f"{s}_psnr" in m)
    if "train_psnr" in m:
        scores += f"; train PSNR {m['train_psnr']:.2f} dB ({'out-of-fold' if m['train_cross_fitted'] else 'in-sample'})"
    print(f"histmap: {p.histmap.method}/{p.histmap.space}: {scores or 'no val/test pairs'}; "
          f"{m['map_ms_per_image']:.1f} ms per image -> {args.out}")


if __name__ == "__main__":
    main()
