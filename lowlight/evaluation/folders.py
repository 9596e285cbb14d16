"""Scoring two folders of images against each other: what ``lowlight evaluate`` runs.

Predictions and references pair by file stem; every missing, extra, ambiguous,
unreadable or size-mismatched file is found before any pixel is decoded, and
reported together. The metrics are :mod:`lowlight.evaluation.scores`'.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lowlight.data.pairs import natural_key
from lowlight.errors import DataError
from lowlight.evaluation.scores import scores_frame, ssim_size_problem, score_pair, summarize
from lowlight.imageio import is_image_file, read_rgb
from lowlight.parallel import pmap

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["evaluate_dirs"]


def _images_by_stem(folder: Path, role: str, problems: list[str]) -> dict[str, Path]:
    if not folder.is_dir():
        problems.append(f"{folder}: {role} folder does not exist" if not folder.exists()
                        else f"{folder}: {role} path is not a folder")
        return {}
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not (path.is_file() and is_image_file(path)):
            continue
        if path.stem in found:
            problems.append(f"{path}: same stem as {found[path.stem].name}; which {role} is meant is ambiguous")
            continue
        found[path.stem] = path
    if not found and folder.is_dir():
        problems.append(f"{folder}: no {role} images found")
    return found


def _image_size(path: Path) -> tuple[int, int] | str:
    """(width, height) from the header alone, or why the file cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as im:  # header only; pixels are decoded when the pair is scored
            return im.size
    except (OSError, ValueError, SyntaxError) as exc:
        return f"{path}: not a readable image ({exc})"


def evaluate_dirs(pred_dir: str | Path, ref_dir: str | Path,
                  workers: int | None = None) -> tuple["pd.DataFrame", dict[str, float]]:
    """Score every prediction in ``pred_dir`` against the same-stem reference in ``ref_dir``.

    Any image format; files are decoded as strict 8-bit RGB (nothing is silently
    converted). A missing, extra, ambiguous or size-mismatched file is a
    :class:`DataError` that lists each one. Pairs are decoded and scored one at
    a time in the thread pool, so memory stays bounded on large sets.
    """
    pred_dir, ref_dir = Path(pred_dir), Path(ref_dir)
    problems: list[str] = []
    preds = _images_by_stem(pred_dir, "prediction", problems)
    refs = _images_by_stem(ref_dir, "reference", problems)
    if preds and refs:
        problems += [f"{preds[k]}: prediction has no reference in {ref_dir}"
                     for k in sorted(set(preds) - set(refs), key=natural_key)]
        problems += [f"{refs[k]}: reference has no prediction in {pred_dir}"
                     for k in sorted(set(refs) - set(preds), key=natural_key)]
    stems = sorted(set(preds) & set(refs), key=natural_key)
    for k in stems:
        sp, sr = _image_size(preds[k]), _image_size(refs[k])
        bad = [s for s in (sp, sr) if isinstance(s, str)]
        problems += bad
        if not bad and sp != sr:
            problems.append(f"{preds[k]}: size {sp[0]}x{sp[1]} differs from its reference "
                            f"{refs[k]} ({sr[0]}x{sr[1]})")
        elif not bad and ssim_size_problem(*sp):
            problems.append(f"{preds[k]}: {ssim_size_problem(*sp)}")
    if problems:
        raise DataError(problems, header=f"cannot score {pred_dir} against {ref_dir}")

    def one(k: str) -> dict[str, float]:
        pred, ref = read_rgb(preds[k]), read_rgb(refs[k])
        if pred.shape != ref.shape:  # a header that lied; unlikely but checked on the pixels
            raise DataError([f"{preds[k]}: size differs from its reference {refs[k]}"])
        return score_pair(pred, ref)

    df = scores_frame(stems, pmap(one, stems, workers))
    return df, summarize(df)
