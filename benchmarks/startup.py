"""`lowlight enhance` on one 600 x 400 photo: wall time of the whole command and its start-up share.

Runs the real command in a fresh process (as a person would), then, in separate fresh
processes, the phases it pays for before the first pixel, in its own order and with its
collector settings (import torch, import XGBoost without scikit-learn and pandas, load the
shipped weights); the rest is the interpreter, the command line, writing and exit. Start-up
is everything but the enhancement itself, which the command reports (to 0.1 s).

    python benchmarks/startup.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
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
        wall, done = statistics.median(walls), statistics.median(work)
        phases = [json.loads(subprocess.run([sys.executable, "-c", _PHASES], cwd=tmp, capture_output=True, text=True,
                                            check=True).stdout) for _ in range(args.repeats)]
        print(f"lowlight enhance, one 600x400 photo, median of {args.repeats} fresh processes:")
        print(f"  whole command {wall:.2f} s, of which enhancing {done:.2f} s: start-up {wall - done:.2f} s "
              f"({(wall - done) / wall:.0%})")
        print("  start-up phases, as the command runs them (median):")
        for name in phases[0]:
            print(f"    {name:<42} {statistics.median(p[name] for p in phases):.2f} s")
        rest = wall - done - sum(statistics.median(p[name] for p in phases) for name in phases[0])
        print(f"    {'interpreter, command line, writing, exit':<42} {rest:.2f} s")


# the command's own order (lowlight/cli/enhance.py: run): the collector off while building
_PHASES = """
import gc, json, time
gc.disable()
t = [time.perf_counter()]
import torch
t.append(time.perf_counter())
from lowlight.histbranch.xgboost_import import import_xgboost_lean
import_xgboost_lean()
t.append(time.perf_counter())
from lowlight.inference.enhancer import Enhancer, default_weights
Enhancer.from_files(*default_weights())
t.append(time.perf_counter())
gc.freeze()
names = ["import torch", "import xgboost (lean)", "load the shipped weights"]
print(json.dumps({n: b - a for n, a, b in zip(names, t, t[1:])}))
"""


if __name__ == "__main__":
    main()
