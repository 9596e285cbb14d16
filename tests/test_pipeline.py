"""The whole pipeline through DVC on a tiny configuration, in a temporary copy of the repo.

Covers: `dvc repro` runs all six stages and `track`; a second `dvc repro` reruns only
`track` (always run: one MLflow run per invocation); changing one stage's param reruns
only what depends on it; `dvc exp run -S` works and `dvc exp show` lists it; each of
`dvc repro`, `dvc exp run` and a `dvc repro` served from the run cache makes one
complete MLflow run; `dvc push`/`dvc pull` through a local-folder remote gives
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

STAGES = ["prepare", "eda", "quantiles", "histmap", "train", "export", "evaluate", "track"]


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
                "models/model.pt", "models/model.onnx", "models/quantiles.onnx", "metrics/export.json", "metrics/eval.json", "metrics/histmap.json", "metrics/train.json"]:
        assert (repo / out).is_file(), out
    ev = json.loads((repo / "metrics/eval.json").read_text())
    assert ev  # real numbers, checked in depth by the evaluation tests
    shown = run([str(BIN / "dvc"), "metrics", "show", "--json"], repo).stdout
    assert "eval.json" in shown


def test_second_repro_reruns_nothing(reproduced):
    repo, _ = reproduced
    proc = run([str(BIN / "dvc"), "repro"], repo)
    assert [ln for ln in proc.stdout.splitlines() if "Running stage" in ln] == ["Running stage 'track':"], proc.stdout


def test_param_change_reruns_only_downstream(reproduced):
    repo, _ = reproduced
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["evaluate"]["examples"] = 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = run([str(BIN / "dvc"), "repro"], repo)
    assert "Running stage 'evaluate'" in proc.stdout
    for stage in STAGES[:-2]:
        assert f"Running stage '{stage}'" not in proc.stdout
    run(["git", "checkout", "params.yaml"], repo)
    run([str(BIN / "dvc"), "repro"], repo)


def _stale(repo: Path) -> set[str]:
    """Stages `dvc status` says would rerun (but `track`, which always does)."""
    out = json.loads(run([str(BIN / "dvc"), "status", "--json"], repo).stdout or "{}")
    return set(out) - {"track"}


@pytest.mark.parametrize("edit, stale", [
    ("lowlight/evaluation/report.py", {"evaluate"}),  # the table renderer: the network is not retrained
    ("lowlight/models/unet.py", {"train", "export", "evaluate"}),  # the network: the quantile model is not refitted
    ("lowlight/histbranch/quantiles.py", {"quantiles", "histmap", "export", "evaluate"}),  # downstream ones follow
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


def _mlflow_runs(db: Path) -> dict[str, dict]:
    """Every run in the store: its tags, params, latest metrics, dataset inputs and logged models."""
    con = sqlite3.connect(db)
    try:
        out = {}
        for (run_id,) in con.execute("select run_uuid from runs order by start_time"):
            q = lambda sql: con.execute(sql, (run_id,)).fetchall()  # noqa: E731
            out[run_id] = {
                "tags": dict(q("select key, value from tags where run_uuid=?")),
                "params": dict(q("select key, value from params where run_uuid=?")),
                "metrics": dict(q("select key, value from latest_metrics where run_uuid=?")),
                "steps": q("select step from metrics where run_uuid=? and key='train.val_psnr'"),
                "datasets": q("select source_id from inputs where destination_id=? and source_type='DATASET'"),
                "models": q("select name from logged_models where source_run_id=?"),
            }
        return out
    finally:
        con.close()


def test_every_invocation_makes_one_complete_mlflow_run(reproduced):
    """`dvc repro`, then `dvc exp run -S train.epochs=2`, then a `dvc repro` that DVC serves from its run
    cache: three pipeline runs, each with every params key, every stage's headline metrics, the curves,
    the pyfunc model, the dataset and the commit; the train runs nested under the runs that trained."""
    from lowlight.config import flatten, load_params

    repo, _ = reproduced
    tracked = {"LOWLIGHT_MLFLOW": "1", "MLFLOW_TRACKING_URI": ""}
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "baseline", "--allow-empty"], repo)
    run([str(BIN / "dvc"), "exp", "run", "-S", "train.epochs=2", "-S", "evaluate.register_model=tiny-enhancer",
         "-n", "two-epochs"], repo, env=tracked)
    run(["git", "checkout", "params.yaml"], repo)
    cached = run([str(BIN / "dvc"), "repro"], repo, env=tracked)
    assert "Running stage 'train'" not in cached.stdout  # restored from the run cache, not retrained
    head = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    ancestors = set(run(["git", "rev-list", "HEAD~1"], repo).stdout.split())  # the fixture's repro ran before

    runs = _mlflow_runs(repo / "mlflow.db")
    pipeline = {i: r for i, r in runs.items() if r["tags"].get("lowlight.stage") == "pipeline"}
    trains = {i: r for i, r in runs.items() if r["tags"].get("lowlight.stage") == "train"}
    # the module's first repro and the run-cache repro are "workspace"; the experiment carries its name
    assert [r["tags"]["dvc.exp_name"] for r in pipeline.values()][-2:] == ["two-epochs", "workspace"]
    assert len(trains) >= 2  # the first repro's and the experiment's: the cached repro trained nothing
    every_key = set(flatten(load_params(repo / "params.yaml")))
    for k, (run_id, r) in enumerate(list(pipeline.items())[-3:]):
        assert every_key <= set(r["params"]), every_key - set(r["params"])
        figures = r["metrics"]  # the headline figures are metrics (MLflow's columns and charts), not tags
        assert not [k for k in r["tags"] if k.startswith("figure.")], sorted(r["tags"])
        for stage in ("eda", "quantiles", "histmap", "train", "eval"):
            assert any(k.startswith(f"{stage}.") for k in figures), (stage, sorted(figures))
        assert {"train.best_val_psnr", "quantiles.val_mae", "eval.shipped.psnr"} <= set(figures), sorted(figures)
        assert any(k.startswith("timing.") for k in figures)  # the timings DVC no longer tracks
        assert "eval.pipeline.psnr" in r["metrics"] and r["datasets"] and r["models"], r
        commit = r["tags"]["mlflow.source.git.commit"]
        assert commit in ancestors if k == 0 else commit == head, (k, commit)
        epochs = int(r["params"]["train.epochs"])
        # curves with step = epoch, from epoch 0 (the starting weights) when train.init fine-tunes
        first = 0 if r["params"]["train.init"] != "none" else 1
        assert sorted(s for (s,) in r["steps"]) == list(range(first, epochs + 1))
        child = r["tags"].get("lowlight.train_run")
        assert child in trains, r["tags"]
    con = sqlite3.connect(repo / "mlflow.db")  # evaluate.register_model: the experiment's model is registered
    [(version, description, source_run)] = con.execute(
        "select version, description, run_id from model_versions where name='tiny-enhancer'").fetchall()
    con.close()
    assert "PSNR" in description and source_run in pipeline, (version, description)
    exp_run = next(r for r in pipeline.values() if r["tags"]["dvc.exp_name"] == "two-epochs")
    # its name says what changed; the kept-weights verdict is on it
    assert exp_run["tags"]["mlflow.runName"].startswith("two-epochs ") and \
        "train.epochs=2" in exp_run["tags"]["mlflow.runName"], exp_run["tags"]["mlflow.runName"]
    assert exp_run["tags"]["train.kept_starting_weights"] in ("true", "false")
    exp_id = next(i for i, r in pipeline.items() if r is exp_run)
    assert trains[exp_run["tags"]["lowlight.train_run"]]["tags"]["mlflow.parentRunId"] == exp_id


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

