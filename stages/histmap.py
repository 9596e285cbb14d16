"""DVC stage ``histmap``: map every low image onto its predicted histogram (lowlight.histbranch.histmap);
the mapped images are the network's second input.

Training images are mapped with the quantile stage's out-of-fold predictions
(``--train-predictions``), so the network trains on mappings as wrong as the ones it
gets at test time; val and test with the model fitted on the whole training split.
Writes ``OUT/<split>/<stem>.png`` (built whole, then swapped in) and, per split, the
PSNR/SSIM of the mapped images against the references, plus (val, test) the PSNR the
same mapping reaches with the references' *true* percentiles: what is left to gain in
the predictor.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

# this checkout's lowlight, not an installed one: `dvc exp run --temp` and queued experiments run a copy
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lowlight.atomic import atomic_dir
from lowlight.config import load_params
from lowlight.errors import DataError, report_user_errors
from lowlight.evaluation.scores import psnr, ssim
from lowlight.histbranch.histmap import map_image
from lowlight.histbranch.quantile_features import targets
from lowlight.image_writer import write_image
from lowlight.imageio import read_rgb
from lowlight.data.pairs import SPLITS, list_pairs
from lowlight.histbranch.cross_fit import read_predictions
from lowlight.histbranch.quantiles import QuantileModel
from lowlight.metrics_files import write_metrics


# what metrics/histmap.json holds: PSNR of the mapping per split (train mapped out-of-fold), with the
# percentiles known exactly (its ceiling), and its speed; SSIMs and counts are printed
HEADLINE = ("train_psnr", "val_psnr", "test_psnr", "val_psnr_true_percentiles")

def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--data", type=Path, required=True, help="prepared dataset root")
    ap.add_argument("--model", type=Path, required=True, help="quantile model (.ubj)")
    ap.add_argument("--train-predictions", type=Path,
                    help="out-of-fold percentiles for the training images (the quantiles stage's --oof)")
    ap.add_argument("--out", type=Path, required=True, help="mapped images (<split>/<stem>.png), replaced whole")
    ap.add_argument("--metrics", type=Path, required=True, help="PSNR/SSIM of the mapped images (JSON)")
    return ap.parse_args(argv)


def train_percentiles(path: Path | None, levels: int, train_pairs) -> dict[str, np.ndarray]:
    if path is None:
        return {}
    oof = read_predictions(path, levels)
    missing = [p.stem for p in train_pairs if p.stem not in oof]
    if missing:
        raise DataError([f"{path}: no predictions for training image(s) {', '.join(missing[:5])}"
                         + (f" and {len(missing) - 5} more" if len(missing) > 5 else "") + " (rerun the quantiles stage)"])
    return oof


def map_all(args: argparse.Namespace, cfg) -> dict:
    model = QuantileModel.load(args.model)
    splits = {s: list_pairs(args.data, s) for s in SPLITS}
    if not any(splits.values()):
        raise DataError([f"{args.data}: no pairs in any of {', '.join(SPLITS)} (run the prepare stage)"])
    oof = train_percentiles(args.train_predictions, len(model.levels), splits["train"])
    metrics: dict = {"train_cross_fitted": int(bool(oof))}
    map_seconds, mapped_images = 0.0, 0
    with atomic_dir(args.out) as tmp:
        for split, pairs in splits.items():
            (tmp / split).mkdir()
            psnrs, ssims, oracle = [], [], []
            for pair in pairs:
                low, high = read_rgb(pair.low), read_rgb(pair.high)
                pred = oof[pair.stem] if split == "train" and oof else model.predict([low])[0]
                t0 = time.perf_counter()
                mapped = map_image(low, pred, cfg)
                map_seconds += time.perf_counter() - t0
                mapped_images += 1
                write_image(tmp / split / f"{pair.stem}.png", mapped)
                psnrs.append(psnr(mapped, high))
                ssims.append(ssim(mapped, high))
                if split != "train":
                    oracle.append(psnr(map_image(low, targets([high], regions=model.cfg.regions)[0], cfg), high))
            metrics[f"{split}_images"] = len(pairs)
            if pairs:
                metrics[f"{split}_psnr"] = float(np.mean(psnrs))
                metrics[f"{split}_ssim"] = float(np.mean(ssims))
            if oracle:
                metrics[f"{split}_psnr_true_percentiles"] = float(np.mean(oracle))
    metrics["map_ms_per_image"] = 1000.0 * map_seconds / max(mapped_images, 1)
    write_metrics(args.metrics, metrics, HEADLINE, timings={"map_ms_per_image": metrics["map_ms_per_image"]})
    return metrics


@report_user_errors("histmap")
def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    p = load_params(args.params)
    m = map_all(args, p.histmap)
    scores = "; ".join(f"{s} PSNR {m[f'{s}_psnr']:.2f} dB, SSIM {m[f'{s}_ssim']:.4f} (true percentiles "
                       f"{m[f'{s}_psnr_true_percentiles']:.2f} dB)" for s in ("val", "test") if f"{s}_psnr" in m)
    if "train_psnr" in m:
        scores += f"; train PSNR {m['train_psnr']:.2f} dB ({'out-of-fold' if m['train_cross_fitted'] else 'in-sample'})"
    print(f"histmap: {p.histmap.method}/{p.histmap.space}: {scores or 'no pairs'}; "
          f"{m['map_ms_per_image']:.1f} ms per image -> {args.out}")
    return m


if __name__ == "__main__":
    main()
