"""The MLflow store checked before use: one line naming the URI for every way it can fail.

MLflow retries opening a database for 100 s and logs tracebacks on the way; a server
that does not answer hangs on HTTP retries. Here each is found in seconds and said once.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from lowlight.errors import UserError

__all__ = ["TrackingError", "store_errors", "first_line", "store_error", "check_server", "check_sqlite", "init_lock"]


class TrackingError(UserError, RuntimeError):
    """The tracking store cannot be used; the message names its URI and how to run without it."""


def store_errors() -> tuple[type[BaseException], ...]:
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


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__


def store_error(uri: str, exc: BaseException) -> TrackingError:
    # MLflow wraps SQLAlchemy, which wraps the driver: the innermost error says what is wrong
    # ('attempt to write a readonly database'); the outer ones talk about sessions and flushes
    # (explicit causes only: the implicit context can be the stage's own error)
    root, seen = exc, {id(exc)}
    while root.__cause__ is not None and id(root.__cause__) not in seen:
        root = root.__cause__
        seen.add(id(root))
    return TrackingError(f"MLflow tracking store {uri} cannot be used ({first_line(root)}); make it writable "
                         "and reachable, or set LOWLIGHT_MLFLOW=0 to run without tracking")


def check_server(uri: str, timeout: float = 5.0) -> None:
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


def check_sqlite(uri: str) -> None:
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
        raise store_error(uri, exc) from exc
    for target in (path, path.parent):  # SQLite writes a journal beside the file
        if not os.access(target, os.W_OK):
            raise TrackingError(f"MLflow tracking store {uri} is read-only ({target} cannot be written); make it "
                                "writable, or set LOWLIGHT_MLFLOW=0 to run without tracking")


def init_lock(uri: str):
    """Serialise schema creation and run lookup: concurrent first writers to one fresh
    SQLite file otherwise race on its migrations ('table already exists')."""
    path = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else ""
    if path.startswith("file:"):  # an SQLite URI filename with options: file:/x/mlflow.db?mode=ro
        path = path[len("file:"):].split("?", 1)[0]
    if not path or path == ":memory:":
        return contextlib.nullcontext()
    from filelock import FileLock

    return FileLock(path + ".lock", timeout=120)
