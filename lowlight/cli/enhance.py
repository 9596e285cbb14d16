"""``lowlight enhance INPUT... -o OUTDIR``: enhance people's own photos.

Inputs are files, folders (``--recursive`` to descend) and globs. Each output
keeps the input's path relative to the folder (or the glob's leading folder, or
the file name) it came from. Before anything is written the whole batch is
planned (lowlight.cli.output_plan): no input is ever written, whatever the flags,
no two inputs share an output, and existing outputs are replaced only with
``--overwrite`` (without it they count as already done, so an interrupted batch
just finishes). Linked folders inside folders and globs are not followed.

Formats: PNG, JPEG, WebP, TIFF, BMP, and AVIF and JPEG 2000 where Pillow has
their codecs, are read and written as what their extension says; GIF is read
only (use --format). Animated or multi-page files, and images over --max-pixels
(checked from the header, before decoding), are refused by name. Files of other
kinds in a folder are counted in one line.

EXIF (with the orientation reset, as the pixels are turned upright) and the ICC
colour profile of each photo are written into its output where the format holds
them (JPEG, PNG, WebP, TIFF, AVIF).

A bad file is reported with its name and skipped; the command carries on.
Exit status: 0 all done (outputs already there count as done), 1 some input
failed or was refused, 2 a usage error (bad option, missing weights, no CUDA
for --device cuda).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import numpy as np

from lowlight.cli.helptext import plain
from lowlight.errors import UserError
from lowlight.imageio import MAX_PIXELS
from lowlight.cli.output_plan import Job, plan_outputs
from lowlight.inference.tiles import TILE_PIXELS

__all__ = ["add_parser", "run", "Job", "plan_jobs"]

FORMATS = {"png": ".png", "jpg": ".jpg", "jpeg": ".jpg", "webp": ".webp", "tiff": ".tif", "tif": ".tif",
           "bmp": ".bmp"}


def add_parser(sub) -> None:
    p = sub.add_parser("enhance", help="enhance dark photos", description=plain(__doc__),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
    p.add_argument("-o", "--out", required=True, type=Path, help="output folder")
    p.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders (and let ** in a glob "
                   "span folders); linked folders are not followed")
    p.add_argument("--format", choices=sorted(FORMATS), help="output format (default: the input's; needed for "
                   ".gif inputs, which lowlight reads but does not write)")
    p.add_argument("--quality", type=int, metavar="Q", help="JPEG, WebP and AVIF quality, 1-100 (default: 95 for "
                   "JPEG and AVIF, lossless WebP)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (inputs are never replaced)")
    p.add_argument("--strength", type=float, default=1.0,
                   help="0: the input unchanged, 1: the full enhancement, up to 1.5: brighter still; blended "
                        "in 8-bit space (default: %(default)s)")
    p.add_argument("--shadows", type=_shadows_arg, default=None, metavar="S",
                   help="lift the shadows of dark regions, highlights held: 0 off, 1 the usual amount, up to 2 "
                        "(default: auto, which lifts only photos with many crushed pixels)")
    p.add_argument("--exposure", type=_number_arg, default=0.0, metavar="EV",
                   help="exposure compensation in stops, as a raw converter's: 1 doubles the light, -1 halves it, "
                        "from -3 to 3, highlights rolled off so white stays white; applied before the shadow lift "
                        "(default: 0, the tool's own exposure)")
    p.add_argument("--keep-black", action="store_true",
                   help="after the shadow lift's gain, leave pitch-black regions (a night sky with no signal) black "
                        "instead of raising them to a deep-shadow floor (level 14 of 255)")
    p.add_argument("--max-pixels", type=int, metavar="N",
                   help=f"refuse images with more pixels, from the header before decoding (default: {MAX_PIXELS}; "
                        "enhancing takes about 30 bytes of memory a pixel); also raises Pillow's own limit")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"], help="default: %(default)s")
    p.add_argument("--weights", type=Path, help="network, exported .onnx (default: the shipped one; a .pt checkpoint needs PyTorch)")
    p.add_argument("--quantile-model", type=Path, help="quantile model, exported .onnx (default: the shipped one; a .ubj needs XGBoost)")
    p.add_argument("--compare", action="store_true", help="also write a side-by-side picture (low | enhanced) of "
                   "each image, named <output name>.compare.png, into --compare-dir")
    p.add_argument("--compare-dir", type=Path, help="folder for the --compare pictures; implies --compare (default: OUT.compare, beside "
                   "OUT, never inside it: a later `lowlight evaluate OUT REF` or `lowlight enhance OUT` must not "
                   "take them for outputs or photos)")
    p.add_argument("--tile-pixels", type=int, default=TILE_PIXELS,
                   help="images with more pixels run through the network in tiles (bounded memory; "
                        "default: %(default)s)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def _shadows_arg(text: str):
    """``auto`` (None) or a number; anything else is kept as text for check_shadows to refuse in one line."""
    return None if text.strip().lower() == "auto" else _number_arg(text)


def _number_arg(text: str):
    """A number, or the text as it is for the option's check to refuse in one line."""
    try:
        return float(text)
    except ValueError:
        return text


def plan_jobs(inputs: list[str], out: Path, recursive: bool = False, fmt: str | None = None,
              overwrite: bool = False) -> tuple[list[Job], list[str]]:
    """(jobs, problems) of :func:`lowlight.cli.output_plan.plan_outputs`, for callers that only need those."""
    plan = plan_outputs(inputs, out, recursive=recursive, suffix=FORMATS[fmt] if fmt else None, overwrite=overwrite)
    return plan.jobs, plan.skipped


def default_compare_dir(out: Path) -> Path:
    """``OUT.compare`` beside ``OUT``."""
    out = Path(out)
    if out.name in ("", ".", ".."):
        out = out.resolve()
    if not out.name:
        raise ValueError(f"-o {out}: give --compare-dir for the compare pictures")
    return out.with_name(out.name + ".compare")


def _side_by_side(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    gap = np.full((a.shape[0], 8, 3), 255, dtype=np.uint8)
    return np.concatenate([a, gap, b], axis=1)


def _check_options(args) -> tuple[Path, Path]:
    """Usage errors, before any work: the numbers, the device and the weights files."""
    from lowlight.inference.enhancer import (EnhanceError, check_exposure, check_shadows, check_strength,
                                            resolve_device, resolve_weights)

    check_strength(args.strength)
    check_shadows(args.shadows)
    check_exposure(args.exposure)
    if args.quality is not None and not 1 <= args.quality <= 100:
        raise EnhanceError(f"--quality {args.quality}: must be from 1 to 100")
    for flag, value in (("--max-pixels", args.max_pixels), ("--tile-pixels", args.tile_pixels)):
        if value is not None and value < 1:
            raise EnhanceError(f"{flag} {value}: must be a positive number of pixels")
    resolve_device(args.device)
    return resolve_weights(args.quantile_model, args.weights)


def _load_enhancer(args, quantile_model: Path, weights: Path):
    from lowlight.cli.tile_progress import TileBar
    from lowlight.inference.enhancer import Enhancer

    return Enhancer.from_files(quantile_model, weights, device=args.device, tile_pixels=args.tile_pixels,
                               shadows=args.shadows, exposure=args.exposure, keep_black=args.keep_black,
                               progress=TileBar(disable=args.quiet))


def _plan(args):
    """The batch's plan, its notes and skips printed; a plan with no jobs is returned as it is."""
    from lowlight.cli.output_plan import PlanError
    from lowlight.inference.enhancer import EnhanceError

    compare_dir = None
    if args.compare or args.compare_dir is not None:  # --compare-dir implies --compare
        try:
            compare_dir = args.compare_dir or default_compare_dir(args.out)
        except ValueError as exc:
            raise EnhanceError(str(exc)) from exc
    try:
        plan = plan_outputs(args.inputs, args.out, recursive=args.recursive,
                            suffix=FORMATS[args.format] if args.format else None, overwrite=args.overwrite,
                            compare_dir=compare_dir)
    except PlanError as exc:
        raise EnhanceError(str(exc)) from exc
    for note in plan.notes:
        print(f"lowlight enhance: {note}", file=sys.stderr)
    for p in plan.skipped:
        print(f"lowlight enhance: skipped {p}", file=sys.stderr)
    return plan


def _enhance_one(job: Job, enhancer, args, max_pixels: int) -> None:
    """Decode (checked: empty, truncated, too many pixels, animated, not an image), enhance, write."""
    from lowlight.image_writer import save_photo, write_image
    from lowlight.imageio import from_pil, open_image, photo_metadata, to_pil
    from lowlight.inference.enhancer import enhance
    from lowlight.metadata import marked_pnginfo

    raw = open_image(job.src, max_pixels=max_pixels)
    out_img = enhance(raw, enhancer=enhancer, strength=args.strength, max_pixels=None)  # the API's own path
    if job.dst is not None:
        save_photo(out_img, job.dst, photo_metadata(raw), args.quality)
    if job.compare is not None:
        low_rgb = from_pil(raw).rgb
        enhanced_rgb = np.asarray(out_img.convert("RGB"))
        if enhanced_rgb.shape != low_rgb.shape:  # 16-bit grey comes back as I;16
            enhanced_rgb = np.asarray(to_pil(enhanced_rgb, from_pil(raw)).convert("RGB"))
        write_image(job.compare, _side_by_side(low_rgb, enhanced_rgb), pnginfo=marked_pnginfo())


def run(args) -> int:
    # torch, XGBoost and the models are some million objects that live as long as the command.
    # Building them with the cyclic collector off spares the collections that would walk them
    # again and again (0.3 s of importing torch: benchmarks/startup.py); the collector is back
    # on, as it was, before the first photo. (The program's own exit skips the final walk over
    # them: lowlight.cli.main.console.)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        qm, net = _check_options(args)
        plan = _plan(args)
        enhancer = _load_enhancer(args, qm, net) if plan.jobs else None
    finally:
        if was_enabled:
            gc.enable()
    return _enhance_all(args, plan, enhancer)


def _enhance_all(args, plan, enhancer) -> int:
    from PIL import Image
    from tqdm import tqdm

    already = f"{len(plan.done)} already done (use --overwrite to redo)" if plan.done else ""
    if not plan.jobs:
        print("lowlight enhance: nothing to do" + (f": {already}" if already else "")
              + (f" ({len(plan.skipped)} problem(s))" if plan.skipped else ""), file=sys.stderr)
        return 1 if plan.skipped else 0

    from lowlight.atomic import remove_stale_temps

    stale = remove_stale_temps(plan.writes)  # what a killed run (kill -9, power cut) left beside these outputs
    if stale:
        print(f"lowlight enhance: removed {len(stale)} temporary file{'s' if len(stale) != 1 else ''} left by an "
              f"interrupted run (e.g. {stale[0]})", file=sys.stderr)
    failed = list(plan.skipped)
    done = 0
    start = time.perf_counter()
    max_pixels = MAX_PIXELS if args.max_pixels is None else args.max_pixels
    pillow_limit = Image.MAX_IMAGE_PIXELS
    if args.max_pixels is not None and pillow_limit is not None and args.max_pixels > pillow_limit:
        Image.MAX_IMAGE_PIXELS = args.max_pixels  # the limit asked for; Pillow's own would refuse first
    bar = tqdm(plan.jobs, unit="img", disable=args.quiet or len(plan.jobs) < 2, file=sys.stderr)
    try:
        for job in bar:
            bar.set_postfix_str(job.src.name, refresh=False)
            try:
                _enhance_one(job, enhancer, args, max_pixels)
                done += 1
            except (UserError, OSError, ValueError) as exc:  # imageio turns every decoder failure into ImageError
                msg = str(exc) if str(job.src) in str(exc) else f"{job.src}: {exc}"
                failed.append(msg)
                tqdm.write(f"lowlight enhance: skipped {msg}", file=sys.stderr)
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_limit
    secs = time.perf_counter() - start
    print(f"lowlight enhance: {done} enhanced into {args.out} in {secs:.1f} s"
          + (f", {already}" if already else "")
          + (f", {len(failed)} failed or skipped" if failed else ""), file=sys.stderr)
    return 1 if failed else 0
