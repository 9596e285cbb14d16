"""Where ``lowlight enhance`` writes, decided and checked before anything is written.

:func:`plan_outputs` turns the command's INPUT arguments (files, folders, globs) into
jobs and proves, for the whole batch at once:

* no output and no compare image is any input file: paths are compared after
  resolving symbolic links, case-folded (a case-insensitive file system would make
  ``a.PNG`` and ``a.png`` one file) and, for files that exist, by inode (hard links);
* no two jobs write one path;
* an existing file is replaced only with ``overwrite``; without it the job is
  counted as already done (an interrupted batch finishes without redoing work).

Folders and globs are walked without following linked folders (``ln -s . self``
would loop for ever), and a file reached twice is one job: files are
de-duplicated by their real path. A linked folder named on the command line is
walked; the links inside it are not.
"""

from __future__ import annotations

import fnmatch
import os
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError
from .imageio import READ_EXTENSIONS, ImageError, output_format

__all__ = ["Job", "Plan", "PlanError", "plan_outputs", "compare_name"]

_MAGIC = set("*?[")


class PlanError(UserError, ValueError):
    """The output locations themselves are unusable (``-o`` is a file, say): a usage error."""


@dataclass(frozen=True)
class Job:
    """Enhance ``src``; write ``dst`` and ``compare`` (None: nothing to write there, the file
    exists and is kept)."""

    src: Path
    dst: Path | None
    compare: Path | None = None


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one line per input left out: "<file>: why"
    done: list[Path] = field(default_factory=list)  # inputs whose outputs all exist (kept)
    notes: list[str] = field(default_factory=list)  # one line each: what was passed over, not failed

    @property
    def writes(self) -> list[Path]:
        return [p for j in self.jobs for p in (j.dst, j.compare) if p is not None]


def compare_name(rel: Path) -> Path:
    """``sub/a.png`` -> ``sub/a.png.compare.png``: the full name is kept, so that ``a.png``
    and ``a.jpg`` get different compare images."""
    return rel.with_name(rel.name + ".compare.png")


# --------------------------------------------------------------------------- identity of paths


def _name_key(path: Path) -> str:
    """The path as a case-insensitive file system would see it, links resolved."""
    real = os.path.normcase(os.path.realpath(path))
    return unicodedata.normalize("NFC", real).casefold()


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class _Files:
    """A set of files known by every name that could reach them."""

    def __init__(self):
        self._names: dict[str, Path] = {}
        self._inodes: dict[tuple[int, int], Path] = {}

    def add(self, path: Path, owner: Path) -> None:
        for key in (_name_key(path), unicodedata.normalize("NFC", os.path.abspath(path)).casefold()):
            self._names.setdefault(key, owner)
        ino = _inode(path)
        if ino is not None:
            self._inodes.setdefault(ino, owner)

    def find(self, path: Path) -> Path | None:
        hit = self._names.get(_name_key(path))
        if hit is None:
            ino = _inode(path)
            hit = self._inodes.get(ino) if ino is not None else None
        return hit


# --------------------------------------------------------------------------- finding the inputs


@dataclass
class _Found:
    sources: list[tuple[Path, Path]] = field(default_factory=list)  # (file, output path relative to -o)
    all_files: list[Path] = field(default_factory=list)  # every file met: all are protected
    problems: list[str] = field(default_factory=list)
    unsupported: Counter = field(default_factory=Counter)
    linked_dirs: list[Path] = field(default_factory=list)


def _walk(root: Path, max_depth: float, found: _Found, prune=None) -> list[tuple[Path, tuple[str, ...], bool]]:
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


def _take_file(path: Path, rel: Path, found: _Found, explicit: bool) -> None:
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


def _take_folder(folder: Path, base: Path, recursive: bool, found: _Found, arg: str, named: bool = True) -> None:
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


def _take_glob(arg: str, recursive: bool, found: _Found) -> None:
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


def _find_inputs(inputs: list[str], recursive: bool) -> _Found:
    found = _Found()
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


# --------------------------------------------------------------------------- the plan


def _writable_folder(path: Path, flag: str) -> None:
    if path.exists() and not path.is_dir():
        raise PlanError(f"{flag} {path}: exists and is not a folder")


def plan_outputs(inputs: list[str], out: Path, *, recursive: bool = False, suffix: str | None = None,
                 overwrite: bool = False, compare_dir: Path | None = None) -> Plan:
    """Jobs for ``lowlight enhance INPUTS -o OUT``: each input's output is ``OUT/<its path
    relative to the folder it came from>`` (``suffix`` replaces the extension) and, with
    ``compare_dir``, its side-by-side picture ``compare_dir/<that path>.compare.png``.
    Raises :class:`PlanError` when ``out`` or ``compare_dir`` cannot be a folder."""
    out = Path(out)
    _writable_folder(out, "-o")
    if compare_dir is not None:
        _writable_folder(Path(compare_dir), "--compare-dir")
    found = _find_inputs(inputs, recursive)
    plan = Plan(skipped=list(found.problems))

    protected = _Files()  # every file met while finding the inputs, images or not
    for f in found.all_files:
        protected.add(f, f)
    claimed = _Files()  # every path a job writes or keeps
    seen: set = set()
    duplicates = 0

    for src, rel in found.sources:
        real = os.path.realpath(src)  # the same file, not case twins: those are refused below, by name
        if real in seen or _inode(src) in seen:
            duplicates += 1
            continue
        seen.update({real, _inode(src)} - {None})
        out_rel = rel.with_suffix(suffix) if suffix else rel
        targets = [("output", out / out_rel)]
        if compare_dir is not None:
            targets.append(("compare image", Path(compare_dir) / compare_name(out_rel)))
        why = None
        try:
            output_format(out_rel)  # the bytes written must be what the extension says
        except ImageError as exc:
            why = exc.problem
        for what, path in targets if why is None else ():
            owner = protected.find(path)
            if owner is not None:
                which = "itself" if os.path.realpath(owner) == real else str(owner)
                if os.path.realpath(owner) != os.path.realpath(path) and _name_key(owner) == _name_key(path):
                    which += " (the same file where letter case is ignored)"
                why = (f"{what} {path} would overwrite the input {which}; inputs are never written: "
                       "choose another -o folder" + (" or --compare-dir" if what != "output" else ""))
                break
            other = claimed.find(path)
            if other is not None:
                why = (f"same {what} {path} as {other}; enhance them into separate folders"
                       + (" (or without --format)" if suffix else ""))
                break
            if path.is_dir():
                why = f"{what} {path} is a folder"
                break
        if why is not None:
            plan.skipped.append(f"{src}: {why}")
            continue
        for _, path in targets:
            claimed.add(path, src)
        # without overwrite an existing output is kept: the job writes what is missing
        todo = [None if (path.exists() and not overwrite) else path for _, path in targets]
        if not any(todo):
            plan.done.append(src)
        else:
            plan.jobs.append(Job(src, *todo))

    if found.unsupported:
        kinds = ", ".join(f"{ext} ({n})" if len(found.unsupported) > 1 else ext
                          for ext, n in sorted(found.unsupported.items()))
        n = sum(found.unsupported.values())
        plan.notes.append(f"skipped {n} file{'s' if n != 1 else ''} with unsupported extensions: {kinds}")
    if found.linked_dirs:
        n = len(found.linked_dirs)
        plan.notes.append(f"did not follow {n} linked folder{'s' if n != 1 else ''} (e.g. {found.linked_dirs[0]}); "
                          "name a linked folder on the command line to include it")
    if duplicates:
        plan.notes.append(f"{duplicates} file{'s' if duplicates != 1 else ''} reached twice (links, overlapping "
                          "arguments) enhanced once")
    return plan
