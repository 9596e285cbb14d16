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
import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml

from repo_copy import BIN, make_repo_copy, run

pytestmark = pytest.mark.slow

STAGES = ["prepare", "eda", "quantiles", "histmap", "train", "evaluate"]


def _digest(path: Path) -> dict[str, str]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(f.relative_to(path.parent)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return make_repo_copy(tmp_path_factory.mktemp("repo"))


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


def _stale(repo: Path) -> set[str]:
    """Stages `dvc status` says would rerun."""
    out = json.loads(run([str(BIN / "dvc"), "status", "--json"], repo).stdout or "{}")
    return set(out)


@pytest.mark.parametrize("edit, stale", [
    ("lowlight/evaluation/report.py", {"evaluate"}),  # the table renderer: the network is not retrained
    ("lowlight/models/unet.py", {"train", "evaluate"}),  # the network: the quantile model is not refitted
    ("lowlight/histbranch/quantiles.py", {"quantiles", "histmap", "evaluate"}),  # downstream ones follow once it reruns
    ("params:base.experiment", set()),  # the MLflow experiment's name changes no output
    ("params:train.lr", {"train"}),
    ("params:base.threads", {"quantiles", "train"}),
])
def test_an_edit_reruns_exactly_what_it_changes(reproduced, edit, stale):
    repo, _ = reproduced
    if edit.startswith("params:"):
        section, key = edit[len("params:"):].split(".")
        params = yaml.safe_load((repo / "params.yaml").read_text())
        params[section][key] = {"experiment": "renamed", "lr": 0.0123, "threads": 3}[key]
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        restore = ["params.yaml"]
    else:
        (repo / edit).write_text((repo / edit).read_text() + "\n# an edit\n")
        restore = [edit]
    try:
        assert _stale(repo) == stale
    finally:
        run(["git", "checkout", *restore], repo)
    assert _stale(repo) == set()


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
