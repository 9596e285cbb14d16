"""MLflow tracking: one run per ``dvc repro`` / ``dvc exp run``, shared by its stages.

Each DVC stage is its own process, so the stages of one pipeline invocation
find their common run by a key: the process id and start time of the ``dvc``
process above them (one key per ``dvc repro`` or per queued experiment). A
stage started by hand, outside DVC, gets a run of its own.

The tracking URI is ``$MLFLOW_TRACKING_URI`` when set (a shared server), else
an SQLite file at the repository root as an absolute URI, so runs from
``dvc exp run --temp`` and the queue land in the same database. SQLite
writers are retried, and a server that does not answer fails within seconds
with a message that names the URI. A store that cannot be written (a read-only or
full ``mlflow.db``) or reached is a :class:`TrackingError` naming the URI, and never
hides the stage's own error: marking a failed stage is best effort.

A stage sets the run back to RUNNING when it starts and to FINISHED or FAILED when
it ends, so a pipeline killed in a stage leaves its run RUNNING.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

from lowlight.errors import UserError

__all__ = ["repo_root", "tracking_uri", "pipeline_run", "TrackingError", "Tracker", "NullTracker"]

log = logging.getLogger(__name__)


class TrackingError(UserError, RuntimeError):
    """The tracking store cannot be used; the message names its URI and how to run without it."""


def _store_errors() -> tuple[type[BaseException], ...]:
    """What an unwritable, full or unreachable store raises through MLflow (as opposed to a bug here)."""
    import sqlite3

    from mlflow.exceptions import MlflowException

    errors: list[type[BaseException]] = [MlflowException, OSError, sqlite3.Error]
    try:
        from sqlalchemy.exc import SQLAlchemyError

        errors.append(SQLAlchemyError)
    except ImportError:  # a server-only MLflow client
        pass
    return tuple(errors)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__


def _store_error(uri: str, exc: BaseException) -> TrackingError:
    # MLflow wraps SQLAlchemy, which wraps the driver: the innermost error says what is wrong
    # ('attempt to write a readonly database'); the outer ones talk about sessions and flushes
    # (explicit causes only: the implicit context can be the stage's own error)
    root, seen = exc, {id(exc)}
    while root.__cause__ is not None and id(root.__cause__) not in seen:
        root = root.__cause__
        seen.add(id(root))
    return TrackingError(f"MLflow tracking store {uri} cannot be used ({_first_line(root)}); make it writable "
                         "and reachable, or set LOWLIGHT_MLFLOW=0 to run without tracking")


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


def tracking_uri(root: Path | None = None) -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    # a queued/temp experiment runs in a copy of the repo; log to the original one
    root = Path(os.environ.get("LOWLIGHT_MLFLOW_ROOT") or root or _original_root())
    return f"sqlite:///{(root / 'mlflow.db').resolve()}"


def _original_root() -> Path:
    root = repo_root()
    # `dvc exp run --temp` and queued runs execute inside .dvc/tmp/exps/...; walk out of it
    parts = root.parts
    if ".dvc" in parts:
        return Path(*parts[: parts.index(".dvc")])
    return root


def _invocation_key() -> str:
    """Identify the enclosing ``dvc`` process (pid + start time) or this process alone."""
    try:
        import psutil

        proc = psutil.Process().parent()
        while proc is not None:
            cmd = " ".join(proc.cmdline()[:3]).lower()
            if "dvc" in Path(proc.cmdline()[0]).name.lower() or " -m dvc" in cmd or "/dvc " in cmd + " ":
                return f"dvc-{proc.pid}-{int(proc.create_time())}"
            proc = proc.parent()
    except Exception:  # psutil missing or a process we may not inspect
        pass
    return f"proc-{os.getpid()}-{int(time.time())}"


def _git_rev(root: Path) -> str:
    rev = os.environ.get("DVC_EXP_BASELINE_REV")
    if rev:
        return rev
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _check_server(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, naming the URI, when an HTTP tracking server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout)
    except urllib.error.HTTPError:
        return  # it answered; a server without /health is still a server
    except (urllib.error.URLError, OSError) as exc:
        raise TrackingError(
            f"MLflow tracking server {uri} does not answer ({getattr(exc, 'reason', exc)}); start it, or unset "
            "MLFLOW_TRACKING_URI to log to the local SQLite store") from exc


def _check_sqlite(uri: str) -> None:
    """Fail at once, naming the URI, when a local SQLite store cannot be opened or written.

    MLflow retries opening a database for 100 s (10 attempts, exponential back-off) before
    it gives up; a folder that cannot be created or a file that is not a database never heals.
    """
    if not uri.startswith("sqlite:///"):
        return
    path = Path(uri[len("sqlite:///"):])
    if str(path).startswith("file:") or "?" in str(path) or str(path) == ":memory:":
        return  # an SQLite URI filename with options: MLflow's to open
    import sqlite3

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path, timeout=5)  # creates the file, as MLflow would
        try:
            con.execute("pragma schema_version").fetchone()  # reads the header: 'file is not a database'
        finally:
            con.close()
    except (OSError, sqlite3.Error) as exc:
        raise _store_error(uri, exc) from exc
    for target in (path, path.parent):  # SQLite writes a journal beside the file
        if not os.access(target, os.W_OK):
            raise TrackingError(f"MLflow tracking store {uri} is read-only ({target} cannot be written); make it "
                                "writable, or set LOWLIGHT_MLFLOW=0 to run without tracking")


def _retry(fn, *args, attempts: int = 8, **kwargs):
    """SQLite under concurrent writers (queued experiments) can say 'database is locked'."""
    delay = 0.2
    for i in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # mlflow wraps sqlite errors in several exception types
            if "locked" not in str(exc).lower() or i == attempts - 1:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 3.0)


class Tracker:
    """Thin wrapper so stages log plain dicts and files; every call retries on a locked DB, and
    a store that fails is a :class:`TrackingError` naming its URI."""

    def __init__(self, client, run_id: str, stage: str, uri: str = ""):
        self.client = client
        self.run_id = run_id
        self.stage = stage
        self.uri = uri

    def _call(self, fn, *args, **kwargs):
        try:
            return _retry(fn, *args, **kwargs)
        except _store_errors() as exc:
            raise _store_error(self.uri, exc) from exc

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        existing = self._call(self.client.get_run, self.run_id).data.params
        new = [Param(str(k), str(v)[:6000]) for k, v in params.items() if str(k) not in existing]
        for i in range(0, len(new), 100):
            self._call(self.client.log_batch, self.run_id, params=new[i:i + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None, prefix: str = "") -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        items = [Metric(f"{prefix}{k}", float(v), ts, step or 0) for k, v in metrics.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)]
        for i in range(0, len(items), 500):
            self._call(self.client.log_batch, self.run_id, metrics=items[i:i + 500])

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        path = Path(path)
        if not path.exists():
            return
        folder = folder if folder is not None else self.stage
        if path.is_dir():
            self._call(self.client.log_artifacts, self.run_id, str(path), folder)
        else:
            self._call(self.client.log_artifact, self.run_id, str(path), folder)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for k, v in tags.items():
            self._call(self.client.set_tag, self.run_id, k, str(v))

    def set_status(self, status: str) -> None:
        """RUNNING when a stage starts (a kill leaves it so), FINISHED or FAILED when it ends."""
        if status == "RUNNING":
            self._call(self.client.update_run, self.run_id, "RUNNING")
        else:
            self._call(self.client.set_terminated, self.run_id, status)


def _init_lock(uri: str):
    """Serialise schema creation and run lookup: concurrent first writers to one fresh
    SQLite file otherwise race on its migrations ('table already exists')."""
    path = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else ""
    if path.startswith("file:"):  # an SQLite URI filename with options: file:/x/mlflow.db?mode=ro
        path = path[len("file:"):].split("?", 1)[0]
    if not path or path == ":memory:":
        return contextlib.nullcontext()
    from filelock import FileLock

    return FileLock(path + ".lock", timeout=120)


def _open_run(client, experiment: str, uri: str):
    exp = _retry(client.get_experiment_by_name, experiment)
    if exp is None:
        # with a local store, artifacts go beside the database (absolute), not into ./mlruns of
        # whatever folder a stage happens to run in (a temp experiment's copy, say)
        location = None
        if uri.startswith("sqlite:///"):
            location = (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").as_uri()
        try:
            exp_id = _retry(client.create_experiment, experiment, artifact_location=location)
        except Exception:  # another stage created it meanwhile, or the store cannot be written
            exp = _retry(client.get_experiment_by_name, experiment)
            if exp is None:
                raise
            exp_id = exp.experiment_id
    else:
        exp_id = exp.experiment_id
    key = _invocation_key()
    found = _retry(client.search_runs, [exp_id], filter_string=f"tags.`lowlight.invocation` = '{key}'",
                   max_results=1)
    root = _original_root()
    if found:
        run_id = found[0].info.run_id
    else:
        dvc_exp = os.environ.get("DVC_EXP_NAME", "")
        tags = {"lowlight.invocation": key, "git_rev": _git_rev(root), "dvc_exp": dvc_exp or "workspace",
                "mlflow.runName": dvc_exp or f"repro-{time.strftime('%Y%m%d-%H%M%S')}"}
        run_id = _retry(client.create_run, exp_id, tags=tags).info.run_id
    return client, run_id


def _param_items(params) -> dict[str, Any]:
    """Dotted keys as in params.yaml (``train.lr``), whether given all params or one section."""
    from lowlight.config import Params, flatten

    if not dataclasses.is_dataclass(params):
        return dict(params)
    if isinstance(params, Params):
        return flatten(params)
    for f in dataclasses.fields(Params):
        if isinstance(params, f.default_factory):  # the section this dataclass is
            return flatten(params, prefix=f.name)
    return flatten(params)


class NullTracker(Tracker):
    """What stages get when tracking is off: the same calls, doing nothing."""

    def log_params(self, params):
        pass

    def log_metrics(self, metrics, step=None, prefix=""):
        pass

    def log_artifact(self, path, folder=None):
        pass

    def set_tags(self, tags):
        pass

    def set_status(self, status):
        pass


@contextlib.contextmanager
def pipeline_run(stage: str, params=None, experiment: str = "lowlight",
                 enabled: bool | None = None) -> Iterator[Tracker]:
    """Open (or rejoin) the MLflow run of this pipeline invocation for ``stage``.

    Set ``LOWLIGHT_MLFLOW=0`` to switch tracking off (tests, quick checks); the
    stage's files are written either way.
    """
    if enabled is None:
        enabled = os.environ.get("LOWLIGHT_MLFLOW", "1") not in ("0", "false", "off")
    if not enabled:
        yield NullTracker(None, "", stage)
        return
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # it logs each database error with a traceback before raising it; the TrackingError says it in one line
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    from mlflow.tracking import MlflowClient

    uri = tracking_uri()
    _check_server(uri)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    _check_sqlite(uri)
    try:
        with _init_lock(uri):
            client, run_id = _open_run(MlflowClient(tracking_uri=uri), experiment, uri)
    except (*_store_errors(), ImportError) as exc:  # a read-only mlflow.db, a missing database driver, ...
        raise _store_error(uri, exc) from exc
    tracker = Tracker(client, run_id, stage, uri)
    tracker.set_status("RUNNING")  # the previous stage marked the shared run FINISHED
    if params is not None:
        tracker.log_params(_param_items(params))
    tracker.set_tags({f"stage.{stage}": "running"})
    try:
        yield tracker
    except BaseException:
        try:
            tracker.set_tags({f"stage.{stage}": "failed"})
            tracker.set_status("FAILED")
        except Exception as tag_exc:  # noqa: BLE001 - the stage's own error is the one to report
            log.warning("could not mark stage %s failed in MLflow run %s (%s); the stage's error follows",
                        stage, run_id, _first_line(tag_exc))
        raise
    tracker.set_tags({f"stage.{stage}": "done"})
    tracker.set_status("FINISHED")
