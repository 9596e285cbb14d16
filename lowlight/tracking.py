"""MLflow tracking: the store, the experiment, and runs a stage writes to.

Two kinds of run, both in the experiment ``base.experiment``:

* the **pipeline run**, one per ``dvc repro`` / ``dvc exp run``, written by the last
  stage (``stages/track.py``, always run) from the files the other stages left, so it
  is complete whatever DVC took from its cache;
* the **train run**, opened by the ``train`` stage while it trains: per-epoch curves as
  they happen (``step=epoch``) and, with ``base.system_metrics``, CPU/memory/GPU use.
  The pipeline run adopts it as a child (MLflow's ``mlflow.parentRunId`` tag).

A stage finds nothing by walking processes: the run it writes is the one it opens, and
the track stage finds the train run by the checkpoint it produced (a tag holding the
file's SHA-256).

The tracking URI is ``$MLFLOW_TRACKING_URI`` when set (a shared server), else an SQLite
file at the repository root as an absolute URI, so runs from ``dvc exp run --temp`` and
the queue land in the same database. A server that does not answer fails within seconds
with a message that names the URI; a store that cannot be written (a read-only or full
``mlflow.db``) or reached is a :class:`TrackingError` naming the URI, and never hides the
stage's own error: marking a failed run is best effort. ``LOWLIGHT_MLFLOW=0`` switches
tracking off; the stages' files are written either way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from lowlight.interrupts import sigterm_as_interrupt as _sigterm_as_interrupt
from lowlight.provenance import git_commit, original_root
from lowlight.tracking_store import (TrackingError, check_server, check_sqlite, first_line, init_lock, store_error,
                                     store_errors)

__all__ = ["tracking_uri", "enabled", "open_store", "stage_run", "CHECKPOINT_TAG", "KEPT_TAG", "runs_url", "TrackingError",
           "Tracker", "NullTracker"]

log = logging.getLogger(__name__)


def tracking_uri(root: Path | None = None) -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    # a queued/temp experiment runs in a copy of the repo; log to the original one
    root = Path(os.environ.get("LOWLIGHT_MLFLOW_ROOT") or root or original_root())
    return f"sqlite:///{(root / 'mlflow.db').resolve()}"


CHECKPOINT_TAG = "lowlight.checkpoint_sha256"  # on a train run: the checkpoint it wrote
KEPT_TAG = "train.kept_starting_weights"  # "true" when no epoch beat train.init's weights (the model is them)


def enabled() -> bool:
    """Tracking is on unless ``LOWLIGHT_MLFLOW`` is 0, false or off."""
    return os.environ.get("LOWLIGHT_MLFLOW", "1").lower() not in ("0", "false", "off")


# MLflow 3's experiment type: its UI opens a "custom model development" experiment on its runs
# (model training), not on the GenAI traces overview; see runs_url for the UI's own switch
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"


def _experiment_id(client, experiment: str, uri: str) -> str:
    exp = client.get_experiment_by_name(experiment)
    if exp is not None:
        if KIND_TAG not in exp.tags:  # made before the tag was set (or by hand): typed once, a user's kind kept
            with contextlib.suppress(*store_errors()):
                client.set_experiment_tag(exp.experiment_id, KIND_TAG, KIND)
        return exp.experiment_id
    # with a local store, artifacts go beside the database (absolute), not into ./mlruns of
    # whatever folder a stage happens to run in (a temp experiment's copy, say)
    location = None
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:///file:"):
        location = (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").as_uri()
    try:  # the kind tag makes the UI open on its model-training views (runs, charts), not the GenAI ones
        return client.create_experiment(experiment, artifact_location=location,
                                        tags={KIND_TAG: KIND})
    except Exception:  # another process created it meanwhile, or the store cannot be written
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            raise
        return exp.experiment_id


def runs_url(experiment_id: str, ui: str = "http://127.0.0.1:5000") -> str:
    """The experiment's runs table in ``mlflow ui``. MLflow 3.17's UI picks its view from a
    GenAI / model-training switch (remembered per browser, GenAI at first), not from the
    experiment's kind alone; ``workflowType=machine_learning`` sets it to model training."""
    return f"{ui}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def open_store(experiment: str):
    """``(client, experiment_id, uri)`` for the configured store, checked first: one line naming the URI."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # it logs each database error with a traceback before raising it; the TrackingError says it in one line
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    from mlflow.tracking import MlflowClient

    uri = tracking_uri()
    check_server(uri)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    check_sqlite(uri)
    try:
        with init_lock(uri):
            client = MlflowClient(tracking_uri=uri)
            return client, _experiment_id(client, experiment, uri), uri
    except (*store_errors(), ImportError) as exc:  # a read-only mlflow.db, a missing database driver, ...
        raise store_error(uri, exc) from exc


class Tracker:
    """One run, written through an ``MlflowClient``: stages log plain dicts and files; a store
    that fails is a :class:`TrackingError` naming its URI."""

    def __init__(self, client, run_id: str, stage: str, uri: str = ""):
        self.client = client
        self.run_id = run_id
        self.stage = stage
        self.uri = uri

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except store_errors() as exc:
            raise store_error(self.uri, exc) from exc

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(str(k), str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params a request
            self._call(self.client.log_batch, self.run_id, params=items[i:i + 100])

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

    def finish(self, status: str) -> None:
        """FINISHED or FAILED; a run whose process is killed stays RUNNING."""
        self._call(self.client.set_terminated, self.run_id, status)


class NullTracker(Tracker):
    """What a stage gets when tracking is off: the same calls, doing nothing."""

    def __init__(self, stage: str = ""):
        super().__init__(None, "", stage)

    def _call(self, fn, *args, **kwargs):
        return None

    def log_params(self, params):
        pass

    def log_metrics(self, metrics, step=None, prefix=""):
        pass

    def log_artifact(self, path, folder=None):
        pass

    def set_tags(self, tags):
        pass

    def finish(self, status):
        pass


def run_name(stage: str) -> str:
    """``<dvc experiment>-<stage>`` inside ``dvc exp run``, else ``<stage>-<time>``."""
    exp = os.environ.get("DVC_EXP_NAME", "")
    return f"{exp}-{stage}" if exp else f"{stage}-{time.strftime('%Y%m%d-%H%M%S')}"


@contextlib.contextmanager
def stage_run(stage: str, params: Mapping[str, Any] | None = None, experiment: str = "lowlight",
              tags: Mapping[str, Any] | None = None, system_metrics: bool = False,
              on: bool | None = None) -> Iterator[Tracker]:
    """A new run for ``stage``: FINISHED when the block ends, FAILED on an error, KILLED on Ctrl-C
    or SIGTERM (which raises KeyboardInterrupt in the block), RUNNING only after a SIGKILL.

    ``system_metrics`` records CPU, memory and (with pynvml) GPU use while the block runs,
    MLflow's own way (``mlflow.start_run(log_system_metrics=True)``).
    """
    if not (enabled() if on is None else on):
        yield NullTracker(stage)
        return
    client, exp_id, uri = open_store(experiment)
    base_tags = {"mlflow.runName": run_name(stage), "lowlight.stage": stage,
                 "mlflow.source.git.commit": git_commit(original_root()), "mlflow.source.type": "LOCAL",
                 "mlflow.source.name": f"stages/{stage}.py", "dvc.exp_name": os.environ.get("DVC_EXP_NAME", "")}
    try:
        run_id = client.create_run(exp_id, tags={**base_tags, **{k: str(v) for k, v in (tags or {}).items()}},
                                   run_name=base_tags["mlflow.runName"]).info.run_id
    except store_errors() as exc:
        raise store_error(uri, exc) from exc
    tracker = Tracker(client, run_id, stage, uri)
    if params:
        tracker.log_params(params)
    monitor = contextlib.nullcontext()
    if system_metrics:
        import mlflow

        mlflow.set_tracking_uri(uri)
        monitor = mlflow.start_run(run_id=run_id, log_system_metrics=True)
    try:
        with monitor, _sigterm_as_interrupt():
            yield tracker
    except BaseException as exc:
        # MLflow's statuses: KILLED for a run stopped from outside (Ctrl-C, `kill`, a queue's
        # or CI's timeout), FAILED for the stage's own error
        try:
            tracker.finish("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        except Exception as tag_exc:  # noqa: BLE001 - the stage's own error is the one to report
            log.warning("could not mark stage %s failed in MLflow run %s (%s); the stage's error follows",
                        stage, run_id, first_line(tag_exc))
        raise
    tracker.finish("FINISHED")
