"""Build the wheel and sdist, install the wheel alone in a clean venv, enhance a photo with it, print sizes.

What a user who only wants ``lowlight enhance`` gets from a plain ``pip install`` of the wheel,
no extra index: numpy, Pillow, ONNX Runtime, tqdm, PyYAML and the exported weights inside the
wheel; none of the pipeline's (torch, XGBoost, scipy, DVC, MLflow, ...). Exits 1 when any step
fails, when a fitting-side package got installed, or when the venv is over
:data:`MAX_VENV_MB`: CI runs it after the tests (``.ci/run``).

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
MAX_VENV_MB = 300  # issue 25: the plain install, venv included
FITTING_SIDE = ("torch", "xgboost", "scipy", "dvc", "mlflow", "pandas", "matplotlib", "sklearn", "onnx")


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
        found = sh([venv / "bin" / "python", "-c",
                    f"import importlib.util as u; print(','.join(m for m in {FITTING_SIDE!r} if u.find_spec(m)))"
                    ]).stdout.strip()
        print(f"{version} from the wheel enhanced {src.name} in {time.monotonic() - t1:.1f} s (first call), "
              f"{warm:.2f} s (median of 3 later calls: one photo, start-up included); "
              f"fitting-side packages in that venv: [{found}]")
        mb = size_mb(venv) * 2**20 / 1e6
        print(f"venv with the wheel alone (runtime deps, no extra index): {mb:,.0f} MB (limit {MAX_VENV_MB} MB)")
        if found or mb > MAX_VENV_MB:
            print(f"install_size: the plain install {'pulls ' + found if found else f'is over {MAX_VENV_MB} MB'}",
                  file=sys.stderr)
            return 1
        return 0
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
