"""Speed of the histogram branch: mapping one 600 x 400 image and fitting the quantile model.

Prints

* milliseconds to map one 600 x 400 image given its predicted percentiles
  (:func:`lowlight.histbranch.histmap.map_image`, default ``histmap`` params), on one CPU core;
* milliseconds to predict those percentiles (features + XGBoost) for one image;
* seconds to fit the XGBoost model (default ``quantiles`` params) on 485 images with
  2 threads, and the seconds spent computing their features.

Data: ``--data`` (a prepared dataset; every split's pairs are used), else LOL's
``our485`` from ``../shared/datasets/LOL`` prepared into a temporary folder by the
``prepare`` code, else (or with ``--synthetic``) 485 synthetic 600 x 400 pairs.

    python benchmarks/histmap_speed.py
    python benchmarks/histmap_speed.py --data data/prepared --json benchmarks/out/histmap_speed.json

Per-image times are the median over images of the best of ``--repeats`` runs, so a
busy machine inflates them less; the fit is timed once. Both depend on what else runs
on the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LOL = REPO.parent / "shared" / "datasets" / "LOL"


def _pin(cores: int) -> str:
    """Restrict this process to ``cores`` of the CPUs it may use; say which."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity)"
    allowed = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, set(allowed[:cores]))
    return f"CPU {','.join(map(str, allowed[:cores]))}"


def _synthetic_pairs(n: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    from lowlight.config import DegradeConfig
    from lowlight.data.degrade import darken

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:400, 0:600] / 400.0
    lows, highs = [], []
    cfg = DegradeConfig()
    for _ in range(n):
        img = np.stack([0.5 + 0.35 * np.sin(rng.uniform(1, 6) * xx + rng.uniform(1, 6) * yy + rng.uniform(0, 6))
                        for _ in range(3)], axis=-1)
        img += rng.normal(0, 0.03, img.shape)
        high = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
        highs.append(high)
        lows.append(darken(high, cfg, rng))
    return lows, highs


def _load(args) -> tuple[str, list[np.ndarray], list[np.ndarray]]:
    from lowlight.data.pairs import SPLITS, load_pairs

    root = args.data
    source = f"prepared dataset {root}" if root else None
    tmp = None
    if root is None and not args.synthetic and LOL.joinpath("our485", "low").is_dir():
        from lowlight.config import DataConfig
        from lowlight.data.prepare import prepare

        tmp = tempfile.TemporaryDirectory(prefix="histmap_speed_")
        root = Path(tmp.name) / "prepared"
        print(f"preparing LOL from {LOL} into a temporary folder ...", flush=True)
        prepare(DataConfig(source="lol", path=str(LOL)), seed=42, out=root)
        source = f"LOL our485 ({LOL})"
    if root is None:
        lows, highs = _synthetic_pairs(args.images)
        return "synthetic 600x400", lows, highs
    lows, highs = [], []
    for split in SPLITS:
        _, lo, hi = load_pairs(root, split)
        lows += lo
        highs += hi
    if tmp is not None:
        tmp.cleanup()
    return source, lows[:args.images], highs[:args.images]


def _best_ms(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return 1000.0 * best


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="prepared dataset (default: LOL, else synthetic)")
    ap.add_argument("--synthetic", action="store_true", help="use synthetic pairs even when LOL is present")
    ap.add_argument("--params", type=Path, default=REPO / "params.yaml")
    ap.add_argument("--images", type=int, default=485, help="images to fit on")
    ap.add_argument("--timed", type=int, default=30, help="images whose mapping/prediction is timed")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--fit-threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)

    from lowlight.config import load_params
    from lowlight.histbranch.histmap import map_image
    from lowlight.histbranch.quantiles import QuantileModel, features, targets

    p = load_params(args.params)
    source, lows, highs = _load(args)
    if not lows:
        raise SystemExit("histmap_speed: no image pairs found")
    shapes = {im.shape for im in lows}
    print(f"data: {source}: {len(lows)} pairs, sizes {sorted(shapes)[:3]}")

    # -- fit on 2 cores
    where = _pin(args.fit_threads)
    t0 = time.perf_counter()
    x = features(lows, p.quantiles)
    feat_s = time.perf_counter() - t0
    y = targets(highs, regions=p.quantiles.regions)
    model = QuantileModel(p.quantiles).fit_arrays(x, y, seed=p.base.seed, threads=args.fit_threads)
    fit_s = model.fit_seconds

    # -- one image at a time on 1 core
    one = _pin(1)
    timed = [im for im in lows if im.shape[:2] == (400, 600)][:args.timed] or lows[:args.timed]
    preds = model.predict(timed[:1])  # warm-up
    map_ms, pred_ms = [], []
    for im in timed:
        pred_ms.append(_best_ms(lambda: model.predict([im]), args.repeats))
        q = model.predict([im])[0]
        map_ms.append(_best_ms(lambda: map_image(im, q, p.histmap), args.repeats))
    del preds

    result = {
        "data": source,
        "pairs": len(lows),
        "cpu": platform.processor() or platform.machine(),
        "histmap": f"{p.histmap.method}/{p.histmap.space}",
        "quantiles": f"{p.quantiles.objective}/{p.quantiles.strategy}/{p.quantiles.n_estimators} rounds",
        "map_ms_median": statistics.median(map_ms),
        "map_ms_max": max(map_ms),
        "predict_ms_median": statistics.median(pred_ms),
        "timed_images": len(timed),
        "timed_on": one,
        "feature_seconds": feat_s,
        "fit_seconds": fit_s,
        "fit_threads": args.fit_threads,
        "fit_on": where,
    }
    print(f"map_image ({result['histmap']}), one 600x400 image, 1 core ({one}): "
          f"{result['map_ms_median']:.2f} ms median over {len(timed)} images (max {result['map_ms_max']:.2f} ms)")
    print(f"predict percentiles (features + XGBoost), one image, 1 core: {result['predict_ms_median']:.2f} ms")
    print(f"fit XGBoost ({result['quantiles']}) on {len(lows)} images, {args.fit_threads} threads ({where}): "
          f"{fit_s:.1f} s (+ {feat_s:.1f} s of features)")
    if args.json:
        from lowlight.atomic import write_json

        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
