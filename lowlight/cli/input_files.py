"""The INPUT arguments of ``lowlight enhance`` (files, folders, globs) as files, and the identity of a file.

Folders and globs are walked without following linked folders (``ln -s . self`` would
loop for ever); a linked folder named on the command line is walked, the links inside
it are not. :class:`FileSet` knows a file by every name that could reach it: its real
path case-folded (a case-insensitive file system makes ``a.PNG`` and ``a.png`` one
file) and its inode (hard links).
"""

from __future__ import annotations

import fnmatch
import os
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from lowlight.imageio import READ_EXTENSIONS

__all__ = ["Found", "FileSet", "find_inputs", "name_key", "inode"]

_MAGIC = set("*?[")


# --------------------------------------------------------------------------- identity of paths


def name_key(path: Path) -> str:
    """The path as a case-insensitive file system would see it, links resolved."""
    real = os.path.normcase(os.path.realpath(path))
    return unicodedata.normalize("NFC", real).casefold()


def inode(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class FileSet:
    """A set of files known by every name that could reach them."""

    def __init__(self):
        self._names: dict[str, Path] = {}
        self._inodes: dict[tuple[int, int], Path] = {}

    def add(self, path: Path, owner: Path) -> None:
        for key in (name_key(path), unicodedata.normalize("NFC", os.path.abspath(path)).casefold()):
            self._names.setdefault(key, owner)
        ino = inode(path)
        if ino is not None:
            self._inodes.setdefault(ino, owner)

    def find(self, path: Path) -> Path | None:
        hit = self._names.get(name_key(path))
        if hit is None:
            ino = inode(path)
            hit = self._inodes.get(ino) if ino is not None else None
        return hit


# --------------------------------------------------------------------------- finding the inputs


@dataclass
class Found:
    sources: list[tuple[Path, Path]] = field(default_factory=list)  # (file, output path relative to -o)
    all_files: list[Path] = field(default_factory=list)  # every file met: all are protected
    problems: list[str] = field(default_factory=list)
    unsupported: Counter = field(default_factory=Counter)
    linked_dirs: list[Path] = field(default_factory=list)


def _walk(root: Path, max_depth: float, found: Found, prune=None) -> list[tuple[Path, tuple[str, ...], bool]]:
    """(path, parts relative to ``root``, is_dir) below ``root``, sorted, hidden names
    left out, linked folders never entered (they are recorded in ``found.linked_dirs``)."""
    items, stack = [], [(root, ())]
    while stack:
        folder, parts = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            found.problems.append(f"{folder}: cannot list this folder ({exc.strerror or exc})")
            continue
        for e in entries:
            if e.name.startswith("."):
                continue
            sub = (*parts, e.name)
            path = Path(e.path)
            try:
                is_dir = e.is_dir()  # follows links: a link to a folder is a folder
                is_link = e.is_symlink()
            except OSError:
                continue
            if is_dir and is_link:
                if path not in found.linked_dirs:
                    found.linked_dirs.append(path)
                continue
            items.append((path, sub, is_dir))
            if is_dir and len(sub) < max_depth and (prune is None or prune(sub)):
                stack.append((path, sub))
    return sorted(items, key=lambda item: item[1])


def _take_file(path: Path, rel: Path, found: Found, explicit: bool) -> None:
    found.all_files.append(path)
    if path.name.startswith(".") and not explicit:  # a killed writer's temporary file, a macOS fork
        return
    if path.suffix.lower() in READ_EXTENSIONS:
        found.sources.append((path, rel))
    elif explicit:
        found.problems.append(f"{path}: unsupported extension {path.suffix or '(none)'}; lowlight reads "
                              f"{', '.join(sorted(READ_EXTENSIONS))} (convert it to PNG first)")
    else:
        found.unsupported[path.suffix.lower() or "(no extension)"] += 1


def _take_folder(folder: Path, base: Path, recursive: bool, found: Found, arg: str, named: bool = True) -> None:
    before = len(found.sources)
    for path, _, is_dir in _walk(folder, float("inf") if recursive else 1, found):
        if not is_dir:
            _take_file(path, path.relative_to(base), found, explicit=False)
    if named and len(found.sources) == before:
        found.problems.append(f"{arg}: no images ({', '.join(sorted(READ_EXTENSIONS))}) in this folder"
                              + ("" if recursive else " (use --recursive for sub-folders)"))


def _match(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_match(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pattern[0]) and _match(pattern[1:], parts[1:])


def _take_glob(arg: str, recursive: bool, found: Found) -> None:
    """A glob, matched by walking from its literal leading folders; ``**`` spans folders
    only with ``--recursive`` (as ``glob.glob(recursive=...)``). Output paths are relative
    to that leading folder, so ``d/**/*.png`` keeps d's tree."""
    parts = Path(arg).parts
    k = next(i for i, p in enumerate(parts) if _MAGIC & set(p))
    base = Path(*parts[:k]) if k else Path(".")
    pattern = tuple("*" if (p == "**" and not recursive) else p for p in parts[k:])
    deep = "**" in pattern
    if not base.is_dir():
        found.problems.append(f"{arg}: no such file or folder")
        return

    def prune(sub):  # descend only where the pattern can still match
        return deep or all(fnmatch.fnmatchcase(s, p) for s, p in zip(sub, pattern))

    matched = 0
    for path, sub, is_dir in _walk(base, float("inf") if deep else len(pattern), found, prune):
        if not _match(pattern, sub):
            continue
        matched += 1
        if is_dir:
            if not deep:  # d/* names a sub-folder: take its images like a folder argument
                _take_folder(path, base, recursive, found, str(path), named=False)
        else:
            _take_file(path, path.relative_to(base), found, explicit=False)
    if not matched:
        found.problems.append(f"{arg}: no such file or folder (the pattern matches nothing)")


def find_inputs(inputs: list[str], recursive: bool) -> Found:
    found = Found()
    for arg in inputs:
        path = Path(arg)
        if path.is_dir():
            _take_folder(path, path, recursive, found, arg)
        elif path.is_file():
            _take_file(path, Path(path.name), found, explicit=True)
        elif _MAGIC & set(arg):
            _take_glob(arg, recursive, found)
        else:
            found.problems.append(f"{arg}: no such file or folder")
    return found
