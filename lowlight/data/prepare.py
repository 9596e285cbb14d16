"""The ``prepare`` stage: build the paired low/high dataset every later stage reads.

Output (layout of :mod:`lowlight.data.pairs`), built in a temporary folder and
swapped in whole by :func:`lowlight.atomic.atomic_dir`::

    out/{train,val,test}/{low,high}/<stem>.png
    out/manifest.csv   split, stem, group, low_source, high_source, low_sha256, high_sha256,
                       width, height, exposure, gain_r, gain_g, gain_b, kind (real | synthetic | identity)
    out/heldout.txt    the extra clean photos no stage trains on, one relative path a line (may be empty)

Sources (``data.source``):

``demo``
    Well-lit colour photos that ship inside scikit-image and scikit-learn (see
    :data:`DEMO_PHOTOS`), darkened by :mod:`lowlight.data.degrade`. The stereo pair
    ``motorcycle_left``/``motorcycle_right`` shows one scene and is one group.
``clean_folder``
    The same degradation applied to every image directly inside ``data.path``
    (e.g. 60 BSDS500 JPEGs).
``lol``
    Real pairs in the layout of LOL (Wei et al., "Deep Retinex Decomposition for
    Low-Light Enhancement", BMVC 2018): ``path/our485/{low,high}`` and optionally
    ``path/eval15/{low,high}``, matched by file stem, in any format Pillow reads.
    ``val`` is carved out of our485; ``test`` is eval15, or empty without it.

Extra training pairs, added to **train only** (val and test stay the primary
source's, so checkpoint selection and reported figures do not move), so the
network also learns to leave well-exposed photos nearly as they are:

* ``data.extra_clean_path``: a folder of clean photos (e.g. BSDS500/train)
  darkened ``data.extra_pairs_per_image`` times each, as ``clean_folder`` does;
  stems ``clean_<photo>_<k>``, group ``clean:<photo>``. The
  ``data.extra_clean_holdout`` photos with the smallest sha256 of their file
  name (:func:`heldout_photos`; independent of the seed, so a benchmark picks the
  same ones) are never written and are listed in ``heldout.txt``.
* ``data.identity_fraction``: ``round(f * train pairs)`` of train's distinct high
  images (any source, chosen with the seed) again as a pair whose low image is
  the high image, bit for bit; stem ``id_<stem>``, same group as its pair.

Splits are made by *group*, never by file: every darkened version of one photo
stays with it, and LOL pairs whose high images have identical decoded pixels
(66 high images serve two or more low shots) form one group, so no reference
image is seen both in training and in validation. Groups are shuffled with the
seed; val/test take whole groups up to their fraction of the pairs (at least
one group each) and train keeps the rest, so train is the largest split.

Decisions about input data:

* Grey, grey+alpha, RGBA, palette, CMYK and 16-bit images are **refused**, not
  converted: silently converting a benchmark changes what is measured. The
  message names each file and how to convert it (e.g. Pillow
  ``Image.open(p).convert("RGB").save(p)``). Pillow reads 16-bit RGB PNG/TIFF
  as 8-bit RGB without a word; that case is caught here from the raw mode.
* Bad data stops the stage with one :class:`~lowlight.errors.DataError` that
  lists every problem found (unreadable, truncated, empty or non-image files,
  unpaired files, size mismatches, refused modes, missing or empty folders,
  links leaving the dataset); nothing is written then.
* Symbolic links are followed when they stay inside the dataset folder and
  refused when they leave it. A small text file whose whole content is a
  relative image path (how git stores a symbolic link when ``core.symlinks`` is
  off, or a copy that does not preserve links) is followed the same way; the
  summary counts such files.

Synthetic pairs are reproducible: each output stem gets its own generator
seeded from ``(seed, sha256(stem))``, so the same seed gives bit-identical
files whatever the thread scheduling, and adding a photo changes no other pair.
"""

from __future__ import annotations

import time
from collections import defaultdict
from importlib.util import find_spec
from pathlib import Path


from lowlight.config import DataConfig
from lowlight.data.dataset_files import DatasetFile, inspect_all, list_images
from lowlight.parallel import default_workers
from lowlight.data.extra_pairs import add_extras, heldout_photos
from lowlight.data.pair_writer import MANIFEST_COLUMNS, Job, summary, write_all
from lowlight.errors import DataError
from lowlight.data.lol import prepare_lol
from lowlight.data.splits import group_by_content, split_groups

__all__ = ["DEMO_PHOTOS", "MANIFEST_COLUMNS", "prepare", "split_groups", "demo_photo_paths", "heldout_photos"]
# MANIFEST_COLUMNS and heldout_photos are re-exported: the layout's and the benchmark's entry points

# (group, package, path inside the package). Left out on purpose: skimage's
# color.png (a colour chart), chessboard/logo (synthetic), hubble_deep_field
# (already dark), retina/ihc (microscopy), grey textures.
DEMO_PHOTOS: tuple[tuple[str, str, str], ...] = (
    ("astronaut", "skimage", "data/astronaut.png"),
    ("coffee", "skimage", "data/coffee.png"),
    ("chelsea", "skimage", "data/chelsea.png"),
    ("rocket", "skimage", "data/rocket.jpg"),
    ("motorcycle", "skimage", "data/motorcycle_left.png"),
    ("motorcycle", "skimage", "data/motorcycle_right.png"),
    ("china", "sklearn", "datasets/images/china.jpg"),
    ("flower", "sklearn", "datasets/images/flower.jpg"),
    ("grace_hopper", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
)

# --------------------------------------------------------------------------- sources


def demo_photo_paths() -> list[tuple[str, Path, str]]:
    """``(group, path, manifest name)`` of the bundled demo photos (paths may be missing)."""
    out = []
    for group, package, rel in DEMO_PHOTOS:
        # find_spec locates the package without importing it (importing sklearn takes ~1 s)
        spec = find_spec(package)
        base = Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations \
            else Path(f"<{package} not installed>")
        out.append((group, base / rel, f"{package}/{rel}"))
    return out


def _clean_photos(cfg: DataConfig, problems: list[str], ignored: list[str]) -> list[tuple[str, DatasetFile]]:
    """``(group, file)`` of the well-lit photos of the demo or clean_folder source."""
    if cfg.source == "demo":
        photos = []
        for group, path, name in demo_photo_paths():
            if not path.is_file():
                problems.append(f"{path}: demo photo {name} is missing; install the pinned scikit-image and "
                                "scikit-learn (requirements.txt)")
                continue
            photos.append((group, DatasetFile(path=path, real=path, rel=name)))
        return photos
    root = Path(cfg.path)
    files = list_images(root, root, problems, ignored, "clean photo")
    return [(stem, f) for stem, f in files.items() if f is not None]


def _prepare_synthetic(cfg: DataConfig, seed: int, out: Path, workers: int) -> dict:
    problems: list[str] = []
    ignored: list[str] = []
    photos = _clean_photos(cfg, problems, ignored)
    infos = inspect_all([f for _, f in photos], workers, problems)
    if problems:
        raise DataError(problems, header=f"data.source {cfg.source}: cannot use these photos")
    stems = {f.path.stem for _, f in photos}
    if len(stems) != len(photos):  # cannot happen in one folder; guards DEMO_PHOTOS edits
        raise DataError("two clean photos share a file stem; output stems would collide")
    # identical photos under different names must not straddle splits
    group_of = group_by_content({f.path.stem: g for g, f in photos},
                                 {f.path.stem: infos[f.path].pixels for _, f in photos})
    sizes: dict[str, int] = defaultdict(int)
    for _, f in photos:
        sizes[group_of[f.path.stem]] += cfg.pairs_per_image
    split_of = split_groups(dict(sizes), cfg.val_fraction, cfg.test_fraction, seed)
    jobs = []
    for _, f in photos:
        g = group_of[f.path.stem]
        jobs.append(Job(split=split_of[g], group=g, high=f, pixels=infos[f.path].pixels,
                         stems=[f"{f.path.stem}_{k}" for k in range(cfg.pairs_per_image)]))
    jobs, heldout, counts, extra_notes = add_extras(cfg, seed, jobs, workers)
    rows = write_all(jobs, out, cfg, seed, workers, heldout)
    notes = []
    if ignored:
        notes.append(f"ignored {len(ignored)} file(s) without an image extension: {', '.join(ignored[:5])}"
                     + (" ..." if len(ignored) > 5 else ""))
    duplicates = len(photos) - len({infos[f.path].pixels for _, f in photos})
    return summary(cfg.source, rows, notes + extra_notes, photos=len(photos), duplicate_photos=duplicates,
                    **counts)


def prepare(cfg: DataConfig, seed: int, out: str | Path, workers: int | None = None) -> dict:
    """Build the prepared dataset in ``out`` (replaced whole, atomically) and return a summary.

    The summary has ``<split>_pairs`` and ``<split>_groups`` counts, ``pairs``,
    ``extra_clean_photos`` (photos darkened into train), ``extra_clean_heldout``,
    ``identity_pairs``, source-specific counts and ``notes`` (human-readable remarks, e.g. an empty
    test split). Raises :class:`DataError` listing every bad file; then nothing
    is written and a previous ``out`` is left as it was.
    """
    out = Path(out)
    # at most 4 threads by default: each holds a decoded full-size photo
    workers = min(4, default_workers()) if workers is None else max(1, workers)
    start = time.perf_counter()
    if cfg.extra_clean_path and not Path(cfg.extra_clean_path).is_dir():  # before the slow checks of the source
        raise DataError(f"{cfg.extra_clean_path}: data.extra_clean_path folder is missing"
                        if not Path(cfg.extra_clean_path).exists()
                        else f"{cfg.extra_clean_path}: data.extra_clean_path should be a folder of photos")
    if cfg.source == "lol":
        summary = prepare_lol(cfg, seed, out, workers)
    elif cfg.source in ("demo", "clean_folder"):
        if cfg.source == "clean_folder" and not Path(cfg.path).is_dir():
            raise DataError(f"{cfg.path}: clean_folder folder is missing" if not Path(cfg.path).exists()
                            else f"{cfg.path}: data.path should be a folder of photos")
        summary = _prepare_synthetic(cfg, seed, out, workers)
    else:  # pragma: no cover - DataConfig's Literal type rules this out
        raise ValueError(f"unknown data.source {cfg.source!r}")
    summary["seconds"] = round(time.perf_counter() - start, 2)
    return summary
