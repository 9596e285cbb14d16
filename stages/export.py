"""Stage `export`: the trained network and quantile booster as the ONNX pair the tool runs, checked.

Reads the checkpoint and the booster, writes ``model.onnx`` (dynamic height and width, the
whole photo's context as a second input) and ``quantiles.onnx`` (an ONNX-ML tree ensemble),
and checks them against the PyTorch + XGBoost pipeline on the ``val`` split: outputs within
1 level on at least 99.9% of pixels and the same PSNR to 0.01 dB. A pair that fails is not
written, and the stage fails saying by how much (lowlight.export.check).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# this checkout's lowlight, not an installed one: `dvc exp run --temp` and queued experiments run a copy
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lowlight.atomic import write_json
from lowlight.config import load_params
from lowlight.data.pairs import list_pairs
from lowlight.errors import DataError, report_user_errors
from lowlight.export.pair import export_pair
from lowlight.imageio import read_rgb


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--data", type=Path, required=True, help="prepared dataset root (its val split is checked)")
    ap.add_argument("--quantile-model", type=Path, required=True, help="the quantile booster (.ubj)")
    ap.add_argument("--checkpoint", type=Path, required=True, help="the network checkpoint (.pt)")
    ap.add_argument("--network-out", type=Path, required=True, help="the network as ONNX (model.onnx)")
    ap.add_argument("--quantiles-out", type=Path, required=True, help="the booster as ONNX (quantiles.onnx)")
    ap.add_argument("--metrics", type=Path, required=True, help="the check's figures (JSON)")
    return ap.parse_args(argv)


@report_user_errors("export")
def main(argv=None) -> None:
    args = parse_args(argv)
    p = load_params(args.params)
    pairs = list_pairs(args.data, "val")
    if not pairs:
        raise DataError([f"{args.data}: the val split is empty"], header="nothing to check the export on")
    figures = export_pair(args.checkpoint, args.quantile_model, args.network_out, args.quantiles_out,
                          lambda: ((read_rgb(pair.low), read_rgb(pair.high)) for pair in pairs), histmap=p.histmap)
    write_json(args.metrics, figures)
    print(f"export: {args.network_out} and {args.quantiles_out}; on {figures['n_images']} val images "
          f"{100 * figures['share_within_1_level']:.4f}% of pixels within 1 level of PyTorch + XGBoost "
          f"(worst {figures['max_level_diff']}), PSNR {figures['psnr_exported']:.3f} dB against "
          f"{figures['psnr_reference']:.3f} dB")


if __name__ == "__main__":
    main()
