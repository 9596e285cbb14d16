"""The ``lol`` source: a real paired set in the LOL layout (``our485/{low,high}``, optional ``eval15``).

Every pair is checked first (both sides present, readable, equal sizes, eval15 not a
copy of a training reference), and all problems are reported together. ``our485``
is split into train and val by identical high image; ``eval15`` is the test split.
"""

from __future__ import annotations

import glob
import os
from collections import defaultdict
from pathlib import Path

from lowlight.config import DataConfig
from lowlight.data.dataset_files import DatasetFile, inspect_all, list_images
from lowlight.data.extra_pairs import add_extras
from lowlight.data.pair_writer import Job, summary, write_all
from lowlight.data.pairs import natural_key
from lowlight.data.splits import group_by_content, split_groups
from lowlight.errors import DataError

__all__ = ["prepare_lol"]


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


def prepare_lol(cfg: DataConfig, seed: int, out: Path, workers: int) -> dict:
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
    group_of = group_by_content({stem: stem for stem, _, _ in train_pairs},
                                 {stem: infos[hi.path].pixels for stem, _, hi in train_pairs})
    sizes: dict[str, int] = defaultdict(int)
    for stem, _, _ in train_pairs:
        sizes[group_of[stem]] += 1
    split_of = split_groups(dict(sizes), cfg.val_fraction, 0.0, seed)
    jobs = [Job(split=split_of[group_of[s]], group=group_of[s], high=hi, low=lo, stems=[s],
                 pixels=infos[hi.path].pixels) for s, lo, hi in train_pairs]
    test_groups = group_by_content({s: f"eval15:{s}" for s, _, _ in test_pairs},
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
