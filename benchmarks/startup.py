"""`lowlight enhance` on one 600 x 400 photo: wall time of the whole command and its start-up share.

Runs the real command in a fresh process (as a person would), then, in separate fresh
processes, the imports it pays for before the first pixel (``lowlight.cli.main``, then
``lowlight.inference.enhancer`` with torch, then loading the shipped weights). Start-up is
everything but the enhancement itself, which the command reports.

    python benchmarks/startup.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def _timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, proc.stderr


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rng = np.random.default_rng(0)
        Image.fromarray((rng.random((400, 600, 3)) * 60).astype(np.uint8)).save(tmp / "one.png")
        walls, work = [], []
        for i in range(args.repeats):
            wall, err = _timed([sys.executable, "-m", "lowlight", "enhance", "one.png", "-o", f"out{i}", "-q"], tmp)
            walls.append(wall)
            found = re.search(r"in ([\d.]+) s", err)
            work.append(float(found.group(1)) if found else float("nan"))
        steps = {
            "import lowlight.cli.main": "import lowlight.cli.main",
            "+ import lowlight.inference.enhancer (torch, xgboost)": "import lowlight.cli.main, lowlight.inference.enhancer",
            "+ load the shipped weights": "import lowlight.inference.enhancer as i; i.Enhancer.pretrained()",
        }
        print(f"lowlight enhance, one 600x400 photo, median of {args.repeats} fresh processes:")
        wall, done = statistics.median(walls), statistics.median(work)
        print(f"  whole command {wall:.2f} s, of which enhancing {done:.2f} s: start-up {wall - done:.2f} s "
              f"({(wall - done) / wall:.0%})")
        for name, code in steps.items():
            t = statistics.median(_timed([sys.executable, "-c", code], tmp)[0] for _ in range(args.repeats))
            print(f"  python -c '{code}': {t:.2f} s   ({name})")


if __name__ == "__main__":
    main()
