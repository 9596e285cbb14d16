"""Stage `evaluate`: score identity, classical baselines, histogram mapping and the full
pipeline on the test split (val when test is empty) and write metrics, pictures and a table."""

from __future__ import annotations

import argparse
from pathlib import Path

from lowlight.baselines import baselines
from lowlight.config import flatten, load_params
from lowlight.inference import Enhancer
from lowlight.errors import report_user_errors
from lowlight.evaluation import run_evaluation
from lowlight.tracking import pipeline_run


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--data", type=Path, required=True, help="prepared dataset root")
    ap.add_argument("--quantile-model", type=Path, required=True)
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--metrics", type=Path, required=True, help="means per method (JSON)")
    ap.add_argument("--per-image", type=Path, required=True, help="one row per image (CSV)")
    ap.add_argument("--plots", type=Path, required=True, help="folder for the PNGs")
    ap.add_argument("--table", type=Path, help="markdown table of the means (for the README)")
    return ap.parse_args(argv)


@report_user_errors("evaluate")
def main(argv=None) -> None:
    args = parse_args(argv)
    p = load_params(args.params)
    enh = Enhancer.from_files(quantile_model=args.quantile_model, checkpoint=args.checkpoint,
                              histmap=p.histmap, device="cpu")
    methods = {**baselines(p.evaluate), "histmap": enh.map, "pipeline": enh}
    if p.evaluate.shipped:
        methods["shipped"] = Enhancer.pretrained(device="cpu")  # the package's LOL-trained weights
    with pipeline_run("evaluate", params=p.evaluate, experiment=p.base.experiment) as tracker:
        result = run_evaluation(args.data, methods, p.evaluate, args.metrics, args.per_image, args.plots,
                                table_md=args.table, progress=True)
        if result["split"] != "test":
            print(f"evaluate: the test split is empty; scored the {result['split']} split instead")
        print(f"evaluate: {result['n_images']} images of the {result['split']} split")
        for name, m in result["methods"].items():
            print(f"  {name:<10} PSNR {m['psnr']:6.2f} dB  SSIM {m['ssim']:.4f}  "
                  f"(GT-mean {m['psnr_gt_mean']:6.2f} dB, {m['ssim_gt_mean']:.4f})")
        tracker.set_tags({"eval.split": result["split"]})
        tracker.log_metrics({"n_images": result["n_images"], **flatten(result["methods"])}, prefix="eval.")
        for path in (args.metrics, args.per_image, args.table, args.plots):
            if path is not None:
                tracker.log_artifact(path)


if __name__ == "__main__":
    main()
