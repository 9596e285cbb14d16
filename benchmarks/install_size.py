"""Build the wheel and sdist, install the wheel alone in a clean venv, enhance a photo with it, print sizes.

What a user who only wants ``lowlight enhance`` gets: the runtime dependencies and the
weights inside the wheel, none of the pipeline's (DVC, MLflow, pandas, matplotlib, ...).
torch is installed first as its CPU build (``pip install torch==2.13.0``: on this
project's machines pip finds that release's CPU wheel on disk, and nothing here asks
PyTorch's own index; users elsewhere pass ``--index-url`` of PyTorch's CPU wheels, see the
README), so the wheel's ``torch>=2.11`` is already met. Exits 1 when any step fails:
CI runs it after the tests (``.ci/run``).

    python benchmarks/install_size.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sh(cmd, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if done.returncode:
        raise SystemExit(f"install_size: {' '.join(map(str, cmd))} failed ({done.returncode}):\n"
                         f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", type=Path, help="work in this folder and leave it (default: a temp folder)")
    args = ap.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="lowlight-wheel-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.monotonic()
        dist = work / "dist"
        shutil.rmtree(dist, ignore_errors=True)
        # no flags: the sdist first, then the wheel from the unpacked sdist (proves the sdist is complete and
        # leaves no build/ folder in the checkout)
        sh([sys.executable, "-m", "build", "--outdir", dist, ROOT])
        wheel = next(dist.glob("lowlight-*.whl"))
        sdist = next(dist.glob("lowlight-*.tar.gz"))
        print(f"built {wheel.name} ({wheel.stat().st_size / 2**20:.1f} MiB) and {sdist.name} "
              f"({sdist.stat().st_size / 2**20:.1f} MiB) in {time.monotonic() - t0:.0f} s")
        venv = work / "venv"
        shutil.rmtree(venv, ignore_errors=True)
        sh([sys.executable, "-m", "venv", venv])
        pip = [venv / "bin" / "python", "-m", "pip", "install", "-q"]
        sh([*pip, "torch==2.13.0"])  # the CPU build (see the docstring)
        sh([*pip, wheel])
        version = sh([venv / "bin" / "lowlight", "--version"]).stdout.strip()
        from PIL import Image
        import numpy as np

        src = work / "photo" / "dark.jpg"
        src.parent.mkdir(exist_ok=True)
        Image.fromarray(np.random.default_rng(0).integers(0, 60, (240, 320, 3), dtype=np.uint8)).save(src)
        out = work / "out"
        shutil.rmtree(out, ignore_errors=True)
        t1 = time.monotonic()
        sh([venv / "bin" / "lowlight", "enhance", src, "-o", out, "-q"], cwd=work)
        with Image.open(out / "dark.jpg") as im:
            assert im.size == (320, 240), im.size
        walls = []
        for _ in range(3):  # warm (bytecode compiled, files in the page cache): what a user sees after the first
            t2 = time.monotonic()
            sh([venv / "bin" / "lowlight", "enhance", src, "-o", out, "-q", "--overwrite"], cwd=work)
            walls.append(time.monotonic() - t2)
        warm = sorted(walls)[1]
        missing = sh([venv / "bin" / "python", "-c",
                      "import importlib.util as u; print([m for m in ('dvc', 'mlflow', 'pandas', 'matplotlib') "
                      "if u.find_spec(m)])"]).stdout.strip()
        print(f"{version} from the wheel enhanced {src.name} in {time.monotonic() - t1:.1f} s (first call), "
              f"{warm:.2f} s (median of 3 later calls: one photo, start-up included); "
              f"pipeline packages in that venv: {missing}")
        print(f"venv with the wheel alone (CPU torch + runtime deps): {size_mb(venv):,.0f} MiB")
        full = ROOT / ".venv"
        if full.is_dir():
            print(f"the project's full venv (make setup: pipeline + dev): {size_mb(full):,.0f} MiB")
        return 0
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
