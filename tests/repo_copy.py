"""A throwaway copy of the repository for tests that drive DVC (and git) for real.

:func:`make_repo_copy` copies the code, ``dvc.yaml`` and a tiny ``params.yaml``
into a folder, then ``git init`` + ``dvc init`` + one commit, so ``dvc repro``,
``dvc exp run`` and the queue run there without touching the working repo.
Used by ``test_pipeline.py`` and ``test_faults.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO

__all__ = ["BIN", "TINY", "merge", "run", "dvc", "make_repo_copy"]

BIN = Path(sys.executable).parent
# every stage on a few tiny images, one short epoch: the whole pipeline in well under a minute
TINY = {
    "data": {"max_size": 64, "pairs_per_image": 1},
    "eda": {"examples": 2},
    "quantiles": {"n_estimators": 20, "examples": 2},
    "train": {"epochs": 1, "crop_size": 32, "batch_size": 4, "model": "unet", "steps_per_epoch": 2},
    "evaluate": {"examples": 2},
}


def merge(base: dict, over: dict) -> dict:
    """``base`` with ``over``'s keys replaced, recursively (a non-empty dict merges, anything else replaces)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(base.get(k, {}), v) if isinstance(v, dict) and v else v
    return out


def run(cmd, cwd, env=None, check=True, timeout=900) -> subprocess.CompletedProcess:
    """Run ``cmd`` with the venv's tools first on PATH; on failure show the tail of its output."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **(env or {})}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-4000:]}")
    return proc


def dvc(*args, cwd, env=None, check=True, timeout=900) -> subprocess.CompletedProcess:
    return run([str(BIN / "dvc"), *args], cwd, env=env, check=check, timeout=timeout)


def make_repo_copy(root: Path, overrides: dict | None = None) -> Path:
    """Copy the repo's code and pipeline into ``root`` with ``params.yaml`` = repo params + ``overrides``
    (default :data:`TINY`), then ``git init``, ``dvc init`` and commit everything."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", ".dvcignore"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, root / name)
    for name in ("lowlight", "stages"):
        # the shipped weights come along: the evaluate stage scores them (and depends on them)
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    params = merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY if overrides is None else overrides)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / ".gitignore").write_text((REPO / ".gitignore").read_text())
    run(["git", "init", "-q"], root)
    run(["git", "config", "user.email", "t@t"], root)
    run(["git", "config", "user.name", "t"], root)
    dvc("init", "-q", cwd=root)
    dvc("config", "core.analytics", "false", cwd=root)
    dvc("config", "core.autostage", "true", cwd=root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "init"], root)
    return root
