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
