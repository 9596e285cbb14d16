"""What a move of ``lowlight app``'s shadows or exposure slider costs, on CPU (2 threads).

Each photo is enhanced once, up to the shadow lift (``Enhancer.unlifted``); the app keeps that
and its 1280-pixel preview. A shadows or exposure setting then costs, per request:

- a preview (``after.png``): the exposure table and the lift on the preview, the strength blend and the PNG encoding,
  the very calls of ``lowlight.app.server.after``;
- a download: the lift and blend at full size (the file's encoding, the same at any setting, is
  left out).

Printed for a 12-megapixel photo (4240 x 2832) beside the network run the setting no longer
repeats, best of ``--repeats``. The photo is a real dark photo from ``../shared/datasets/dark``
resized to 12 MP when that folder is there, else the synthetic dark image of enhance_speed.py.

    python benchmarks/app_shadows.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from enhance_speed import _best_ms, big_image  # noqa: E402

SIZE = (4240, 2832)  # 12 MP, as enhance_speed.py's curve


def photo(folder: Path) -> tuple[str, np.ndarray]:
    from PIL import Image

    from lowlight.imageio import is_image_file, read_rgb

    if folder.is_dir():
        for f in sorted(p for p in folder.iterdir() if is_image_file(p)):
            rgb = read_rgb(f)
            return f.name, np.asarray(Image.fromarray(rgb).resize(SIZE, Image.Resampling.BICUBIC))
    return "synthetic", big_image(*SIZE)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dark", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "datasets" / "dark")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)

    import onnxruntime  # noqa: F401  (the tool's runtime; imported before numpy work is timed)

    from lowlight.app.jobs import downscale, preview_png
    from lowlight.inference.enhancer import Enhancer
    from lowlight.inference.tiles import apply_strength

    np.seterr(all="ignore")
    name, rgb = photo(args.dark)
    enhancer = Enhancer.pretrained(device="cpu")
    unlifted = enhancer.unlifted(rgb)
    small, small_unlifted = downscale(rgb), downscale(unlifted)
    auto = enhancer.shadow_amount(rgb)
    print(f"{name} at {SIZE[0]} x {SIZE[1]} (preview {small.shape[1]} x {small.shape[0]}), auto amount {auto:.2f}")

    def lift(amount, ev):
        return lambda: enhancer.lift(small_unlifted, small, amount, ev)

    def preview(amount, ev):
        return lambda: preview_png(apply_strength(small, enhancer.lift(small_unlifted, small, amount, ev), 0.8))

    def download(amount, ev):
        return lambda: apply_strength(rgb, enhancer.lift(unlifted, rgb, amount, ev), 0.8)

    network_ms, = _best_ms([lambda: enhancer.unlifted(rgb)], max(1, args.repeats // 2))
    print(f"the photo, enhanced once up to the lift: {network_ms:.0f} ms (what a shadows setting does not repeat)")
    print(f"{'shadows':>8} {'exposure':>9} {'lift on the preview':>20} {'preview, with PNG':>18} {'download':>9}  (ms)")
    settings = [(amount, 0.0) for amount in sorted({round(auto, 2), 0.5, 2.0})] + [(round(auto, 2), 1.0)]
    for amount, ev in settings:
        times = _best_ms([lift(amount, ev), preview(amount, ev), download(amount, ev)], args.repeats)
        print(f"{amount:8.2f} {ev:+9.1f} {times[0]:20.1f} {times[1]:18.1f} {times[2]:9.0f}")


if __name__ == "__main__":
    main()
