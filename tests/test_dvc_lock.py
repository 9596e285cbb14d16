"""The committed dvc.lock is the truth about the committed code, params and metrics.

``dvc.lock`` records the MD5 of every file a stage depends on and of the metrics files it
wrote; ``dvc status`` compares them, but needs the data. These checks need only git: for
every dependency and every output that git holds (the code, the metrics files), the lock's
hash must be the file's, its commands must be dvc.yaml's and its params params.yaml's. An
edit committed without rerunning ``dvc repro`` (and committing the lock) fails here, naming
the files and the command that fixes it.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
FIX = "rerun `dvc repro` (or `dvc commit` if the outputs are right) and commit dvc.lock with the change"


def _git_files() -> set[str]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("not a git checkout")
    return set(out.stdout.splitlines())


def _lock() -> dict:
    return yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]


def _entries(kind: str):
    for stage, spec in _lock().items():
        for entry in spec.get(kind, []):
            yield stage, entry


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", ["deps", "outs"])
def test_lock_hashes_match_the_files_git_holds(kind):
    tracked = _git_files()
    stale = [f"{stage}: {e['path']}" for stage, e in _entries(kind)
             if e["path"] in tracked and "md5" in e and _md5(REPO / e["path"]) != e["md5"]]
    assert not stale, f"dvc.lock is stale for {stale}: {FIX}"


def test_lock_commands_deps_and_params_are_dvc_yaml_and_params_yaml():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    lock = _lock()
    assert set(lock) == set(stages), f"stages in dvc.yaml and dvc.lock differ: {FIX}"
    problems = []
    for name, spec in stages.items():
        got = lock[name]
        if " ".join(spec["cmd"].split()) != " ".join(got["cmd"].split()):
            problems.append(f"{name}: cmd")
        if set(spec["deps"]) != {d["path"] for d in got["deps"]}:
            problems.append(f"{name}: deps {sorted(set(spec['deps']) ^ {d['path'] for d in got['deps']})}")
        for key, value in got.get("params", {}).get("params.yaml", {}).items():
            node = params
            for part in key.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node != value:
                problems.append(f"{name}: params.yaml {key}")
    assert not problems, f"dvc.lock does not match: {problems}: {FIX}"
