"""MLflow tracking: local SQLite store, concurrent writers, and a server that is down."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from lowlight.tracking import TrackingError, pipeline_run, tracking_uri


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
        with pipeline_run("eda", enabled=True):
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
        from lowlight.tracking import pipeline_run
        k = int(sys.argv[1])
        with pipeline_run("train", params={"worker": k}, enabled=True) as t:
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
    """A fresh SQLite store for this test, and this process's runs grouped under one key."""
    import lowlight.tracking as tracking

    db = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    monkeypatch.setattr(tracking, "_invocation_key", lambda: "test-invocation")
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
        with pipeline_run("train", enabled=True) as tracker:
            tracker.client.set_tag = tracker.client.set_terminated = disk_full
            raise OutputError("models/model.pt: cannot write (No space left on device)")
    assert "could not mark stage train failed" in caplog.text and "disk is full" in caplog.text


@pytest.mark.fault
@pytest.mark.parametrize("kind", ["read-only database", "not a database", "folder is a file", "missing driver"])
def test_an_unusable_store_is_one_line_naming_the_uri(store, tmp_path, monkeypatch, kind):
    from lowlight.errors import user_errors

    if kind == "read-only database":
        with pipeline_run("prepare", enabled=True):
            pass  # a store with its tables, then opened read-only (chmod 444 does not stop root)
        uri = f"sqlite:///file:{store}?mode=ro&uri=true"
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
        with pipeline_run("eda", params={"eda.examples": 4}, enabled=True):
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
    with pipeline_run("prepare", enabled=True):
        pass
    store.chmod(0o444)
    with pytest.raises(TrackingError, match="read-only"):
        with pipeline_run("eda", enabled=True):
            pass


@pytest.mark.fault
def test_a_killed_stage_leaves_the_run_running(store, tmp_path):
    """The run shared by the stages goes back to RUNNING when a stage starts, so a SIGKILL leaves it so."""
    import signal

    with pipeline_run("prepare", enabled=True):
        pass
    [(run_id, status)] = _runs(store)
    assert status == "FINISHED"
    script = textwrap.dedent("""
        import time
        import lowlight.tracking as tracking
        tracking._invocation_key = lambda: "test-invocation"
        with tracking.pipeline_run("train", enabled=True):
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
    assert _runs(store) == [(run_id, "RUNNING")]
    assert _tag(store, run_id, "stage.train") == "running"
    with pipeline_run("train", enabled=True):  # the rerun finishes it
        pass
    assert _runs(store) == [(run_id, "FINISHED")]
    assert _tag(store, run_id, "stage.train") == "done"
