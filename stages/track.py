"""Stage ``track``: one complete MLflow run for this ``dvc repro`` / ``dvc exp run``.

Always runs (``always_changed`` in dvc.yaml) and reads only files, so the run is complete
whether DVC ran each stage or took it from its cache: every key of params.yaml, every
stage's headline metrics, the training curves (``step=epoch``), the figures and tables,
the prepared dataset as an MLflow dataset input, the whole enhancer as a pyfunc model
(and the booster as an XGBoost model), tagged with the git commit and the DVC experiment.
The train stage's live run, when it is found by the checkpoint it wrote, becomes a child
of this one. ``evaluate.register_model: NAME`` also registers the pyfunc model.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

# this checkout's lowlight, not an installed one: `dvc exp run --temp` and queued experiments run a copy
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lowlight.config import flatten, load_params
from lowlight.errors import report_user_errors
from lowlight.metrics_files import read_timings
from lowlight.pipeline_record import changed_params, dataset_record, epoch_curves, headline_metrics
from lowlight.provenance import file_sha256, git_commit, invocation_start, repo_root
from lowlight.tracking import CHECKPOINT_TAG, KEPT_TAG, Tracker, enabled, open_store, runs_url


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--data", type=Path, required=True, help="prepared dataset root (its manifest is the input)")
    ap.add_argument("--metrics", type=Path, required=True, help="the stages' metrics folder")
    ap.add_argument("--plots", type=Path, required=True, help="the stages' plots folder")
    ap.add_argument("--quantile-model", type=Path, required=True)
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--quantiles-onnx", type=Path, required=True, help="the exported booster the logged model runs")
    ap.add_argument("--network-onnx", type=Path, required=True, help="the exported network the logged model runs")
    return ap.parse_args(argv)


def baseline_params(rev: str) -> str:
    """params.yaml as committed at ``rev`` ("" when git cannot say): what ``-S`` overrides are measured against."""
    try:
        out = subprocess.run(["git", "show", f"{rev}:params.yaml"], cwd=repo_root(), capture_output=True,
                             text=True, timeout=5, check=False)
        return out.stdout if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def run_tags(p, changed: dict[str, str]) -> dict[str, str]:
    """The run's name says what changed: the DVC experiment (or `repro`) and the params that differ from the commit."""
    exp = os.environ.get("DVC_EXP_NAME", "")
    baseline = os.environ.get("DVC_EXP_BASELINE_REV", "") or git_commit(repo_root())
    overrides = " ".join(f"{k}={v}" for k, v in changed.items())
    name = exp or f"repro-{time.strftime('%Y%m%d-%H%M%S')}"
    return {"mlflow.runName": f"{name} {overrides}"[:250].strip(),
            "mlflow.source.git.commit": baseline,
            "mlflow.source.type": "LOCAL", "mlflow.source.name": "dvc exp run" if exp else "dvc repro",
            "dvc.exp_name": exp or "workspace", "dvc.baseline_rev": baseline, "dvc.params_changed": overrides or "-",
            "lowlight.stage": "pipeline", "data.source": p.data.source}


def log_dataset(data_root: Path, source: str) -> dict:
    import mlflow
    import pandas as pd

    rec = dataset_record(data_root)
    from mlflow.data.sources import LocalArtifactDatasetSource

    # a source object, not a string that several source kinds claim (MLflow warns and guesses then)
    ds = mlflow.data.from_pandas(pd.read_csv(rec["manifest"], dtype=str),
                                 source=LocalArtifactDatasetSource(str(data_root.resolve())),
                                 name=f"{source}-prepared", digest=rec["digest"][:16])
    mlflow.log_input(ds, context="training",
                     tags={**{f"{s}_pairs": str(n) for s, n in rec["splits"].items()}, "pairs": str(rec["pairs"])})
    return rec


def adopt_train_run(client, exp_id: str, run_id: str, checkpoint: Path) -> str | None:
    """Nest the train run that wrote ``checkpoint`` under this run (or link it, if another run holds it)."""
    digest = file_sha256(checkpoint)
    found = client.search_runs([exp_id], filter_string=f"tags.`{CHECKPOINT_TAG}` = '{digest}'",
                               order_by=["attributes.start_time DESC"], max_results=10)
    if not found:
        return None
    orphan = next((r for r in found if "mlflow.parentRunId" not in r.data.tags), None)
    train = orphan or found[0]
    if orphan is not None:
        client.set_tag(train.info.run_id, "mlflow.parentRunId", run_id)
    client.set_tag(run_id, "lowlight.train_run", train.info.run_id)
    return train.info.run_id


def record(args: argparse.Namespace, p) -> str:
    import mlflow

    from lowlight.histbranch.quantiles import QuantileModel
    from lowlight.inference.pyfunc import log_enhancer_model

    metrics = headline_metrics(args.metrics)  # first: a missing file stops before a half-made run
    client, exp_id, uri = open_store(p.base.experiment)
    mlflow.set_tracking_uri(uri)
    baseline = baseline_params(os.environ.get("DVC_EXP_BASELINE_REV") or "HEAD")
    tags = run_tags(p, changed_params(args.params.read_text(), baseline))
    if "train.best_epoch" in metrics:
        tags[KEPT_TAG] = str(p.train.init != "none" and metrics["train.best_epoch"] == 0).lower()
    # started when `dvc repro` / `dvc exp run` started, so the run's duration is the whole invocation's
    created = client.create_run(exp_id, start_time=invocation_start(), tags=tags, run_name=tags["mlflow.runName"])
    with mlflow.start_run(run_id=created.info.run_id) as run:
        tracker = Tracker(client, run.info.run_id, "pipeline", uri)
        tracker.log_params(flatten(p))
        tracker.log_metrics(metrics)  # the headline figures, as metrics (columns in the runs table)
        tracker.log_metrics(read_timings(args.metrics), prefix="timing.")  # untracked by DVC, kept here
        mlflow.log_dict(metrics, "metrics/headline.json")
        for epoch, row in epoch_curves(args.metrics / "train_log.csv"):
            tracker.log_metrics(row, step=epoch, prefix="train.")
        for path in sorted(args.metrics.iterdir()):
            if path.is_file():
                tracker.log_artifact(path, "metrics")
        tracker.log_artifact(args.metrics / "timings", "metrics/timings")
        tracker.log_artifact(args.plots, "plots")
        rec = log_dataset(args.data, p.data.source)
        info = log_enhancer_model(args.quantiles_onnx, args.network_onnx,
                                  registered_model_name=p.evaluate.register_model or None)
        mlflow.xgboost.log_model(QuantileModel.load(args.quantile_model).booster, name="quantile_booster")
        if p.evaluate.register_model and info.registered_model_version is not None:
            client.update_model_version(
                p.evaluate.register_model, info.registered_model_version,
                description=f"lowlight pipeline: PSNR {metrics.get('eval.pipeline.psnr', float('nan')):.2f} dB, "
                            f"SSIM {metrics.get('eval.pipeline.ssim', float('nan')):.4f} on "
                            f"{int(metrics.get('eval.n_images', 0))} {p.data.source} images; run {run.info.run_id}")
        train_run = adopt_train_run(client, exp_id, run.info.run_id, args.checkpoint)
    print(f"track: MLflow run '{tags['mlflow.runName']}' ({run.info.run_id}) in {uri}: {len(flatten(p))} params, "
          f"{len(metrics)} figures, dataset {rec['pairs']} pairs, model {info.model_uri}"
          + (f", train run {train_run}" if train_run else ""))
    print(f"track: see it with `mlflow ui --backend-store-uri {uri}`, then {runs_url(exp_id)}")
    return run.info.run_id


@report_user_errors("track")
def main(argv=None) -> None:
    args = parse_args(argv)
    p = load_params(args.params)
    if not enabled():
        print("track: LOWLIGHT_MLFLOW=0, nothing recorded")
        return
    record(args, p)


if __name__ == "__main__":
    main()
