"""The ``prepare`` stage: build the paired low/high dataset every later stage reads.

Output (layout of :mod:`lowlight.pairs`), built in a temporary folder and
swapped in whole by :func:`lowlight.atomic.atomic_dir`::

    out/{train,val,test}/{low,high}/<stem>.png
    out/manifest.csv   split, stem, group, low_source, high_source, low_sha256, high_sha256,
                       width, height, exposure, gain_r, gain_g, gain_b, kind (real | synthetic | identity)
    out/heldout.txt    the extra clean photos no stage trains on, one relative path a line (may be empty)

Sources (``data.source``):

``demo``
    Well-lit colour photos that ship inside scikit-image and scikit-learn (see
    :data:`DEMO_PHOTOS`), darkened by :mod:`lowlight.degrade`. The stereo pair
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

import glob
import os
import time
from collections import defaultdict
from importlib.util import find_spec
from pathlib import Path


from .config import DataConfig
from .dataset_files import DatasetFile, default_workers, inspect_all, list_images
from .extra_pairs import add_extras, heldout_photos
from .pair_writer import MANIFEST_COLUMNS, Job, rng_for, summary, write_all
from .errors import DataError
from .pairs import natural_key

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
)

# --------------------------------------------------------------------------- splitting


def split_groups(sizes: dict[str, int], val_fraction: float, test_fraction: float,
                 seed: int) -> dict[str, str]:
    """Assign whole groups to train/val/test; ``sizes`` maps group -> number of pairs.

    Groups are shuffled with ``seed``; val then test take groups while they stay
    within ``fraction * total`` pairs (each takes at least its smallest
    remaining group when its fraction is > 0); train keeps the rest.
    """
    keys = sorted(sizes, key=natural_key)
    wanted = [s for s, f in (("val", val_fraction), ("test", test_fraction)) if f > 0]
    if len(keys) < len(wanted) + 1:
        raise DataError(f"{len(keys)} group(s) of photos cannot fill train, {', '.join(wanted)} with at least "
                        "one each; add photos or set data.test_fraction: 0")
    order = [keys[i] for i in rng_for(seed, "split").permutation(len(keys))]
    total = sum(sizes.values())
    assign: dict[str, str] = {}
    remaining = order
    for split, frac in (("val", val_fraction), ("test", test_fraction)):
        if frac <= 0:
            continue
        target, count, rest = frac * total, 0, []
        for k in remaining:
            if count + sizes[k] <= target:
                assign[k] = split
                count += sizes[k]
            else:
                rest.append(k)
        if count == 0:  # every group is larger than the target: take the smallest one
            k = min(rest, key=lambda g: sizes[g])
            assign[k] = split
            rest.remove(k)
        remaining = rest
    if not remaining:
        raise DataError("no group of photos left for train after val/test; add photos or lower the fractions")
    for k in remaining:
        assign[k] = "train"
    return assign


def _group_by_content(groups: dict[str, str], pixels: dict[str, str]) -> dict[str, str]:
    """Merge groups that share identical pixels: item -> representative group name."""
    parent: dict[str, str] = {}

    def find(g):
        while parent.setdefault(g, g) != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    first_with: dict[str, str] = {}
    for item in sorted(groups, key=natural_key):
        g = find(groups[item])
        h = pixels[item]
        if h in first_with:
            a, b = sorted((find(first_with[h]), g), key=natural_key)
            parent[b] = a
        else:
            first_with[h] = g
    return {item: find(groups[item]) for item in groups}


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
    group_of = _group_by_content({f.path.stem: g for g, f in photos},
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


def _listed(f: DatasetFile | None, folder: Path, stem: str) -> str:
    return str(f.path) if f is not None else str(next(folder.glob(f"{glob.escape(stem)}.*"), folder / stem))


def _pair_files(root: Path, part: str, problems: list[str], ignored: list[str]) -> list[tuple[str, DatasetFile, DatasetFile]]:
    low = list_images(root / part / "low", root, problems, ignored, f"{part} low")
    high = list_images(root / part / "high", root, problems, ignored, f"{part} high")
    if not low or not high:
        return []
    pairs = []
    for stem in sorted(set(low) | set(high), key=natural_key):
        if stem not in high:
            problems.append(f"{_listed(low[stem], root / part / 'low', stem)}: low image without a high image "
                            f"(expected {root / part / 'high' / stem}.<ext>)")
        elif stem not in low:
            problems.append(f"{_listed(high[stem], root / part / 'high', stem)}: high image without a low image "
                            f"(expected {root / part / 'low' / stem}.<ext>)")
        elif low[stem] is not None and high[stem] is not None:
            pairs.append((stem, low[stem], high[stem]))
    return pairs


def _prepare_lol(cfg: DataConfig, seed: int, out: Path, workers: int) -> dict:
    root = Path(cfg.path)
    problems: list[str] = []
    ignored: list[str] = []
    if not root.is_dir():
        raise DataError(f"{root}: LOL folder is missing (expected {root}/our485/{{low,high}})")
    train_pairs = _pair_files(root, "our485", problems, ignored)
    has_eval = (root / "eval15").exists()
    test_pairs = _pair_files(root, "eval15", problems, ignored) if has_eval else []
    all_pairs = train_pairs + test_pairs
    files = [f for _, lo, hi in all_pairs for f in (lo, hi)]
    infos = inspect_all(files, workers, problems)
    for _, lo, hi in all_pairs:
        a, b = infos.get(lo.path), infos.get(hi.path)
        if a and b and (a.height, a.width) != (b.height, b.width):
            problems.append(f"{lo.path}: low image is {a.width}x{a.height} but its high image {hi.path} is "
                            f"{b.width}x{b.height}")
    if not problems:
        train_high = {infos[hi.path].pixels: hi.path for _, _, hi in train_pairs}
        for _, _, hi in test_pairs:
            twin = train_high.get(infos[hi.path].pixels)
            if twin is not None:
                problems.append(f"{hi.path}: eval15 high image has the same pixels as {twin}; the test set "
                                "would leak into training")
    if problems:
        raise DataError(problems, header=f"data.source lol ({root}): cannot use this dataset")

    # group our485 pairs by the content of their high image, named after its first stem
    group_of = _group_by_content({stem: stem for stem, _, _ in train_pairs},
                                 {stem: infos[hi.path].pixels for stem, _, hi in train_pairs})
    sizes: dict[str, int] = defaultdict(int)
    for stem, _, _ in train_pairs:
        sizes[group_of[stem]] += 1
    split_of = split_groups(dict(sizes), cfg.val_fraction, 0.0, seed)
    jobs = [Job(split=split_of[group_of[s]], group=group_of[s], high=hi, low=lo, stems=[s],
                 pixels=infos[hi.path].pixels) for s, lo, hi in train_pairs]
    test_groups = _group_by_content({s: f"eval15:{s}" for s, _, _ in test_pairs},
                                    {s: infos[hi.path].pixels for s, _, hi in test_pairs})
    jobs += [Job(split="test", group=test_groups[s], high=hi, low=lo, stems=[s], pixels=infos[hi.path].pixels)
             for s, lo, hi in test_pairs]
    jobs, heldout, counts, extra_notes = add_extras(cfg, seed, jobs, workers)
    rows = write_all(jobs, out, cfg, seed, workers, heldout)

    notes = []
    if not has_eval:
        notes.append(f"test split is empty: {root / 'eval15'} does not exist (LOL's 15 test pairs); "
                     "evaluate on val or add eval15")
    linked = [f for f in files if f.linked]
    as_text = [f for f in linked if f.link_text]
    if linked:
        notes.append(f"{len(linked)} file(s) are links to other files in the dataset and were followed"
                     + (f"; {len(as_text)} of them are symbolic links stored as text files "
                        f"(e.g. {as_text[0].rel} names {os.path.relpath(as_text[0].real, root)})" if as_text else ""))
    if ignored:
        notes.append(f"ignored {len(ignored)} file(s) without an image extension: {', '.join(ignored[:5])}"
                     + (" ..." if len(ignored) > 5 else ""))
    shared = sum(1 for g, n in sizes.items() if n > 1)
    return summary("lol", rows, notes + extra_notes, high_groups_shared=shared, linked_files=len(linked),
                    link_text_files=len(as_text), **counts)


def prepare(cfg: DataConfig, seed: int, out: str | Path, workers: int | None = None) -> dict:
    """Build the prepared dataset in ``out`` (replaced whole, atomically) and return a summary.

    The summary has ``<split>_pairs`` and ``<split>_groups`` counts, ``pairs``,
    ``extra_clean_photos`` (photos darkened into train), ``extra_clean_heldout``,
    ``identity_pairs``, source-specific counts and ``notes`` (human-readable remarks, e.g. an empty
    test split). Raises :class:`DataError` listing every bad file; then nothing
    is written and a previous ``out`` is left as it was.
    """
    out = Path(out)
    workers = default_workers() if workers is None else max(1, workers)
    start = time.perf_counter()
    if cfg.extra_clean_path and not Path(cfg.extra_clean_path).is_dir():  # before the slow checks of the source
        raise DataError(f"{cfg.extra_clean_path}: data.extra_clean_path folder is missing"
                        if not Path(cfg.extra_clean_path).exists()
                        else f"{cfg.extra_clean_path}: data.extra_clean_path should be a folder of photos")
    if cfg.source == "lol":
        summary = _prepare_lol(cfg, seed, out, workers)
    elif cfg.source in ("demo", "clean_folder"):
        if cfg.source == "clean_folder" and not Path(cfg.path).is_dir():
            raise DataError(f"{cfg.path}: clean_folder folder is missing" if not Path(cfg.path).exists()
                            else f"{cfg.path}: data.path should be a folder of photos")
        summary = _prepare_synthetic(cfg, seed, out, workers)
    else:  # pragma: no cover - DataConfig's Literal type rules this out
        raise ValueError(f"unknown data.source {cfg.source!r}")
    summary["seconds"] = round(time.perf_counter() - start, 2)
    return summary
