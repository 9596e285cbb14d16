"""Files of a dataset folder on disk: listing, links that stay inside it, one checked decode each.

Used by :mod:`lowlight.data.prepare`. Symbolic links are followed when they stay inside the
dataset folder and refused when they leave it; a small text file whose whole content is
a relative image path (how git stores a symbolic link when ``core.symlinks`` is off) is
followed the same way. Problems are collected as one-line strings naming the file, never
raised one at a time, so a stage can report every bad file at once.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from PIL import Image

from lowlight.imageio import IMAGE_EXTENSIONS, ImageError, read_rgb
from lowlight.data.pairs import natural_key
from lowlight.parallel import pmap

__all__ = ["DatasetFile", "FileInfo", "list_images", "inspect_all"]

_LINK_TEXT_MAX_BYTES = 1024
_MAX_LINK_DEPTH = 8


class _BadFile(Exception):
    """One problem with one file; collected, never raised to the caller."""


@dataclass(frozen=True)
class DatasetFile:
    path: Path  # as listed in the dataset
    real: Path  # after following links
    rel: str  # for the manifest
    linked: bool = False
    link_text: bool = False  # a symbolic link stored as a small text file


@dataclass(frozen=True)
class FileInfo:
    height: int
    width: int
    pixels: str  # sha256 of the decoded pixels


def _link_text(path: Path) -> str | None:
    """The target named by a 'symlink stored as text' file, else None."""
    try:
        if not path.is_file() or path.stat().st_size > _LINK_TEXT_MAX_BYTES:
            return None
        text = path.read_bytes().decode("utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not text or "\n" in text or "\x00" in text or Path(text).suffix.lower() not in IMAGE_EXTENSIONS:
        return None
    return text


def _inside(path: Path, root_real: Path) -> bool:
    return path == root_real or path.is_relative_to(root_real)


def _resolve(path: Path, root_real: Path, depth: int = 0) -> tuple[Path, bool, bool]:
    """Follow symbolic links and link-text files; refuse any that leave the dataset folder."""
    linked = text = False
    here = path
    if path.is_symlink():
        linked = True
        real = Path(os.path.realpath(path))
        if not _inside(real, root_real):
            raise _BadFile(f"{path}: symbolic link leads outside the dataset folder {root_real} (to {real}); "
                       "copy the file into the dataset instead")
        if not real.exists():
            raise _BadFile(f"{path}: broken symbolic link (to {os.readlink(path)})")
        here = real
    target = _link_text(here)
    if target is None:
        return here, linked, text
    if depth >= _MAX_LINK_DEPTH:
        raise _BadFile(f"{path}: more than {_MAX_LINK_DEPTH} links in a chain")
    nxt = here.parent / target
    if not _inside(Path(os.path.realpath(nxt)), root_real):
        raise _BadFile(f"{path}: is a link file naming {target!r}, which leads outside the dataset folder "
                   f"{root_real}; copy the file into the dataset instead")
    if not nxt.exists():
        raise _BadFile(f"{path}: is not an image but the text {target!r} (a symbolic link stored as a text "
                   "file?), and that file does not exist")
    real, _, _ = _resolve(nxt, root_real, depth + 1)
    return real, True, True


def list_images(folder: Path, root: Path, problems: list[str], ignored: list[str],
                 what: str) -> dict[str, DatasetFile | None]:
    """Image files directly inside ``folder`` by stem; problems are appended, not raised.

    A stem whose file has a problem maps to None, so it is not also reported as unpaired.
    """
    if not folder.is_dir():
        problems.append(f"{folder}: {what} folder is missing" if not folder.exists()
                        else f"{folder}: {what} should be a folder")
        return {}
    root_real = Path(os.path.realpath(root))
    folder_real = Path(os.path.realpath(folder))
    if not _inside(folder_real, root_real):  # e.g. our485/high linked to a folder elsewhere
        problems.append(f"{folder}: {what} folder is a symbolic link that leads outside the dataset folder "
                        f"{root_real} (to {folder_real}); copy the images into the dataset instead")
        return {}
    found: dict[str, DatasetFile | None] = {}
    seen: dict[str, Path] = {}  # every image-named entry, good or bad
    entries = sorted(folder.iterdir(), key=lambda p: natural_key(p.name))
    for p in entries:
        if p.name.startswith("."):
            continue  # .DS_Store and friends
        if p.suffix.lower() not in IMAGE_EXTENSIONS:
            if not p.is_dir():
                ignored.append(str(p))
            continue
        if p.stem in seen:
            problems.append(f"{p}: same stem as {seen[p.stem]}; pairs are matched by stem, rename one of them")
            continue
        seen[p.stem] = p
        found[p.stem] = None
        try:
            real, linked, text = _resolve(p, root_real)
        except _BadFile as exc:
            problems.append(str(exc))
            continue
        if real.is_dir():
            problems.append(f"{p}: is a folder, not an image")
            continue
        found[p.stem] = DatasetFile(path=p, real=real, rel=os.path.relpath(p, root), linked=linked, link_text=text)
    if not seen:
        problems.append(f"{folder}: no images in this {what} folder (looked for "
                        f"{', '.join(sorted(IMAGE_EXTENSIONS))})")
    return found


def _is_16bit(path: Path) -> bool:
    """Pillow decodes 16-bit RGB PNG/TIFF to 8-bit 'RGB' silently; its raw mode still tells."""
    with Image.open(path) as im:
        for tile in im.tile:
            args = tile.args if isinstance(tile.args, tuple) else (tile.args,)
            if any(isinstance(a, str) and re.search(r";(16|48)", a) for a in args):
                return True
    return False


def _inspect(f: DatasetFile) -> FileInfo | str:
    """Decode once: size and pixel hash, or the problem as a one-line message."""
    try:
        rgb = read_rgb(f.real)
        if _is_16bit(f.real):
            raise ImageError(f.real, "16-bit image; only 8-bit RGB is accepted here (convert it to 8-bit "
                                     "RGB first, e.g. Image.open(p).convert('RGB'))")
    except ImageError as exc:
        msg = str(exc)
        return msg if f.real == f.path else f"{f.path} (link to {f.real}): {exc.problem}"
    except OSError as exc:  # e.g. permission denied
        return f"{f.path}: cannot read ({exc.strerror or exc})"
    return FileInfo(rgb.shape[0], rgb.shape[1], hashlib.sha256(rgb.tobytes()).hexdigest())


def inspect_all(files: Sequence[DatasetFile], workers: int, problems: list[str]) -> dict[Path, FileInfo]:
    infos = {}
    for f, r in zip(files, pmap(_inspect, files, workers, desc="check")):
        if isinstance(r, str):
            problems.append(r)
        else:
            infos[f.path] = r
    return infos
