"""Atomic outputs: write to a temporary sibling, then rename over the target.

A stage killed mid-write leaves either the previous complete output or none,
never a truncated file that a later stage or ``dvc repro`` would take as done.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Iterator

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, so no stale-file clean-up either
    fcntl = None

from lowlight.errors import UserError

__all__ = ["atomic_path", "atomic_dir", "write_text", "write_json", "OutputError", "temp_affixes",
           "remove_stale_temps", "NAME_MAX"]

NAME_MAX = 255  # bytes in one file name (ext4, XFS, APFS, NTFS in UTF-16 units)
_TEMP = re.compile(r"^(?P<prefix>\..*\.)[a-z0-9_]{8}\.tmp(?P<suffix>.*)$", re.DOTALL)  # what mkstemp makes below


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class OutputError(UserError, OSError):
    """An output that cannot be written; the message names the path."""


# errno values that can only mean "the output could not be written", whatever wrote it
_WRITE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS}


def _check_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path.parent}: cannot create output folder ({exc.strerror or exc})") from exc
    if not os.access(path.parent, os.W_OK):
        raise OutputError(f"{path.parent}: output folder is not writable")


def temp_affixes(path: Path) -> tuple[str, str]:
    """(prefix, suffix) of ``path``'s temporary sibling, ``.<stem>.XXXXXXXX.tmp<suffix>``: the stem
    is shortened (whole characters) so that a legal name never becomes an illegal one."""
    prefix, suffix = f".{path.stem}.", f".tmp{path.suffix}"
    room = NAME_MAX - 8 - len(os.fsencode(suffix))  # 8: mkstemp's random letters
    while len(os.fsencode(prefix)) > room and len(prefix) > 2:
        prefix = prefix[:-2] + "."
    if len(os.fsencode(prefix)) > room:  # a suffix of some 240 bytes: drop it, the format is passed by name
        suffix = ".tmp"
    return prefix, suffix


def _locked(fd: int) -> None:
    """Hold a lock on the temporary file while it is written: a rerun's clean-up
    (:func:`remove_stale_temps`) then knows a live writer's file from a killed one's."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)


def remove_stale_temps(targets: Iterable[str | os.PathLike]) -> list[Path]:
    """Remove the temporary files that an interrupted :func:`atomic_path` left beside ``targets``
    (a kill -9 skips every clean-up), and only those: the name must be one that
    :func:`atomic_path` gives for one of ``targets``, and no live writer may hold its lock."""
    by_folder: dict[Path, set[tuple[str, str]]] = {}
    for target in map(Path, targets):
        by_folder.setdefault(target.parent, set()).add(temp_affixes(target))
    removed = []
    for folder, affixes in by_folder.items() if fcntl is not None else ():
        try:
            entries = [e for e in os.scandir(folder) if e.name.startswith(".")]
        except OSError:
            continue  # the folder does not exist yet: nothing was left there
        for entry in entries:
            found = _TEMP.match(entry.name)
            if found and (found["prefix"], ".tmp" + found["suffix"]) in affixes and entry.is_file(follow_symlinks=False):
                if _unlink_unless_locked(Path(entry.path)):
                    removed.append(Path(entry.path))
    return removed


def _unlink_unless_locked(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a live writer holds it: leave its file alone
        path.unlink()
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    The temporary name keeps the suffix so libraries that pick a format by
    extension (Pillow, XGBoost, matplotlib) behave as for the real name, and is
    never longer than the file system allows (:func:`temp_affixes`).
    """
    path = Path(path)
    _check_parent(path)
    prefix, suffix = temp_affixes(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
    tmp = Path(tmp)
    try:
        _locked(fd)
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get normal permissions
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OutputError):
            raise
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces ``path`` whole."""
    path = Path(path)
    _check_parent(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OutputError) or exc.errno not in _WRITE_ERRNOS:
            raise
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
