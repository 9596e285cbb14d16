"""Extra training pairs beside a dataset's own: synthetic pairs from a folder of clean photos
(``data.extra_clean_path``, minus a held-out set no stage trains on) and identity pairs
(``data.identity_fraction``: a well-lit photo as both input and target). Train split only."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from lowlight.config import DataConfig
from lowlight.data.dataset_files import inspect_all, list_images
from lowlight.errors import DataError
from lowlight.data.pair_writer import Job, stable_int
from lowlight.data.pairs import natural_key

__all__ = ["heldout_photos", "add_extras"]


def heldout_photos(paths: Sequence[Path], n: int) -> list[Path]:
    """The ``n`` photos of a clean folder that no stage trains on, in name order.

    Those with the smallest sha256 of their file name: independent of the seed
    and of the pixels, so a benchmark listing the same folder gets the same photos
    as ``prepare`` (which also writes them to ``heldout.txt``).
    """
    if not 0 <= n <= len(paths):
        raise ValueError(f"cannot hold out {n} of {len(paths)} photos")
    chosen = sorted(paths, key=lambda p: (hashlib.sha256(Path(p).name.encode()).hexdigest(), str(p)))[:n]
    return sorted(chosen, key=lambda p: natural_key(Path(p).name))


def _extra_clean_jobs(cfg: DataConfig, primary: list[Job], workers: int) -> tuple[list[Job], list[str], dict]:
    """Train jobs for ``data.extra_clean_path`` (minus the held-out photos), heldout.txt lines, counts."""
    if not cfg.extra_clean_path:
        return [], [], {"extra_clean_photos": 0, "extra_clean_heldout": 0, "extra_clean_heldout_copies": 0}
    root = Path(cfg.extra_clean_path)
    header = f"data.extra_clean_path ({root}): cannot use these photos"
    problems: list[str] = []
    files = [f for f in list_images(root, root, problems, [], "clean photo").values() if f is not None]
    infos = inspect_all(files, workers, problems)
    if problems:
        raise DataError(problems, header=header)
    if cfg.extra_clean_holdout + cfg.extra_clean_val >= len(files):
        raise DataError(f"data.extra_clean_holdout + data.extra_clean_val is "
                        f"{cfg.extra_clean_holdout + cfg.extra_clean_val} but data.extra_clean_path "
                        f"({root}) has {len(files)} photo(s); hold out fewer so some are left to train on")
    held = set(heldout_photos([f.path for f in files], cfg.extra_clean_holdout))
    val = set(heldout_photos([f.path for f in files], cfg.extra_clean_holdout + cfg.extra_clean_val)) - held
    held_pixels = {infos[p].pixels for p in held}
    primary_splits: dict[str, set[str]] = defaultdict(set)
    for job in primary:
        primary_splits[job.pixels].add(job.split)
    jobs = []
    twins = 0
    for f in files:
        px = infos[f.path].pixels
        if f.path in held:
            if "train" in primary_splits.get(px, ()):
                problems.append(f"{f.path}: held out, but a train image of data.source {cfg.source} has the same "
                                "pixels; the held-out set would not be unseen")
            continue
        if px in held_pixels:  # a copy of a held-out photo under another name
            twins += 1
            continue
        split = "val" if f.path in val else "train"
        leak = sorted(primary_splits.get(px, set()) - {split})
        if leak:
            problems.append(f"{f.path}: same pixels as a {'/'.join(leak)} image of data.source {cfg.source}; "
                            f"using it in {split} would leak into that split")
            continue
        jobs.append(Job(split=split, group=f"clean:{f.path.stem}", high=f, pixels=px,
                         stems=[f"clean_{f.path.stem}_{k}" for k in range(cfg.extra_pairs_per_image)]))
    if problems:
        raise DataError(problems, header=header)
    heldout = [f.rel for f in files if f.path in held]
    return jobs, heldout, {"extra_clean_photos": len(jobs), "extra_clean_heldout": len(heldout),
                           "extra_clean_heldout_copies": twins}


def _identity_jobs(jobs: list[Job], fraction: float, seed: int,
                   always: Sequence[Job] = ()) -> tuple[list[Job], list[str]]:
    """Identity pairs for ``round(fraction * train pairs)`` distinct train high images, chosen with the
    seed, plus one for each of ``always`` (the extra clean photos, with ``data.extra_identity``)."""
    train = [j for j in jobs if j.split == "train" and not j.identity]
    wanted = round(fraction * sum(len(j.stems) for j in train))
    if wanted == 0 and not always:
        return [], []
    distinct: dict[str, Job] = {}
    for j in sorted(train, key=lambda j: natural_key(j.stems[0])):
        distinct.setdefault(j.pixels, j)
    # a hash per stem rather than a permutation: adding a photo changes no other photo's chance
    picked = sorted(distinct.values(), key=lambda j: stable_int(f"identity:{seed}:{j.stems[0]}"))[:wanted]
    notes = [] if len(picked) == wanted else [
        f"data.identity_fraction asks for {wanted} identity pairs; train has {len(picked)} distinct high images"]
    chosen = {j.pixels for j in picked}
    for j in always:  # the extra photos the fraction did not already pick
        if j.pixels not in chosen:
            chosen.add(j.pixels)
            picked.append(j)
    # synthetic stems are <photo>_<k>; the identity pair is named after the photo
    out = [replace(j, stems=[f"id_{j.stems[0] if j.low is not None else j.stems[0].rsplit('_', 1)[0]}"],
                   identity=True) for j in picked]
    return out, notes


def add_extras(cfg: DataConfig, seed: int, jobs: list[Job],
                workers: int) -> tuple[list[Job], list[str], dict, list[str]]:
    """The primary source's jobs plus the extra clean-photo pairs (train, and val for
    ``data.extra_clean_val``) and the identity pairs (train)."""
    extra, heldout, counts = _extra_clean_jobs(cfg, jobs, workers)
    identity, notes = _identity_jobs(jobs + extra, cfg.identity_fraction, seed,
                                     [j for j in extra if j.split == "train"] if cfg.extra_identity else ())
    counts["identity_pairs"] = len(identity)
    if counts.get("extra_clean_heldout_copies"):
        notes.append(f"{counts['extra_clean_heldout_copies']} photo(s) in data.extra_clean_path are copies of "
                     "held-out ones and were left out of train")
    return jobs + extra + identity, heldout, counts, notes
