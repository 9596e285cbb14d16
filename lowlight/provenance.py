"""Where a run came from: the repository, the code's commit, file hashes, when the invocation began.

Recorded on MLflow runs by :mod:`lowlight.tracking` and the train and track stages.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path

__all__ = ["repo_root", "original_root", "file_sha256", "git_commit", "invocation_start"]


def repo_root(start: str | Path | None = None) -> Path:
    """The DVC project root: ``$DVC_ROOT`` when DVC runs us, else the nearest folder with ``.dvc``."""
    env = os.environ.get("DVC_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".dvc").is_dir() or (folder / "dvc.yaml").is_file():
            return folder
    return here


def original_root() -> Path:
    """The repository the user ran from, also when DVC runs a stage in a copy of it."""
    root = repo_root()
    # `dvc exp run --temp` and queued runs execute inside .dvc/tmp/exps/...; walk out of it
    parts = root.parts
    if ".dvc" in parts:
        return Path(*parts[: parts.index(".dvc")])
    return root


def file_sha256(path: str | Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def git_commit(root: Path | None = None) -> str:
    """The commit the code ran from: ``HEAD`` of the checkout (an experiment's baseline until DVC commits it)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root or repo_root(), capture_output=True, text=True,
                             timeout=5, check=False)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def invocation_start(now_ms: int | None = None) -> int:
    """When this ``dvc repro`` / ``dvc exp run`` began (ms since the epoch), so a pipeline run's
    duration is the invocation's: ``$LOWLIGHT_PIPELINE_START`` (seconds) when set, else the start of
    the nearest ``dvc`` process above this one, else now."""
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    env = os.environ.get("LOWLIGHT_PIPELINE_START", "")
    if env:
        with contextlib.suppress(ValueError):
            return min(int(float(env) * 1000), now_ms)
    try:
        import psutil

        for proc in psutil.Process().parents():
            argv = proc.cmdline()
            if any(Path(a).name in ("dvc", "dvc.exe") or a == "dvc" for a in argv[:3]):
                return min(int(proc.create_time() * 1000), now_ms)
    except Exception:  # noqa: BLE001 - no psutil, a process gone meanwhile, no permission: the run starts now
        pass
    return now_ms
