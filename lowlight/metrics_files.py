"""What a stage writes as its figures: quality in the DVC metrics file, timings beside it, untracked.

A metrics file that DVC tracks (and git holds) must be the same bytes when the same
work is redone on the same machine, or every ``make repro`` leaves a dirty tree. So:

* :func:`write_metrics` writes the quality figures rounded to :data:`DIGITS` decimals
  (float noise below that is not a result), and
* the run-time figures (seconds, milliseconds, images per second) go to
  :func:`timings_path` of the metrics file, ``<metrics folder>/timings/<name>.json``,
  which git ignores and DVC does not track; the track stage sends them to MLflow.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lowlight.atomic import write_json

__all__ = ["DIGITS", "rounded", "timings_path", "write_metrics", "read_timings"]

DIGITS = 4  # 0.0001 dB of PSNR, 0.0001 of SSIM: below what any comparison in this project resolves


def rounded(obj: Any, digits: int = DIGITS) -> Any:
    """``obj`` with every float rounded to ``digits`` decimals (dicts and lists walked)."""
    if isinstance(obj, float):
        return round(obj, digits)
    if isinstance(obj, Mapping):
        return {k: rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [rounded(v, digits) for v in obj]
    return obj


def timings_path(metrics_path: str | Path) -> Path:
    """Where the timings of the stage that writes ``metrics_path`` go: ``timings/<same name>`` beside it."""
    metrics_path = Path(metrics_path)
    return metrics_path.parent / "timings" / metrics_path.name


def write_metrics(path: str | Path, metrics: Mapping[str, Any], headline: Iterable[str] = (),
                  timings: Mapping[str, Any] | None = None) -> None:
    """The ``headline`` keys of ``metrics`` (all of them when empty), rounded, to ``path``; ``timings``
    (when given) as they are to :func:`timings_path` of ``path``."""
    keys = list(headline) or list(metrics)
    write_json(path, rounded({k: metrics[k] for k in keys if k in metrics}))
    if timings is not None:
        out = timings_path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json(out, dict(timings))


def read_timings(metrics_dir: str | Path) -> dict[str, float]:
    """``{"<stage file stem>.<key>": number}`` from ``<metrics_dir>/timings/*.json``; missing is empty."""
    out: dict[str, float] = {}
    for path in sorted((Path(metrics_dir) / "timings").glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # a timing is a nicety: an unreadable one is left out, never a failed run
        for key, value in data.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[f"{path.stem}.{key}"] = float(value)
    return out
