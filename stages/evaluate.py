"""Stage `evaluate`: score identity, classical baselines, histogram mapping and the full
pipeline on the test split (val when test is empty) and write metrics, pictures and a table.

The learned methods are also given each distinct *reference* of the split as the input and
scored against it (``psnr_well_lit``): a photo that is already well lit should come back
as it was. It is measured on the split settings are picked on; benchmarks/well_lit.py
reports the same on photos no stage has seen.

Every number comes from lowlight.evaluation.scores (uint8 PSNR, SSIM, GT-mean columns named apart);
the pictures and the table from lowlight.evaluation.report.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

# this checkout's lowlight, not an installed one: `dvc exp run --temp` and queued experiments run a copy
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

from lowlight.evaluation import report
from lowlight.atomic import atomic_path, write_text
from lowlight.evaluation.baselines import NAMES as BASELINE_NAMES, baselines
from lowlight.config import EvaluateConfig, load_params
from lowlight.errors import DataError, report_user_errors
from lowlight.evaluation.scores import METHOD_NAME, METRICS, psnr, score_pair
from lowlight.parallel import pmap
from lowlight.progress import progress as progress_bar
from lowlight.imageio import read_rgb
from lowlight.metrics_files import write_metrics
from lowlight.inference.enhancer import Enhancer
from lowlight.data.pairs import list_pairs


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


def pick_split(data_root: Path) -> tuple[str, list]:
    """The test split, or val when test is empty (LOL without eval15)."""
    test = list_pairs(data_root, "test")
    if test:
        return "test", test
    val = list_pairs(data_root, "val")
    if val:
        return "val", val
    raise DataError([f"{data_root}: the test and val splits are both empty"], header="nothing to evaluate")


@dataclass(frozen=True)
class EvalOutputs:
    """Where the evaluate stage writes (the paths of ``dvc.yaml``)."""

    metrics: Path  # {"split", "n_images", "methods": {name: {psnr, ssim, psnr_gt_mean, ssim_gt_mean,
    #                seconds_per_image}}}: means over images
    per_image: Path  # one row per image: stem, then <metric>_<method> for each metric and method
    plots: Path  # comparison.png (low | each method | reference) and psnr_per_image.png
    table: Path | None = None  # the results as a markdown table


def headline(result: dict) -> dict:
    """What metrics/eval.json holds (a column each in `dvc exp show`): the pipeline, the histogram
    mapping alone, the shipped weights, and the best classical baseline on each metric. Every
    method's every figure is in plots/eval/methods.csv and the table."""
    methods = result["methods"]
    out: dict = {"n_images": result["n_images"], "test_split": int(result["split"] == "test")}
    for name, keys in (("pipeline", ("psnr", "ssim", "psnr_gt_mean", "psnr_well_lit")), ("histmap", ("psnr",)),
                       ("shipped", ("psnr", "ssim", "psnr_well_lit"))):
        if name in methods:
            out[name] = {k: methods[name][k] for k in keys if k in methods[name]}
    classical = [methods[n] for n in BASELINE_NAMES if n in methods]
    if classical:
        out["best_baseline"] = {k: max(m[k] for m in classical) for k in ("psnr", "ssim")}
    return out


def _check_methods(methods: Mapping[str, Callable]) -> None:
    bad = [n for n in methods if not METHOD_NAME.match(n)]
    if bad:
        raise ValueError(f"method names must be lower-case identifiers (they name CSV columns): {bad}")
    if not methods:
        raise ValueError("no methods to evaluate")


def _run_methods(methods: Mapping[str, Callable], low: np.ndarray, where: Path,
                 seconds: dict[str, float]) -> dict[str, np.ndarray]:
    """Every method on one low image, timed; a wrong output kind is an error naming the method and file."""
    outputs: dict[str, np.ndarray] = {}
    for name, method in methods.items():
        t0 = time.perf_counter()
        out = method(low)
        seconds[name] += time.perf_counter() - t0
        if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.shape != low.shape:
            got = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
            raise ValueError(f"method {name!r} must return uint8 {low.shape} for {where}, got {got}")
        outputs[name] = out
    return outputs


def run_evaluation(data_root: str | Path, methods: Mapping[str, Callable[[np.ndarray], np.ndarray]],
                   cfg: EvaluateConfig, outputs: EvalOutputs, workers: int | None = None,
                   progress: bool = False, well_lit: Iterable[str] = ()) -> dict:
    """Run every method on the test split (``val`` when test is empty), score it, write ``outputs``.

    ``methods`` maps a name (lower-case identifier, used in column names) to a
    function low uint8 RGB -> enhanced uint8 RGB of the same shape. The methods named in
    ``well_lit`` also get ``psnr_well_lit``: their mean PSNR over the split's distinct
    references, each given as the input and scored against itself. Returns the dict
    written to ``outputs.metrics``.
    """
    data_root = Path(data_root)
    _check_methods(methods)
    split, pairs = pick_split(data_root)
    names = list(methods)
    n_examples = min(cfg.examples, len(pairs))
    rows: list[dict[str, float]] = []
    seconds = {n: 0.0 for n in names}
    examples: list[report.Example] = []
    well_lit = [n for n in methods if n in set(well_lit)]
    lit_scores: dict[str, list[float]] = {n: [] for n in well_lit}
    seen_refs: set[bytes] = set()

    iterator: Iterable = progress_bar(pairs, desc=f"evaluate ({split})", unit="img", disable=not progress)
    for i, pair in enumerate(iterator):
        low, ref = read_rgb(pair.low), read_rgb(pair.high)
        results = _run_methods(methods, low, pair.low, seconds)
        # the methods' outputs of one image are scored in parallel (SSIM dominates the cost)
        scores = pmap(lambda n: score_pair(results[n], ref), names, workers)
        rows.append({"stem": pair.stem, **{f"{metric}_{name}": s[metric] for metric in METRICS
                                           for name, s in zip(names, scores)}})
        digest = hashlib.sha256(ref.tobytes()).digest()  # LOL shares one reference among several shots
        if well_lit and digest not in seen_refs:
            seen_refs.add(digest)
            lit = _run_methods({n: methods[n] for n in well_lit}, ref, pair.high, {n: 0.0 for n in well_lit})
            for n in well_lit:
                lit_scores[n].append(psnr(lit[n], ref))
        if i < n_examples:
            examples.append(report.Example(pair.stem, low, ref, results,
                                           {n: s["psnr"] for n, s in zip(names, scores)}))

    df = pd.DataFrame(rows)
    n = len(df)
    result = {"split": split, "n_images": n, "methods": {
        name: {**{m: float(df[f"{m}_{name}"].mean()) for m in METRICS},
               "seconds_per_image": seconds[name] / n,
               **({"psnr_well_lit": float(np.mean(lit_scores[name]))} if name in lit_scores else {})}
        for name in names}}
    _write_outputs(outputs, result, df, examples, str(data_root))
    return result


def _write_outputs(outputs: EvalOutputs, result: dict, df: pd.DataFrame, examples: list, dataset: str) -> None:
    """The per-image CSV, the metrics (timings beside them), the plots and the markdown table."""
    with atomic_path(outputs.per_image) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6f")
    write_metrics(outputs.metrics, headline(result),
                  timings={f"{k}_seconds_per_image": v["seconds_per_image"] for k, v in result["methods"].items()})
    report.write_plots(outputs.plots, examples, df, list(result["methods"]), result["split"])
    # DVC tracks the plots folder: quality figures only (the timings went beside the metrics)
    quality = [{"method": k, **{m: x for m, x in v.items() if m != "seconds_per_image"}}
               for k, v in result["methods"].items()]
    pd.DataFrame(quality).to_csv(
        outputs.plots / "methods.csv", index=False, float_format="%.6f")
    if outputs.table is not None:
        write_text(outputs.table, report.markdown_table(result, dataset=dataset))


@report_user_errors("evaluate")
def main(argv=None) -> None:
    args = parse_args(argv)
    p = load_params(args.params)
    enh = Enhancer.from_files(quantile_model=args.quantile_model, checkpoint=args.checkpoint,
                              histmap=p.histmap, device="cpu")
    methods = {**baselines(p.evaluate), "histmap": enh.map, "pipeline": enh}
    if p.evaluate.shipped:
        methods["shipped"] = Enhancer.pretrained(device="cpu")  # the package's LOL-trained weights
    outputs = EvalOutputs(args.metrics, args.per_image, args.plots, args.table)
    result = run_evaluation(args.data, methods, p.evaluate, outputs, progress=True,
                            well_lit=("histmap", "pipeline", "shipped"))
    if result["split"] != "test":
        print(f"evaluate: the test split is empty; scored the {result['split']} split instead")
    print(f"evaluate: {result['n_images']} images of the {result['split']} split")
    for name, m in result["methods"].items():
        lit = f", well-lit input {m['psnr_well_lit']:6.2f} dB" if "psnr_well_lit" in m else ""
        print(f"  {name:<10} PSNR {m['psnr']:6.2f} dB  SSIM {m['ssim']:.4f}  "
              f"(GT-mean {m['psnr_gt_mean']:6.2f} dB, {m['ssim_gt_mean']:.4f}{lit})")

if __name__ == "__main__":
    main()
