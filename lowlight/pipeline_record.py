"""What the pipeline run records, read from the files the stages wrote (no MLflow here).

``stages/track.py`` turns these into one MLflow run; keeping the reading apart makes the
record testable without a store and identical whether DVC ran a stage or restored it:

* :func:`headline_metrics`: every stage's metrics file, as dotted names (``eval.pipeline.psnr``);
* :func:`epoch_curves`: the training log, one ``{column: value}`` per epoch;
* :func:`dataset_record`: the prepared dataset's manifest, its digest and split counts;
* :func:`changed_params`: the params that differ from the commit's params.yaml (``dvc exp run -S``).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from pathlib import Path

from lowlight.config import flatten
from lowlight.errors import DataError

__all__ = ["METRICS_FILES", "CURVES", "headline_metrics", "epoch_curves", "dataset_record", "changed_params"]

# stage -> its metrics file in the metrics folder (dvc.yaml's `metrics:`)
METRICS_FILES = {"eda": "eda.json", "quantiles": "quantiles.json", "histmap": "histmap.json",
                 "train": "train.json", "eval": "eval.json"}
# the per-epoch columns of the training log that become curves (step = epoch)
# (speeds are the train run's own curves: the log DVC tracks holds no timings)
CURVES = ("train_loss", "val_loss", "val_psnr", "val_ssim", "lr")


def headline_metrics(metrics_dir: str | Path) -> dict[str, float]:
    """``{"<stage>.<key>": number}`` from each stage's metrics file; a missing file is a DataError naming it."""
    metrics_dir = Path(metrics_dir)
    out: dict[str, float] = {}
    problems = []
    for stage, name in METRICS_FILES.items():
        path = metrics_dir / name
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            problems.append(f"{path}: {type(exc).__name__}: {str(exc)[:120]} (rerun `dvc repro`)")
            continue
        for key, value in flatten(data, stage).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[key] = float(value)
    if problems:
        raise DataError(problems, header="cannot record the pipeline run")
    return out


def epoch_curves(log_csv: str | Path) -> list[tuple[int, dict[str, float]]]:
    """``[(epoch, {column: value})]`` for the :data:`CURVES` columns of the training log."""
    with open(log_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [(int(r["epoch"]), {k: float(r[k]) for k in CURVES if r.get(k) not in (None, "")}) for r in rows]


def dataset_record(data_root: str | Path) -> dict:
    """The prepared dataset as lineage: manifest path, its SHA-256, the source and pairs per split and kind."""
    manifest = Path(data_root) / "manifest.csv"
    try:
        raw = manifest.read_bytes()
    except OSError as exc:
        raise DataError([f"{manifest}: {exc.strerror or exc} (rerun the prepare stage)"],
                        header="cannot record the dataset") from exc
    rows = list(csv.DictReader(raw.decode("utf-8").splitlines()))
    splits = Counter(r["split"] for r in rows)
    kinds = Counter(r.get("kind", "") for r in rows)
    sources = sorted({r["high_source"].split("/")[0] for r in rows if r.get("high_source")})
    return {"manifest": manifest, "digest": hashlib.sha256(raw).hexdigest(), "pairs": len(rows),
            "splits": {s: splits.get(s, 0) for s in ("train", "val", "test")}, "kinds": dict(kinds),
            "sources": sources}



def changed_params(current_yaml: str, baseline_yaml: str) -> dict[str, str]:
    """``{dotted key: value}`` of the params file ``current_yaml`` (its text) that differ from
    ``baseline_yaml`` (the committed file's): what ``dvc exp run -S`` set. Empty without a baseline."""
    import yaml

    try:
        current, base = (flatten(yaml.safe_load(text) or {}) for text in (current_yaml, baseline_yaml))
    except yaml.YAMLError:
        return {}
    if not base:
        return {}
    return {k: str(v) for k, v in current.items() if k not in base or base[k] != v}
