"""``lowlight enhance INPUT... -o OUTDIR``: enhance people's own photos.

Inputs are files, folders (``--recursive`` to descend) and globs. Each output
keeps the input's path relative to the folder (or the file name) it came from.
Inputs are never overwritten and existing outputs only with ``--overwrite``.
A bad file is reported with its name and skipped; the command carries on and
exits 1 at the end with a summary.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .imageio import IMAGE_EXTENSIONS, ImageError, is_image_file

__all__ = ["add_parser", "run", "Job", "plan_jobs"]

FORMATS = {"png": ".png", "jpg": ".jpg", "jpeg": ".jpg", "webp": ".webp", "tiff": ".tif", "tif": ".tif",
           "bmp": ".bmp"}


def add_parser(sub) -> None:
    p = sub.add_parser("enhance", help="enhance dark photos", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
    p.add_argument("-o", "--out", required=True, type=Path, help="output folder")
    p.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders")
    p.add_argument("--format", choices=sorted(FORMATS), help="output format (default: the input's)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--weights", type=Path, help="network checkpoint (default: the shipped one)")
    p.add_argument("--quantile-model", type=Path, help="quantile model (default: the shipped one)")
    p.add_argument("--compare", action="store_true", help="also write <name>.compare.png: low | enhanced")
    p.add_argument("--tile-pixels", type=int, default=1024 * 1024,
                   help="images with more pixels run through the network in tiles (bounded memory)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path


def _expand(arg: str, recursive: bool) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(file, path relative to its root) for one argument, and problems found."""
    path = Path(arg)
    if path.is_dir():
        pattern = "**/*" if recursive else "*"
        files = sorted(p for p in path.glob(pattern) if p.is_file() and is_image_file(p)
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not files:
            return [], [f"{arg}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in this folder"
                        + ("" if recursive else " (use --recursive for sub-folders)")]
        return [(f, f.relative_to(path)) for f in files], []
    if path.is_file():
        return [(path, Path(path.name))], []
    matches = sorted(glob.glob(arg, recursive=recursive))
    if matches:
        out, problems = [], []
        for m in matches:
            sub, prob = _expand(m, recursive) if Path(m).is_dir() else ([(Path(m), Path(Path(m).name))], [])
            out += sub
            problems += prob
        return out, problems
    return [], [f"{arg}: no such file or folder"]


def plan_jobs(inputs: list[str], out: Path, recursive: bool = False, fmt: str | None = None,
              overwrite: bool = False) -> tuple[list[Job], list[str]]:
    jobs, problems, seen = [], [], {}
    for arg in inputs:
        found, probs = _expand(arg, recursive)
        problems += probs
        for src, rel in found:
            dst = out / rel
            if fmt:
                dst = dst.with_suffix(FORMATS[fmt])
            key = dst.resolve()
            if key == src.resolve():
                problems.append(f"{src}: output would overwrite the input; choose another -o folder")
                continue
            if key in seen:
                problems.append(f"{src}: same output {dst} as {seen[key]}; enhance them into separate folders")
                continue
            if dst.exists() and not overwrite:
                problems.append(f"{src}: output {dst} exists (use --overwrite to replace it)")
                continue
            seen[key] = src
            jobs.append(Job(src, dst))
    return jobs, problems


def _side_by_side(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    gap = np.full((a.shape[0], 8, 3), 255, dtype=np.uint8)
    return np.concatenate([a, gap, b], axis=1)


def run(args) -> int:
    from tqdm import tqdm

    from .inference import Enhancer, default_weights, enhance
    from .imageio import from_pil, open_image, to_pil, write_image

    jobs, problems = plan_jobs(args.inputs, args.out, args.recursive, args.format, args.overwrite)
    for p in problems:
        print(f"lowlight enhance: skipped {p}", file=sys.stderr)
    if not jobs:
        print(f"lowlight enhance: nothing to do ({len(problems)} problem(s))", file=sys.stderr)
        return 1

    qm, net = args.quantile_model, args.weights
    if qm is None or net is None:
        shipped_q, shipped_n = default_weights()
        qm, net = qm or shipped_q, net or shipped_n
    enhancer = Enhancer.from_files(qm, net, device=args.device, tile_pixels=args.tile_pixels)

    failed = list(problems)
    done = 0
    start = time.perf_counter()
    bar = tqdm(jobs, unit="img", disable=args.quiet or len(jobs) < 2, file=sys.stderr)
    for job in bar:
        bar.set_postfix_str(job.src.name, refresh=False)
        try:
            raw = open_image(job.src)  # checked decode: empty, truncated, bomb, not an image
            out_img = enhance(raw, enhancer=enhancer)  # the API's own path: identical pixels
            _save(out_img, job.dst)
            if args.compare:
                low_rgb = from_pil(raw).rgb
                enhanced_rgb = np.asarray(out_img.convert("RGB"))
                if enhanced_rgb.shape != low_rgb.shape:  # 16-bit grey comes back as I;16
                    enhanced_rgb = np.asarray(to_pil(enhanced_rgb, from_pil(raw)).convert("RGB"))
                write_image(job.dst.with_name(job.dst.stem + ".compare.png"),
                            _side_by_side(low_rgb, enhanced_rgb))
            done += 1
        except (ImageError, OSError, ValueError) as exc:
            msg = str(exc) if str(job.src) in str(exc) else f"{job.src}: {exc}"
            failed.append(msg)
            tqdm.write(f"lowlight enhance: skipped {msg}", file=sys.stderr)
    secs = time.perf_counter() - start
    print(f"lowlight enhance: {done} enhanced into {args.out} in {secs:.1f} s"
          + (f", {len(failed)} failed or skipped" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


def _save(img, dst: Path) -> None:
    from .atomic import atomic_path

    fmt_by_ext = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".tif": "TIFF",
                  ".tiff": "TIFF", ".bmp": "BMP"}
    fmt = fmt_by_ext.get(dst.suffix.lower(), "PNG")
    if fmt in ("JPEG", "BMP") and img.mode in ("RGBA", "LA"):
        img = img.convert("RGB" if img.mode == "RGBA" else "L")  # these formats have no alpha
    if fmt == "JPEG" and img.mode == "I;16":
        img = img.point(lambda v: v / 257).convert("L")
    kwargs = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    if fmt == "WEBP":
        kwargs = {"lossless": True}
    with atomic_path(dst) as tmp:
        img.save(tmp, format=fmt, **kwargs)
