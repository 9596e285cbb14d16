"""Where ``lowlight enhance`` writes, decided and checked before anything is written.

:func:`plan_outputs` turns the command's INPUT arguments (files, folders, globs) into
jobs and proves, for the whole batch at once:

* no output and no compare image is any input file: paths are compared after
  resolving symbolic links, case-folded (a case-insensitive file system would make
  ``a.PNG`` and ``a.png`` one file) and, for files that exist, by inode (hard links);
* no two jobs write one path;
* an existing file is replaced only with ``overwrite``; without it the job is
  counted as already done (an interrupted batch finishes without redoing work).

The inputs are found by :mod:`lowlight.cli.input_files`; a file reached twice is
one job (files are de-duplicated by their real path).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from lowlight.cli.input_files import FileSet, Found, find_inputs, inode, name_key
from lowlight.errors import UserError
from lowlight.imageio import ImageError, output_format

__all__ = ["Job", "Plan", "PlanError", "plan_outputs", "compare_name"]

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
    found = find_inputs(inputs, recursive)
    plan = Plan(skipped=list(found.problems))

    protected = FileSet()  # every file met while finding the inputs, images or not
    for f in found.all_files:
        protected.add(f, f)
    claimed = FileSet()  # every path a job writes or keeps
    seen: set = set()
    duplicates = 0

    for src, rel in found.sources:
        real = os.path.realpath(src)  # the same file, not case twins: those are refused below, by name
        if real in seen or inode(src) in seen:
            duplicates += 1
            continue
        seen.update({real, inode(src)} - {None})
        out_rel = rel.with_suffix(suffix) if suffix else rel
        targets = [("output", out / out_rel)]
        if compare_dir is not None:
            targets.append(("compare image", Path(compare_dir) / compare_name(out_rel)))
        why = _refusal(out_rel, targets, real, protected, claimed, suffix)
        if why is not None:
            plan.skipped.append(f"{src}: {why}")
            continue
        for _, path in targets:
            claimed.add(path, src)
        # without overwrite an existing output of lowlight's own is kept: the job writes what is missing
        kept = [_existing(src, what, path, overwrite) for what, path in targets]
        why = next((k for k in kept if isinstance(k, str)), None)
        if why is not None:
            plan.skipped.append(f"{src}: {why}")
            continue
        todo = [None if k else path for k, (_, path) in zip(kept, targets)]
        if not any(todo):
            plan.done.append(src)
        else:
            plan.jobs.append(Job(src, *todo))

    plan.notes += _notes(found, duplicates)
    return plan


def _existing(src: Path, what: str, path: Path, overwrite: bool) -> bool | str:
    """True: keep the existing ``path`` (lowlight wrote it: already done); False: write it;
    a string: why neither. A file lowlight did not write (no ``lowlight`` Software mark,
    :mod:`lowlight.metadata`) is a person's own: never taken as done, and never replaced
    when it lies beside the input (``IMG_1.jpg`` beside ``IMG_1.png`` with ``--format jpg``)."""
    from lowlight.metadata import written_by_lowlight

    if not os.path.lexists(path):
        return False
    ours = written_by_lowlight(path)
    if ours and not overwrite:
        return True
    if ours or (overwrite and os.path.realpath(path.parent) != os.path.realpath(src.parent)):
        return False
    if overwrite:
        return (f"{what} {path} is a photo lowlight did not write, beside the input; --overwrite replaces only "
                "lowlight's own files there: choose another -o folder")
    return (f"{what} {path} exists and lowlight did not write it (no 'lowlight' Software mark; a BMP or "
            "JPEG 2000 holds none): move it, choose another -o folder, or --overwrite to replace it")


def _refusal(out_rel: Path, targets: list[tuple[str, Path]], real: str, protected: FileSet, claimed: FileSet,
             suffix: str | None) -> str | None:
    """Why this input's outputs cannot be written (one line), or None when they can."""
    try:
        output_format(out_rel)  # the bytes written must be what the extension says
    except ImageError as exc:
        return exc.problem
    for what, path in targets:
        owner = protected.find(path)
        if owner is not None:
            which = "itself" if os.path.realpath(owner) == real else str(owner)
            if os.path.realpath(owner) != os.path.realpath(path) and name_key(owner) == name_key(path):
                which += " (the same file where letter case is ignored)"
            return (f"{what} {path} would overwrite the input {which}; inputs are never written: "
                    "choose another -o folder" + (" or --compare-dir" if what != "output" else ""))
        other = claimed.find(path)
        if other is not None:
            return (f"same {what} {path} as {other}; enhance them into separate folders"
                    + (" (or without --format)" if suffix else ""))
        if path.is_dir():
            return f"{what} {path} is a folder"
    return None


def _notes(found: Found, duplicates: int) -> list[str]:
    """One line for each kind of file that was passed over (not failed)."""
    notes = []
    if found.unsupported:
        kinds = ", ".join(f"{ext} ({n})" if len(found.unsupported) > 1 else ext
                          for ext, n in sorted(found.unsupported.items()))
        n = sum(found.unsupported.values())
        notes.append(f"skipped {n} file{'s' if n != 1 else ''} with unsupported extensions: {kinds}")
    if found.linked_dirs:
        n = len(found.linked_dirs)
        notes.append(f"did not follow {n} linked folder{'s' if n != 1 else ''} (e.g. {found.linked_dirs[0]}); "
                     "name a linked folder on the command line to include it")
    if duplicates:
        notes.append(f"{duplicates} file{'s' if duplicates != 1 else ''} reached twice (links, overlapping "
                     "arguments) enhanced once")
    return notes
