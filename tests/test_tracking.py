"""MLflow tracking: local SQLite store, concurrent writers, a server that is down, system metrics,
and the pipeline record read from the stages' files."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from lowlight.tracking import TrackingError, stage_run, tracking_uri


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_uri_is_absolute_sqlite_at_repo_root(tmp_path, monkeypatch):
    (tmp_path / ".dvc").mkdir()
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(sub)
    assert tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    # a queued / temp experiment runs inside .dvc/tmp/exps/...: it logs to the original repo
    inner = tmp_path / ".dvc" / "tmp" / "exps" / "run1"
    inner.mkdir(parents=True)
    monkeypatch.setenv("DVC_ROOT", str(inner))
    assert tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"


@pytest.mark.fault
def test_server_down_fails_fast_naming_uri(monkeypatch):
    uri = f"http://127.0.0.1:{_free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    start = time.monotonic()
    with pytest.raises(TrackingError) as info:
        with stage_run("eda", on=True):
            pass
    assert uri in str(info.value)
    assert time.monotonic() - start < 10


@pytest.mark.fault
@pytest.mark.slow
def test_concurrent_sqlite_writers_lose_nothing(tmp_path):
    """Queued experiments write to one SQLite file at once; every run and metric must land."""
    (tmp_path / ".dvc").mkdir()
    script = textwrap.dedent("""
        import sys
        from lowlight.tracking import stage_run
        k = int(sys.argv[1])
        with stage_run("train", params={"worker": k}, on=True) as t:
            for step in range(15):
                t.log_metrics({"loss": 1.0 / (step + 1), "worker": k}, step=step)
    """)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(DVC_ROOT=str(tmp_path), LOWLIGHT_MLFLOW="1")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(k)], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(4)]
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-3000:]
    con = sqlite3.connect(tmp_path / "mlflow.db")
    assert con.execute("select count(*) from runs").fetchone()[0] == 4
    assert con.execute("select count(*) from metrics where key='loss'").fetchone()[0] == 4 * 15


# --------------------------------------------------------------------------- a store that fails (issue 13)


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh SQLite store for this test."""
    db = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    return db


def _runs(db):
    con = sqlite3.connect(db)
    try:
        return con.execute("select run_uuid, status from runs").fetchall()
    finally:
        con.close()


def _tag(db, run_id, key):
    con = sqlite3.connect(db)
    try:
        return con.execute("select value from tags where run_uuid=? and key=?", (run_id, key)).fetchone()[0]
    finally:
        con.close()


@pytest.mark.fault
def test_failure_tagging_never_hides_the_stage_error(store, caplog):
    """A full disk: the stage's clean OutputError must come out, not MLflow's error from tagging it failed."""
    from lowlight.atomic import OutputError

    def disk_full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    with pytest.raises(OutputError, match="cannot write"):
        with stage_run("train", on=True) as tracker:
            tracker.client.set_tag = tracker.client.set_terminated = disk_full
            raise OutputError("models/model.pt: cannot write (No space left on device)")
    assert "could not mark stage train failed" in caplog.text and "disk is full" in caplog.text


@pytest.mark.fault
@pytest.mark.parametrize("kind", ["read-only database", "not a database", "folder is a file", "missing driver"])
def test_an_unusable_store_is_one_line_naming_the_uri(store, tmp_path, monkeypatch, kind):
    from lowlight.errors import user_errors

    if kind == "read-only database":
        with stage_run("prepare", on=True):
            pass  # a store with its tables, then opened read-only (chmod 444 does not stop root)
        uri = f"sqlite:///file:{store}?mode=ro&uri=true"
        # MLflow creates the "folder" of an SQLite URI filename relative to the working directory
        # (./file:/tmp/...): keep that out of the checkout
        monkeypatch.chdir(tmp_path)
    elif kind == "not a database":
        store.write_bytes(b"not an SQLite file " * 50)
        uri = f"sqlite:///{store}"
    elif kind == "folder is a file":
        (tmp_path / "blocker").write_text("a file where the store's folder should be")
        uri = f"sqlite:///{tmp_path / 'blocker' / 'mlflow.db'}"
    else:
        import importlib.util

        if importlib.util.find_spec("psycopg") or importlib.util.find_spec("psycopg2"):
            pytest.skip("a PostgreSQL driver is installed")
        uri = "postgresql://nobody@127.0.0.1:1/mlflow"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    start = time.monotonic()
    with pytest.raises(TrackingError) as info:
        with stage_run("eda", params={"eda.examples": 4}, on=True):
            pass
    msg = str(info.value)
    print(f"{kind}: {time.monotonic() - start:.2f} s: {msg}")
    assert uri in msg and "LOWLIGHT_MLFLOW=0" in msg and "\n" not in msg and len(msg) < 400, msg
    assert isinstance(info.value, user_errors())  # a stage prints it as one line
    assert time.monotonic() - start < 10


@pytest.mark.fault
def test_read_only_store_as_a_normal_user(store, monkeypatch):
    if os.geteuid() == 0:
        pytest.skip("root writes to a chmod 444 file; test_an_unusable_store_is_one_line_naming_the_uri covers it")
    with stage_run("prepare", on=True):
        pass
    store.chmod(0o444)
    with pytest.raises(TrackingError, match="read-only"):
        with stage_run("eda", on=True):
            pass


@pytest.mark.fault
def test_a_killed_stage_leaves_its_run_running(store, tmp_path):
    """A run is FINISHED, FAILED or KILLED only by its own process; a SIGKILL leaves it RUNNING, and a rerun is a new run."""
    import signal

    with stage_run("prepare", on=True):
        pass
    [(first, status)] = _runs(store)
    assert status == "FINISHED"
    script = textwrap.dedent("""
        import time
        from lowlight.tracking import stage_run
        with stage_run("train", on=True):
            print("started", flush=True)
            time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "LOWLIGHT_MLFLOW": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "started", proc.stderr.read()[-2000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    runs = dict(_runs(store))
    killed = next(r for r in runs if r != first)
    assert runs == {first: "FINISHED", killed: "RUNNING"}
    assert _tag(store, killed, "lowlight.stage") == "train"
    with stage_run("train", on=True):  # the rerun is a run of its own
        pass
    assert sorted(dict(_runs(store)).values()) == ["FINISHED", "FINISHED", "RUNNING"]


@pytest.mark.fault
@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT"])
def test_a_stage_stopped_from_outside_is_killed_not_failed(store, how):
    """`kill`, a queue's or CI's timeout (SIGTERM) and Ctrl-C (SIGINT) end the run KILLED, as MLflow
    names it, and the process still exits non-zero; the previous SIGTERM handler comes back."""
    import signal

    # A job started in the background by a non-interactive shell (`make test &`, nohup) inherits
    # SIGINT ignored, and Python then installs no KeyboardInterrupt handler: give the child the
    # terminal's default, which is what Ctrl-C meets.
    script = textwrap.dedent("""
        import signal, sys, time
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from lowlight.tracking import stage_run
        before = signal.getsignal(signal.SIGTERM)
        try:
            with stage_run("train", on=True):
                print("started", flush=True)
                time.sleep(120)
        except KeyboardInterrupt:
            assert signal.getsignal(signal.SIGTERM) is before
            sys.exit(130)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "LOWLIGHT_MLFLOW": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "started", proc.stderr.read()[-2000:]
        proc.send_signal(getattr(signal, how))
        assert proc.wait(timeout=60) == 130, proc.stderr.read()[-2000:]
    finally:
        proc.kill()
    [(run, status)] = _runs(store)
    assert status == "KILLED" and _tag(store, run, "lowlight.stage") == "train"


def test_stage_runs_carry_the_commit_and_system_metrics(store, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.5")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", "1")
    monkeypatch.setenv("DVC_EXP_NAME", "tiny-exp")
    with stage_run("train", params={"train.lr": 0.1}, system_metrics=True, on=True) as tracker:
        tracker.log_metrics({"val_psnr": 20.0}, step=1, prefix="train.")
        time.sleep(2.5)
    [(run_id, status)] = _runs(store)
    assert status == "FINISHED"
    con = sqlite3.connect(store)
    keys = {k for (k,) in con.execute("select key from metrics where run_uuid=?", (run_id,))}
    assert "train.val_psnr" in keys and any(k.startswith("system/cpu_utilization") for k in keys), keys
    assert any(k.startswith("system/system_memory_usage") for k in keys), keys
    assert _tag(store, run_id, "mlflow.source.git.commit")  # HEAD of this checkout, or "unknown" outside git
    assert _tag(store, run_id, "mlflow.runName") == "tiny-exp-train"


# --------------------------------------------------------------------------- the pipeline record


def test_the_record_reads_every_stage_and_refuses_a_missing_file(tmp_path):
    import json

    from lowlight.errors import DataError
    from lowlight.pipeline_record import METRICS_FILES, dataset_record, epoch_curves, headline_metrics

    for stage, name in METRICS_FILES.items():
        (tmp_path / name).write_text(json.dumps({"a": 1.5, "nested": {"b": 2}, "flag": True}))
    m = headline_metrics(tmp_path)
    assert m["eval.nested.b"] == 2.0 and m["eda.a"] == 1.5 and "train.flag" not in m
    assert len(m) == 2 * len(METRICS_FILES)
    (tmp_path / "train.json").unlink()
    with pytest.raises(DataError, match="train.json"):
        headline_metrics(tmp_path)

    (tmp_path / "log.csv").write_text("epoch,train_loss,val_psnr,lr,epoch_seconds\n1,0.5,20.1,0.002,3\n2,0.4,21.0,0.001,3\n")
    assert epoch_curves(tmp_path / "log.csv") == [(1, {"train_loss": 0.5, "val_psnr": 20.1, "lr": 0.002}),
                                                  (2, {"train_loss": 0.4, "val_psnr": 21.0, "lr": 0.001})]
    (tmp_path / "prep").mkdir()
    (tmp_path / "prep" / "manifest.csv").write_text(
        "split,stem,high_source,kind\ntrain,a,LOL/1.png,real\ntrain,b,LOL/2.png,real\nval,c,LOL/3.png,real\n")
    rec = dataset_record(tmp_path / "prep")
    assert rec["splits"] == {"train": 2, "val": 1, "test": 0} and rec["pairs"] == 3 and len(rec["digest"]) == 64
    with pytest.raises(DataError, match="manifest.csv"):
        dataset_record(tmp_path / "nowhere")


def test_changed_params_name_what_an_experiment_set():
    from lowlight.pipeline_record import changed_params

    base = "train:\n  epochs: 30\n  lr: 0.002\nevaluate:\n  shipped: true\n"
    now = "train:\n  epochs: 1\n  lr: 0.002\nevaluate:\n  shipped: true\n"
    assert changed_params(now, base) == {"train.epochs": "1"}
    assert changed_params(base, base) == {} and changed_params(now, "") == {}


def test_the_pipeline_run_starts_when_the_invocation_did(monkeypatch):
    from lowlight.provenance import invocation_start
    from lowlight.tracking import runs_url

    monkeypatch.setenv("LOWLIGHT_PIPELINE_START", "1000.5")
    assert invocation_start(now_ms=5_000_000) == 1_000_500
    monkeypatch.delenv("LOWLIGHT_PIPELINE_START")
    assert invocation_start(now_ms=5_000_000) == 5_000_000  # pytest is no dvc: it starts now
    assert runs_url("3").endswith("/#/experiments/3/runs?workflowType=machine_learning")


def test_an_experiment_made_without_a_kind_gets_the_model_training_kind(store):
    from mlflow.tracking import MlflowClient

    from lowlight.tracking import KIND, KIND_TAG, open_store

    MlflowClient(tracking_uri=f"sqlite:///{store}").create_experiment("old")
    client, exp_id, _ = open_store("old")
    assert client.get_experiment(exp_id).tags[KIND_TAG] == KIND == "custom_model_development"
    client.set_experiment_tag(exp_id, KIND_TAG, "genai_development")  # a user's choice is kept
    client, exp_id, _ = open_store("old")
    assert client.get_experiment(exp_id).tags[KIND_TAG] == "genai_development"


def test_metrics_files_are_rounded_and_timings_go_beside_them(tmp_path):
    import json

    from lowlight.metrics_files import read_timings, write_metrics

    write_metrics(tmp_path / "m" / "q.json", {"val_mae": 23.830389836872065, "n": 3, "fit_seconds": 2.5},
                  ("val_mae", "n"), timings={"fit_seconds": 2.544095755001763})
    assert (tmp_path / "m" / "q.json").read_text() == '{\n  "val_mae": 23.8304,\n  "n": 3\n}\n'
    assert json.loads((tmp_path / "m" / "timings" / "q.json").read_text()) == {"fit_seconds": 2.544095755001763}
    assert read_timings(tmp_path / "m") == {"q.fit_seconds": 2.544095755001763}
    assert read_timings(tmp_path / "nowhere") == {}

