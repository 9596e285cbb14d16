"""DVC stage ``eda``: percentiles of the training pairs and how the low ones correlate with
the high ones (see lowlight.eda)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lowlight.config import load_params
from lowlight.eda import run_eda
from lowlight.errors import report_user_errors
from lowlight.tracking import pipeline_run


@report_user_errors("eda")
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--data", type=Path, required=True, help="prepared dataset root")
    ap.add_argument("--percentiles", type=Path, required=True, help="per-image percentiles (CSV)")
    ap.add_argument("--metrics", type=Path, required=True, help="summary metrics (JSON)")
    ap.add_argument("--plots", type=Path, required=True, help="folder for the PNGs")
    args = ap.parse_args(argv)
    p = load_params(args.params)
    with pipeline_run("eda", params=p.eda, experiment=p.base.experiment) as tracker:
        m = run_eda(args.data, p.eda, args.percentiles, args.metrics, args.plots)
        tracker.log_metrics(m, prefix="eda.")
        for path in (args.metrics, args.plots):
            tracker.log_artifact(path)
    print(f"eda: {m['train_images']} training pairs; pooled low/high percentile correlations >= "
          f"{m['corr_threshold']}: {m['corr_pooled_frac_ge_threshold']:.1%} (luma "
          f"{m['corr_luma_frac_ge_threshold']:.1%}); mean luma low {m['low_mean_luma']:.1f}, "
          f"high {m['high_mean_luma']:.1f}")


if __name__ == "__main__":
    main()
