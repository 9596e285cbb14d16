"""DVC stage ``prepare``: build the paired low/high dataset (see lowlight.data.prepare)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# this checkout's lowlight, not an installed one: `dvc exp run --temp` and queued experiments run a copy
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lowlight.config import load_params
from lowlight.errors import report_user_errors
from lowlight.data.prepare import prepare


@report_user_errors("prepare")
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--out", type=Path, required=True, help="prepared dataset folder (replaced whole)")
    args = ap.parse_args(argv)
    p = load_params(args.params)
    summary = prepare(p.data, seed=p.base.seed, out=args.out)
    counts = ", ".join(f"{s} {summary[f'{s}_pairs']} pairs / {summary[f'{s}_groups']} groups"
                       for s in ("train", "val", "test"))
    print(f"prepare: {summary['source']}: {counts} -> {args.out} ({summary['seconds']} s)")
    for note in summary["notes"]:
        print(f"prepare: note: {note}")


if __name__ == "__main__":
    main()
