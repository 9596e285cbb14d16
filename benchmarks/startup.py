"""`lowlight enhance` on one 600 x 400 photo: wall time of the whole command against the start of
``python -c "import numpy; from PIL import Image"`` (issue 25: at most :data:`MAX_RATIO` times).

Runs the real command in a fresh process (as a person would), the baseline in another, then, in
separate fresh processes, the phases the command pays for before the first pixel, in its own
order and with its collector settings (import ONNX Runtime, open the shipped ONNX pair); the rest
is the interpreter, the command line, writing and exit. Exits 1 over the ratio.

    python benchmarks/startup.py [--repeats 5]
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


MAX_RATIO = 10.0
BASELINE = [sys.executable, "-c", "import numpy; from PIL import Image"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rng = np.random.default_rng(0)
        Image.fromarray((rng.random((400, 600, 3)) * 60).astype(np.uint8)).save(tmp / "one.png")
        walls, work, base = [], [], []
        for i in range(args.repeats):  # in turn, so that a busy spell costs both alike
            base.append(_timed(BASELINE, tmp)[0])
            wall, err = _timed([sys.executable, "-m", "lowlight", "enhance", "one.png", "-o", f"out{i}", "-q"], tmp)
            walls.append(wall)
            found = re.search(r"in ([\d.]+) s", err)
            work.append(float(found.group(1)) if found else float("nan"))
        wall, done, baseline = statistics.median(walls), statistics.median(work), statistics.median(base)
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
        ratio = wall / baseline
        print(f"  against `python -c \"import numpy; from PIL import Image\"` ({baseline:.2f} s): {ratio:.1f}x "
              f"(limit {MAX_RATIO:g}x)")
        return 0 if ratio <= MAX_RATIO else 1


# the command's own order (lowlight/cli/enhance.py: run): the collector off while building
_PHASES = """
import gc, json, time
gc.disable()
t = [time.perf_counter()]
import numpy, PIL.Image
t.append(time.perf_counter())
import onnxruntime
t.append(time.perf_counter())
from lowlight.inference.enhancer import Enhancer, default_weights
t.append(time.perf_counter())
Enhancer.from_files(*default_weights())
t.append(time.perf_counter())
gc.freeze()
names = ["import numpy and Pillow", "import onnxruntime", "import lowlight's enhancer", "open the shipped ONNX pair"]
print(json.dumps({n: b - a for n, a, b in zip(names, t, t[1:])}))
"""


if __name__ == "__main__":
    raise SystemExit(main())
