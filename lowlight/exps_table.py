"""`dvc exp show` in a terminal: the params that differ, then the headline metrics, short headers.

``dvc exp show`` puts every metric before every param and every code dependency in a column,
so with a handful of stages it is wider than any terminal and the params it was asked to
compare fall off the right edge. ``make exps`` asks it for CSV and this module prints the few
columns people compare::

    dvc exp show --csv | python -m lowlight.exps_table [--params params.yaml]

A column is a param when its name is a key of ``params.yaml`` (flattened with dots, as DVC
names them); it is shown only when its value differs between the rows. The metrics shown
are :data:`HEADLINE`, under short names, whether they moved or not.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import yaml

__all__ = ["HEADLINE", "param_keys", "render"]

# DVC's column name -> the header printed; the order is the table's
HEADLINE = {
    "pipeline.psnr": "PSNR",
    "pipeline.ssim": "SSIM",
    "pipeline.psnr_well_lit": "well-lit",
    "histmap.psnr": "histmap",
    "best_val_psnr": "val PSNR",
    "best_epoch": "epoch",
    "val_mae": "val MAE",
}


def param_keys(params: dict, prefix: str = "") -> set[str]:
    """``params.yaml``'s leaf keys, dotted as DVC names them (``train.lr``)."""
    keys: set[str] = set()
    for k, v in params.items():
        name = f"{prefix}{k}"
        keys |= param_keys(v, f"{name}.") if isinstance(v, dict) else {name}
    return keys


def _number(text: str, digits: int) -> str:
    try:
        value = float(text)
    except ValueError:
        return text or "-"
    return str(int(value)) if value.is_integer() and abs(value) < 1e6 else f"{value:.{digits}f}"


def render(csv_text: str, params: set[str], digits: int = 4) -> str:
    """The table ``make exps`` prints, from ``dvc exp show --csv``'s output."""
    rows = list(csv.DictReader(csv_text.splitlines()))
    if not rows:
        return "no experiments (run `dvc exp run -S key=value` first)"
    columns = list(rows[0])
    changed = [c for c in columns if c in params and len({r[c] for r in rows}) > 1]
    metrics = [c for c in HEADLINE if c in columns]
    header = ["experiment", *changed, *(HEADLINE[c] for c in metrics)]
    body = [[r.get("Experiment") or r.get("rev", ""), *(r[c] for c in changed),
             *(_number(r[c], digits) for c in metrics)] for r in rows]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = []
    for row in [header, *body]:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    if not changed:
        lines.append("(no param differs between these rows)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--precision", type=int, default=4)
    args = ap.parse_args(argv)
    try:
        params = yaml.safe_load(args.params.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        print(f"{args.params}: cannot read the params file ({exc}); run from the repository root", file=sys.stderr)
        return 2
    print(render(sys.stdin.read(), param_keys(params), args.precision))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
