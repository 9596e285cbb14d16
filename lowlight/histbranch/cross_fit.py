"""Cross-fitting the quantile model, and the CSV of its out-of-fold predictions.

The histmap stage maps every training image with a prediction from a model that
never saw it (nor any pair sharing its scene), so the network trains on mapping
errors as large as the ones it meets at test time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lowlight.atomic import atomic_path
from lowlight.config import QuantilesConfig
from lowlight.errors import DataError
from lowlight.histbranch.quantiles import QuantileModel

__all__ = ["cross_fit", "write_predictions", "read_predictions"]


def cross_fit(x: np.ndarray, y: np.ndarray, groups: Sequence[str], cfg: QuantilesConfig, seed: int = 0,
              threads: int = 0) -> np.ndarray:
    """Out-of-fold predictions ``(N, 3, K)``: each image predicted by a model fitted without its group,
    in ``cfg.cross_fit_folds`` folds.

    The network trains on images mapped with these, so its inputs carry the mapping errors it
    will meet at test time (a model predicting its own training images is far too good).
    Folds are scikit-learn's ``GroupKFold`` (deterministic): pairs that share a scene stay in
    one fold, as they stay in one split.
    """
    from sklearn.model_selection import GroupKFold

    k = min(cfg.cross_fit_folds, len(set(groups)))
    if k < 2:
        raise DataError([f"cross-fitting needs at least 2 groups of training pairs, found {len(set(groups))}; "
                         "set quantiles.cross_fit_folds: 0"], header="cannot cross-fit the quantile model")
    out = np.empty(y.shape, dtype=np.float64)
    for fit_rows, held_out in GroupKFold(n_splits=k).split(x[:, 0, 0], groups=list(groups)):
        fold = QuantileModel(cfg).fit_arrays(x[fit_rows], y[fit_rows], seed=seed, threads=threads)
        out[held_out] = fold.predict_features(x[held_out])
    return out


def write_predictions(path: str | Path, stems: Sequence[str], pred: np.ndarray, levels: np.ndarray) -> None:
    """Percentile predictions as CSV: ``stem, channel, p000 ... p100``, one row per image and channel;
    per-cell predictions ``(N, G, G, 3, K)`` name the cell after the channel (``r:row:col``)."""
    lines = ["stem,channel," + ",".join(f"p{int(p):03d}" for p in levels)]
    for stem, q in zip(stems, pred):
        cells = q.reshape(-1, 3, q.shape[-1])
        g = int(round(np.sqrt(cells.shape[0])))
        for k, cell in enumerate(cells):
            where = "" if q.ndim == 2 else f":{k // g}:{k % g}"
            for c, name in enumerate("rgb"):
                lines.append(f"{stem},{name}{where}," + ",".join(f"{v:.4f}" for v in cell[c]))
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def read_predictions(path: str | Path, levels: int) -> dict[str, np.ndarray]:
    """``{stem: (3, K)}`` (or ``(G, G, 3, K)`` per cell) from :func:`write_predictions`'s CSV; a malformed file is a DataError naming it."""
    import csv

    path = Path(path)
    out: dict[str, np.ndarray] = {}
    try:
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
        parsed = []
        for row in rows[1:]:
            name, *cell = row[1].split(":")
            values = [float(v) for v in row[2:]]
            if len(values) != levels:
                raise ValueError(f"{len(values)} percentiles where {levels} were expected")
            parsed.append((row[0], tuple(int(i) for i in cell), "rgb".index(name), values))
        g = 1 + max((max(cell) for _, cell, _, _ in parsed if cell), default=-1)
        for stem, cell, channel, values in parsed:
            if len(cell) not in ((0,) if g == 0 else (2,)):
                raise ValueError(f"row {stem!r} mixes whole-photo and per-cell predictions")
            shape = (3, levels) if g == 0 else (g, g, 3, levels)
            out.setdefault(stem, np.full(shape, np.nan))[(*cell, channel)] = values
    except (OSError, ValueError, IndexError) as exc:
        raise DataError([f"{path}: not a percentile-prediction file ({exc})"],
                        header="cannot read the out-of-fold predictions") from exc
    bad = [s for s, q in out.items() if not np.all(np.isfinite(q))]
    if bad:
        raise DataError([f"{path}: incomplete or non-finite rows for {', '.join(bad[:5])}"],
                        header="cannot read the out-of-fold predictions")
    return out
