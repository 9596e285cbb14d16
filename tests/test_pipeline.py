"""The whole pipeline through DVC on a tiny configuration, in a temporary copy of the repo.

Covers: `dvc repro` runs all six stages; a second `dvc repro` reruns nothing;
changing one stage's param reruns only what depends on it; `dvc exp run -S`
works and `dvc exp show` lists it; one MLflow run per invocation with every
stage's figures; `dvc push`/`dvc pull` through a local-folder remote gives
bit-identical outputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
TINY = {
    "data": {"max_size": 64, "pairs_per_image": 1},
    "eda": {"examples": 2},
    "quantiles": {"n_estimators": 20, "examples": 2},
    "train": {"epochs": 1, "crop_size": 32, "batch_size": 4, "model": "unet", "steps_per_epoch": 2},
    "evaluate": {"examples": 2},
}
STAGES = ["prepare", "eda", "quantiles", "histmap", "train", "evaluate"]


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(base.get(k, {}), v) if isinstance(v, dict) and v else v
    return out


def run(cmd, cwd, env=None, check=True):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **(env or {})}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def _digest(path: Path) -> dict[str, str]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(f.relative_to(path.parent)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    for name in ("dvc.yaml", ".dvcignore"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, root / name)
    for name in ("lowlight", "stages"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "weights"))
    (root / "lowlight" / "weights").mkdir(exist_ok=True)
    params = _merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / ".gitignore").write_text((REPO / ".gitignore").read_text())
    run(["git", "init", "-q"], root)
    run(["git", "config", "user.email", "t@t"], root)
    run(["git", "config", "user.name", "t"], root)
    run([str(BIN / "dvc"), "init", "-q"], root)
    run([str(BIN / "dvc"), "config", "core.analytics", "false"], root)
    run([str(BIN / "dvc"), "config", "core.autostage", "true"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "init"], root)
    return root


@pytest.fixture(scope="module")
def reproduced(repo):
    proc = run([str(BIN / "dvc"), "repro"], repo, env={"LOWLIGHT_MLFLOW": "1", "MLFLOW_TRACKING_URI": ""})
    return repo, proc


def test_repro_runs_all_stages(reproduced):
    repo, proc = reproduced
    for stage in STAGES:
        assert f"Running stage '{stage}'" in proc.stdout, proc.stdout
    for out in ["data/prepared/manifest.csv", "data/eda/percentiles.csv", "models/quantiles.ubj",
                "models/model.pt", "metrics/eval.json", "metrics/histmap.json", "metrics/train.json"]:
        assert (repo / out).is_file(), out
    ev = json.loads((repo / "metrics/eval.json").read_text())
    assert ev  # real numbers, checked in depth by the evaluation tests
    shown = run([str(BIN / "dvc"), "metrics", "show", "--json"], repo).stdout
    assert "eval.json" in shown


def test_second_repro_reruns_nothing(reproduced):
    repo, _ = reproduced
    proc = run([str(BIN / "dvc"), "repro"], repo)
    assert "Running stage" not in proc.stdout, proc.stdout


def test_one_mlflow_run_per_repro_with_every_stage(reproduced):
    repo, _ = reproduced
    db = repo / "mlflow.db"
    assert db.is_file()
    con = sqlite3.connect(db)
    runs = con.execute("select run_uuid from runs").fetchall()
    assert len(runs) == 1, runs
    tags = dict(con.execute("select key, value from tags where run_uuid=?", runs[0]).fetchall())
    for stage in STAGES:
        assert tags.get(f"stage.{stage}") == "done", tags
    assert "git_rev" in tags
    n_params = con.execute("select count(*) from params where run_uuid=?", runs[0]).fetchone()[0]
    assert n_params > 10


def test_param_change_reruns_only_downstream(reproduced):
    repo, _ = reproduced
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["evaluate"]["examples"] = 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = run([str(BIN / "dvc"), "repro"], repo)
    assert "Running stage 'evaluate'" in proc.stdout
    for stage in STAGES[:-1]:
        assert f"Running stage '{stage}'" not in proc.stdout
    run(["git", "checkout", "params.yaml"], repo)
    run([str(BIN / "dvc"), "repro"], repo)


def test_exp_run_set_param_and_show(reproduced):
    repo, _ = reproduced
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "repro", "--allow-empty"], repo)
    run([str(BIN / "dvc"), "exp", "run", "-S", "evaluate.examples=1", "-n", "tiny-exp"], repo,
        env={"LOWLIGHT_MLFLOW": "0"})
    shown = run([str(BIN / "dvc"), "exp", "show", "--json"], repo).stdout
    assert "tiny-exp" in shown
    diff = run([str(BIN / "dvc"), "params", "diff", "HEAD", "--all"], repo)
    assert diff.returncode == 0


def test_remote_push_pull_bit_identical(reproduced, tmp_path):
    repo, _ = reproduced
    remote = tmp_path / "remote"
    run([str(BIN / "dvc"), "remote", "add", "-f", "-d", "shared", str(remote)], repo)
    before = {}
    for out in ["data/prepared", "models/model.pt", "models/quantiles.ubj", "data/mapped"]:
        before.update(_digest(repo / out))
    run([str(BIN / "dvc"), "push"], repo)
    shutil.rmtree(repo / ".dvc" / "cache")
    shutil.rmtree(repo / "data" / "prepared")
    shutil.rmtree(repo / "data" / "mapped")
    (repo / "models" / "model.pt").unlink()
    (repo / "models" / "quantiles.ubj").unlink()
    run([str(BIN / "dvc"), "pull"], repo)
    after = {}
    for out in ["data/prepared", "models/model.pt", "models/quantiles.ubj", "data/mapped"]:
        after.update(_digest(repo / out))
    assert after == before
