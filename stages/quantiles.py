"""DVC stage ``quantiles``: fit the XGBoost model that predicts the well-lit image's
percentiles from the dark image (see lowlight.quantiles)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lowlight.config import flatten, load_params
from lowlight.errors import report_user_errors
from lowlight.quantiles import train_quantile_model
from lowlight.tracking import pipeline_run


@report_user_errors("quantiles")
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--data", type=Path, required=True, help="prepared dataset root")
    ap.add_argument("--model", type=Path, required=True, help="XGBoost model to write (.ubj)")
    ap.add_argument("--metrics", type=Path, required=True, help="validation MAE (JSON)")
    ap.add_argument("--plots", type=Path, required=True, help="folder for the PNGs")
    ap.add_argument("--oof", type=Path, required=True,
                    help="out-of-fold percentile predictions of the training images (CSV; histmap maps train with them)")
    args = ap.parse_args(argv)
    p = load_params(args.params)
    params = {**flatten(p.base, "base"), **flatten(p.quantiles, "quantiles")}
    with pipeline_run("quantiles", params=params, experiment=p.base.experiment) as tracker:
        m = train_quantile_model(args.data, p.quantiles, p.base.seed, p.base.threads, args.model, args.metrics,
                                 args.plots, oof_csv=args.oof)
        tracker.log_metrics(m, prefix="quantiles.")
        for path in (args.model, args.metrics, args.plots):
            tracker.log_artifact(path)
    val = f"val MAE {m['val_mae']:.2f} levels" if "val_mae" in m else "no val split"
    oof = f", out-of-fold MAE {m['train_oof_mae']:.2f}" if "train_oof_mae" in m else ""
    print(f"quantiles: {m['objective']}/{m['strategy']} on {m['train_images']} images in {m['fit_seconds']:.1f} s; "
          f"train MAE {m['train_mae']:.2f}{oof}, {val} -> {args.model}")


if __name__ == "__main__":
    main()
