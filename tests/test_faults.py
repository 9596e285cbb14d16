"""Fault injection (issue 7): kill stages mid-write, run experiments in parallel, feed untrusted
files and bad params, fill the disk and make outputs read-only; the pipeline must lose nothing.

What each fault must leave behind:

* **SIGKILL** during ``prepare``, ``histmap``, ``train``, ``evaluate`` and ``lowlight enhance``
  (right after a temporary file is made, just before a rename, or after a delay): every
  declared output that exists is complete (it parses, and for deterministic stages it equals
  an uninterrupted run's), temporary files are hidden ``.name.*.tmp*`` siblings only, and a
  rerun gives the uninterrupted result (training resumes from its last state and ends with
  the same weights on CPU).
* **Parallel experiments**: three ``dvc exp run --queue`` runs under ``dvc queue start -j 2``
  each get their own MLflow run, in the original repository's ``mlflow.db``.
* **Untrusted files** through ``lowlight enhance``: each bad file is named, the rest are done.
* **Bad params**: exit code 2 naming the key before any data is read, nothing written.
* **Disk full** (``RLIMIT_FSIZE``, which also works as root) and **read-only** outputs: exit
  code 2 with a message naming the path; earlier outputs stay as they were.

Other fault cases live beside the code they test (all marked ``fault``; ``conftest.py``
prints how many were injected and survived): atomic writes and bad images in ``test_io.py``,
bad params in ``test_config.py``, a tracking server that is down and concurrent SQLite
writers in ``test_tracking.py``, bad datasets (incl. links to files outside) in
``test_prepare.py``, pickled code and damaged checkpoints in ``test_checkpoint.py``, an
interrupted or diverging training in ``test_training.py``, bad files and overwrites in the
``lowlight enhance`` command in ``test_enhance.py``.

A kill at an exact moment needs help: the stage runs under a small shim (:data:`SHIM`) that
logs every temporary file it makes (``tempfile.mkstemp``/``mkdtemp``) and every rename
(``os.replace``) and waits at the k-th of one kind; the test kills it there. Everything else
is the real stage script.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import resource
import runpy
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import REPO, darken, synthetic_photo, write_prepared
from repo_copy import dvc, make_repo_copy, run

pytestmark = pytest.mark.fault

PY = sys.executable
STAGES = REPO / "stages"
ENV = {**os.environ, "LOWLIGHT_MLFLOW": "0"}

# tiny settings: every stage runs in a few seconds on one core
PARAMS = {
    "base": {"seed": 3, "device": "cpu", "threads": 1},
    "data": {"source": "clean_folder", "path": "photos", "max_size": 0, "pairs_per_image": 2},
    "quantiles": {"n_estimators": 5, "grid": 0, "examples": 1},
    "train": {"model": "unet_small", "model_args": {"widths": [8, 16]}, "epochs": 2, "batch_size": 2,
              "crop_size": 32, "steps_per_epoch": 2, "examples": 1, "lr": 0.005},
    "evaluate": {"examples": 2},
}

SHIM = r"""
import os, runpy, sys, tempfile, time
_log, _pause, _count = os.environ["FAULT_LOG"], os.environ.get("FAULT_PAUSE", ""), {"create": 0, "replace": 0}

def _event(kind, path):
    _count[kind] += 1
    with open(_log, "a") as fh:
        fh.write(f"{kind} {os.fspath(path)}\n")
    if _pause == f"{kind}:{_count[kind]}":
        time.sleep(60)  # the test kills us here

_replace, _mkstemp, _mkdtemp = os.replace, tempfile.mkstemp, tempfile.mkdtemp

def _logged_replace(src, dst, *args, **kwargs):
    _event("replace", dst)  # the temporary file is complete, the rename not done
    return _replace(src, dst, *args, **kwargs)

def _logged_mkstemp(*args, **kwargs):
    fd, path = _mkstemp(*args, **kwargs)
    _event("create", path)  # the temporary file exists, nothing is in it yet
    return fd, path

def _logged_mkdtemp(*args, **kwargs):
    path = _mkdtemp(*args, **kwargs)
    _event("create", path)
    return path

os.replace, tempfile.mkstemp, tempfile.mkdtemp = _logged_replace, _logged_mkstemp, _logged_mkdtemp
if sys.argv[1] == "-m":
    sys.argv = sys.argv[2:]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
else:
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
"""


# --------------------------------------------------------------------------- a tiny world to run stages in


def _save(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """Inputs for every stage: photos, a prepared dataset, a quantile model, mapped images,
    a (randomly initialised) network checkpoint, dark photos to enhance and params.yaml."""
    import torch

    from lowlight.models.checkpoint import save_checkpoint
    from lowlight.config import HistmapConfig, QuantilesConfig, to_dict
    from conftest import load_stage
    from lowlight.models import build_model
    from lowlight.data.pairs import load_pairs
    from lowlight.histbranch.quantiles import QuantileModel

    root = tmp_path_factory.mktemp("world")
    for i in range(10):
        _save(root / "photos" / f"p{i}.png", synthetic_photo(64, 96, seed=200 + i))
    prepared = write_prepared(root / "data" / "prepared", counts={"train": 6, "val": 2, "test": 2})
    _, lows, highs = load_pairs(prepared, "train")
    QuantileModel(QuantilesConfig(n_estimators=5, grid=0)).fit(lows, highs, threads=1).save(
        root / "models" / "quantiles.ubj")
    (root / "defaults.yaml").write_text("{}\n")
    load_stage("histmap").main(["--params", str(root / "defaults.yaml"), "--data", str(prepared), "--model",
                                str(root / "models" / "quantiles.ubj"), "--out", str(root / "data" / "mapped"),
                                "--metrics", str(root / "metrics" / "histmap.json")])
    torch.manual_seed(0)
    net = build_model("unet_small", in_channels=6, widths=[8, 16])
    save_checkpoint(root / "models" / "model.pt", net, "low+mapped", params={"histmap": to_dict(HistmapConfig())})
    for i in range(5):
        _save(root / "dark" / f"d{i}.png", darken(synthetic_photo(40 + 4 * i, 56, seed=300 + i), seed=i))
    params = {**PARAMS, "data": {**PARAMS["data"], "path": str(root / "photos")}}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


@dataclass(frozen=True)
class Stage:
    name: str
    outputs: tuple[str, ...]  # declared outputs, relative to the run's folder
    whole: bool = True  # folders are written whole (atomic_dir); False: file by file

    def argv(self, w: Path, out: Path, overwrite: bool = False) -> list[str]:
        p = ["--params", str(w / "params.yaml")]
        prepared, qmodel, ckpt = str(w / "data/prepared"), str(w / "models/quantiles.ubj"), str(w / "models/model.pt")
        o = {k: str(out / v) for k, v in zip(self.outputs, self.outputs)}
        if self.name == "prepare":
            return [str(STAGES / "prepare.py"), *p, "--out", o["data/prepared"]]
        if self.name == "histmap":
            return [str(STAGES / "histmap.py"), *p, "--data", prepared, "--model", qmodel, "--out", o["data/mapped"],
                    "--metrics", o["metrics/histmap.json"]]
        if self.name == "train":
            return [str(STAGES / "train.py"), *p, "--data", prepared, "--mapped", str(w / "data/mapped"),
                    "--checkpoint", o["models/model.pt"], "--metrics", o["metrics/train.json"],
                    "--log", o["metrics/train_log.csv"], "--plots", o["plots/train"]]
        if self.name == "export":
            return [str(STAGES / "export.py"), *p, "--data", prepared, "--quantile-model", qmodel, "--checkpoint", ckpt,
                    "--network-out", o["models/model.onnx"], "--quantiles-out", o["models/quantiles.onnx"],
                    "--metrics", o["metrics/export.json"]]
        if self.name == "evaluate":
            return [str(STAGES / "evaluate.py"), *p, "--data", prepared, "--quantile-model", qmodel,
                    "--checkpoint", ckpt, "--metrics", o["metrics/eval.json"],
                    "--per-image", o["metrics/eval_per_image.csv"], "--plots", o["plots/eval"],
                    "--table", o["metrics/eval_table.md"]]
        if self.name == "enhance":
            return ["-m", "lowlight", "enhance", str(w / "dark"), "-o", o["enhanced"], "--weights", ckpt,
                    "--quantile-model", qmodel, "-q", *(["--overwrite"] if overwrite else [])]
        raise AssertionError(self.name)


SPECS = {s.name: s for s in [
    Stage("prepare", ("data/prepared",)),
    Stage("histmap", ("data/mapped", "metrics/histmap.json")),
    Stage("train", ("models/model.pt", "metrics/train.json", "metrics/train_log.csv", "plots/train")),
    Stage("export", ("models/model.onnx", "models/quantiles.onnx", "metrics/export.json"), whole=False),
    Stage("evaluate", ("metrics/eval.json", "metrics/eval_per_image.csv", "plots/eval", "metrics/eval_table.md")),
    Stage("enhance", ("enhanced",), whole=False),
]}


def _run(argv: list[str], cwd: Path, shim_log: Path | None = None, env=None, preexec=None,
         timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a stage to the end: plainly, or under the shim (logging its events, never waiting)."""
    env = {**ENV, **(env or {})}
    cmd = [PY, *argv]
    if shim_log is not None:
        shim_log.write_text("")
        cmd = [PY, "-c", SHIM, *argv]
        env.update(FAULT_LOG=str(shim_log), FAULT_PAUSE="")
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=preexec)


def _temp_entries(folders) -> list[Path]:
    return [p for d in folders if d.is_dir() for p in d.iterdir() if p.name.startswith(".") and ".tmp" in p.name]


def _run_and_kill(argv: list[str], cwd: Path, trigger: tuple[str, float], log: Path, timeout: float = 120) -> bool:
    """Start the stage under the shim and SIGKILL it when ``trigger`` fires: ("replace", k) at its
    k-th rename, ("create", k) right after it made its k-th temporary file or folder (it waits
    there for the kill), ("time", s) after s seconds. False if it ended before."""
    kind, value = trigger
    log.write_text("")
    env = {**ENV, "FAULT_LOG": str(log), "FAULT_PAUSE": f"{kind}:{value}" if kind != "time" else ""}
    with open(log.with_suffix(".out"), "w") as sink:
        proc = subprocess.Popen([PY, "-c", SHIM, *argv], cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT)
        start = time.monotonic()
        try:
            while proc.poll() is None:
                if kind == "time":
                    fired = time.monotonic() - start >= value
                else:
                    fired = sum(line.startswith(kind) for line in log.read_text().splitlines()) >= value
                if fired:
                    if kind != "time":
                        time.sleep(0.05)  # let the shim reach its sleep
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=30)
                    return proc.returncode == -signal.SIGKILL
                assert time.monotonic() - start < timeout, f"{' '.join(argv)} ran for more than {timeout} s"
                time.sleep(0.002)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return False


# --------------------------------------------------------------------------- what outputs hold

# run-time figures and bookkeeping that legitimately differ between two runs of the same work
_TIMING = re.compile(r"seconds|_ms|ms_|minutes|per_second|threads|resumed_from")


def _drop_timing(obj):
    if isinstance(obj, dict):
        return {k: _drop_timing(v) for k, v in obj.items() if not _TIMING.search(str(k))}
    return obj


def _drop_timing_columns(markdown: str) -> list[str]:
    """Markdown table rows without the columns whose header is a time (``s / image``)."""
    lines, drop = [], set()
    for line in markdown.splitlines():
        cells = line.split("|")
        if line.startswith("|") and not drop and any(re.search(r"\bs / |seconds|\bms\b", c) for c in cells):
            drop = {i for i, c in enumerate(cells) if re.search(r"\bs / |seconds|\bms\b", c)}
        lines.append("|".join(c for i, c in enumerate(cells) if i not in drop) if line.startswith("|") else line)
    return lines


def _content(path: Path):
    """A comparable view of one output file; raises if the file is truncated or unreadable."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _drop_timing(json.loads(path.read_text()))
    if suffix == ".csv":
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert rows, f"{path}: no rows"
        for r in rows:
            assert None not in r and None not in r.values(), f"{path}: ragged row {r}"
        return [_drop_timing(r) for r in rows]
    if suffix == ".pt":
        from lowlight.models.checkpoint import read_checkpoint

        ckpt = read_checkpoint(path)
        h = hashlib.sha256()
        for k, t in sorted(ckpt["state_dict"].items()):
            h.update(k.encode())
            h.update(t.contiguous().numpy().tobytes())
        return {"weights": h.hexdigest(), "model": ckpt["model"], "metrics": ckpt["metrics"]}
    if suffix == ".md":
        return _drop_timing_columns(path.read_text())
    if suffix in (".png", ".jpg"):
        with Image.open(path) as im:
            im.load()  # a truncated image fails here
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(out: Path, outputs) -> dict[str, object]:
    """Every file of the declared outputs that exists: relative path -> content."""
    snap = {}
    for rel in outputs:
        p = out / rel
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else []
        for f in files:
            if f != p and f.name.startswith("."):
                continue  # a temporary file of a file-by-file writer; checked by the caller
            snap[str(f.relative_to(out))] = _content(f)
    return snap


def _under(snapshot: dict, rel: str) -> dict:
    """The part of a snapshot that belongs to output ``rel`` (a file, or a folder's files)."""
    return {k: v for k, v in snapshot.items() if k == rel or k.startswith(rel + "/")}


def _check_no_partial_outputs(stage: Stage, out: Path, reference_snapshot: dict, old_snapshot: dict | None = None):
    """After a kill: each declared output is absent or complete; temporary files are hidden."""
    parents = {(out / rel).parent for rel in stage.outputs}
    for parent in parents:
        declared = {(out / rel).name for rel in stage.outputs if (out / rel).parent == parent}
        for entry in parent.iterdir() if parent.is_dir() else []:
            # metrics/timings/ is git-ignored scratch (lowlight.metrics_files), not a DVC output
            assert entry.name in declared or entry.name.startswith(".") or entry.name == "timings", \
                f"{entry}: a visible file that is not a declared output of {stage.name}"
    for rel in stage.outputs:
        if stage.whole and (out / rel).is_dir():
            hidden = list((out / rel).rglob(".*"))
            assert not hidden, f"{rel} was written whole, yet holds temporary entries {hidden}"
    snap = _snapshot(out, stage.outputs)  # raises on a truncated file
    for rel in stage.outputs:
        mine, expected, old = _under(snap, rel), _under(reference_snapshot, rel), _under(old_snapshot or {}, rel)
        if not mine:
            continue
        if stage.name == "train" and rel in ("models/model.pt", "metrics/train_log.csv"):
            # written after every epoch: the best checkpoint so far (it loaded above) and the log so far
            if rel.endswith(".csv"):
                done = mine[rel]
                assert done == expected[rel][:len(done)], f"{rel} is not a prefix of the uninterrupted log"
            continue
        if stage.whole:
            assert mine == expected or (old and mine == old), f"{rel}: neither the complete new nor the old output"
        else:
            for k, v in mine.items():
                assert v == expected[k], f"{k}: differs from the uninterrupted run"


# --------------------------------------------------------------------------- reference runs, shared


@dataclass(frozen=True)
class Reference:
    """One uninterrupted run of a stage."""

    snapshot: dict  # see _snapshot
    renames: list[str]  # destinations of its os.replace calls, in order
    seconds: float
    out: Path  # the folder its outputs are in


@pytest.fixture(scope="module")
def reference(world, tmp_path_factory):
    """``reference(stage_name)``: the stage's uninterrupted run (under the shim), made once per module."""
    cache: dict[str, Reference] = {}

    def get(name: str) -> Reference:
        if name not in cache:
            stage = SPECS[name]
            out = tmp_path_factory.mktemp(f"ref-{name}")
            log = out.parent / f"{out.name}-renames.log"
            t0 = time.monotonic()
            done = _run(stage.argv(world, out), out, shim_log=log)
            seconds = time.monotonic() - t0
            assert done.returncode == 0, done.stderr[-3000:]
            renames = [line.split(" ", 1)[1] for line in log.read_text().splitlines() if line.startswith("replace")]
            cache[name] = Reference(_snapshot(out, stage.outputs), renames, seconds, out)
        return cache[name]

    return get


# --------------------------------------------------------------------------- SIGKILL mid-write


def _kill_then_rerun(stage: Stage, world: Path, out: Path, triggers, ref: Reference, old=None,
                     min_kills=2) -> subprocess.CompletedProcess:
    """Kill the stage at each trigger in turn (each run starts from what the last one left), check
    what is left after every kill, then rerun it plainly: the result must be the reference's."""
    ref_snap = ref.snapshot
    landed = []
    logs = out.parent / f"{out.name}-logs"
    logs.mkdir()
    out.mkdir(exist_ok=True)
    for i, trig in enumerate(triggers):
        if _run_and_kill(stage.argv(world, out), out, trig, logs / f"kill{i}.log"):
            landed.append(trig)
            _check_no_partial_outputs(stage, out, ref_snap, old)
    assert len(landed) >= min_kills, f"only {landed} of {triggers} killed {stage.name} before it finished"
    rerun = _run(stage.argv(world, out, overwrite=True), out)  # the plain script, as dvc repro runs it
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert _snapshot(out, stage.outputs) == ref_snap, f"{stage.name}: rerun after kills differs from uninterrupted"
    return rerun


@pytest.mark.slow
def test_kill_prepare_keeps_old_or_new_output_whole(world, reference, tmp_path):
    stage = SPECS["prepare"]
    ref = reference("prepare")
    out = tmp_path / "run"
    # an earlier, different output is in place (another seed), as before a `dvc repro` with new params
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**yaml.safe_load((world / "params.yaml").read_text()), "base": {"seed": 9}}))
    argv = stage.argv(world, out)
    argv[argv.index("--params") + 1] = str(other)
    assert _run(argv, tmp_path).returncode == 0
    old = _snapshot(out, stage.outputs)
    assert old and old != ref.snapshot
    # as the temporary folder is made; at each rename (old output -> hidden .old, temporary folder ->
    # output); and at some moment of the run
    triggers = [("create", 1), ("replace", 1), ("replace", 2), ("time", 0.6 * ref.seconds)]
    _kill_then_rerun(stage, world, out, triggers, ref, old=old, min_kills=3)


@pytest.mark.slow
def test_kill_histmap_leaves_no_partial_output(world, reference, tmp_path):
    stage = SPECS["histmap"]
    ref = reference("histmap")
    renames = ref.renames
    last_image = max(i for i, d in enumerate(renames, 1) if d.endswith(".png"))
    # while the mapped images are written into the hidden temporary folder; as that folder is swapped in
    triggers = [("replace", 3), ("replace", last_image + 1)]
    _kill_then_rerun(stage, world, tmp_path / "run", triggers, ref, min_kills=2)


@pytest.mark.slow
def test_kill_train_resumes_to_the_same_model(world, reference, tmp_path):
    stage = SPECS["train"]
    ref = reference("train")
    renames = ref.renames
    states = [i for i, d in enumerate(renames, 1) if ".train_state" in d]
    assert len(states) == PARAMS["train"]["epochs"], renames
    # die in epoch 2 as its log is renamed, after epoch 1's checkpoint and state were saved
    rerun = _kill_then_rerun(stage, world, tmp_path / "run", [("replace", states[0] + 1)], ref, min_kills=1)
    assert "resuming after epoch 1" in rerun.stdout, rerun.stdout


@pytest.mark.slow
def test_kill_export_leaves_no_partial_onnx_file(world, reference, tmp_path):
    stage = SPECS["export"]
    ref = reference("export")
    # as the network's temporary file is made, as the booster's is, and as the checked booster is renamed
    triggers = [("create", 1), ("create", 2), ("replace", 1)]
    _kill_then_rerun(stage, world, tmp_path / "run", triggers, ref, min_kills=2)


@pytest.mark.slow
def test_kill_evaluate_leaves_no_partial_output(world, reference, tmp_path):
    stage = SPECS["evaluate"]
    ref = reference("evaluate")
    # outputs are written at the end, in turn: die after the per-image table and the metrics JSON,
    # as the finished plots folder is swapped in
    swap = next(i for i, d in enumerate(ref.renames, 1) if d.endswith("/plots/eval"))
    _kill_then_rerun(stage, world, tmp_path / "run", [("replace", swap)], ref, min_kills=1)


@pytest.mark.slow
def test_kill_enhance_cli_leaves_only_complete_images(world, reference, tmp_path):
    stage = SPECS["enhance"]
    ref = reference("enhance")
    n = len(ref.renames)
    assert n == len(list((world / "dark").iterdir()))
    # as soon as the first output's temporary file exists; then half-way through the photos
    triggers = [("create", 1), ("replace", n // 2 + 1)]
    _kill_then_rerun(stage, world, tmp_path / "run", triggers, ref, min_kills=2)


@pytest.mark.parametrize("reader", ["enhance", "evaluate"])
def test_temporary_files_left_by_a_kill_are_not_taken_as_images(tmp_path, reader):
    from lowlight.cli.enhance import plan_jobs
    from lowlight.evaluation.folders import evaluate_dirs

    out, refs = tmp_path / "enhanced", tmp_path / "refs"
    photo = synthetic_photo(32, 32, seed=1)
    _save(out / "a.png", photo)
    _save(refs / "a.png", photo)
    (out / ".a.k2j4x9_q.tmp.png").write_bytes(b"")  # what a kill during the write leaves
    _save(out / ".b.0p3mfz1w.tmp.png", photo)  # and a kill just before the rename
    if reader == "enhance":
        jobs, problems = plan_jobs([str(out)], tmp_path / "again")
        assert [j.src.name for j in jobs] == ["a.png"] and not problems
    else:
        df, _ = evaluate_dirs(out, refs, workers=1)
        assert len(df) == 1


# --------------------------------------------------------------------------- untrusted files


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _bomb_png(side: int = 50_000) -> bytes:
    """A PNG of a few dozen bytes whose header declares side x side RGB pixels (7.5 GB decoded)."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 4096))
            + _png_chunk(b"IEND", b""))


def _png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def _enhance_cli(world: Path, inputs, out: Path, capsys, weights: Path | None = None) -> tuple[int, str]:
    """``lowlight enhance`` in this process (its exit code and stderr); the kill tests run it as a process."""
    from lowlight.cli.main import main

    code = main(["enhance", *map(str, inputs), "-o", str(out), "-q",
                 "--weights", str(weights or world / "models" / "model.pt"),
                 "--quantile-model", str(world / "models" / "quantiles.ubj")])
    return code, capsys.readouterr().err


def test_enhance_cli_names_each_bad_file_and_does_the_rest(world, tmp_path, capsys):
    from lowlight.inference.enhancer import Enhancer, enhance

    src = tmp_path / "in"
    src.mkdir()
    good = darken(synthetic_photo(40, 56, seed=7), seed=7)
    one = np.array([[[12, 30, 7]]], dtype=np.uint8)
    (src / "good.png").write_bytes(_png_bytes(good))
    (src / "one_pixel.png").write_bytes(_png_bytes(one))
    (src / "empty.png").write_bytes(b"")
    (src / "truncated.png").write_bytes(_png_bytes(good)[:1500])
    (src / "not_an_image.jpg").write_text("just some text with an image extension\n" * 20)
    (src / "bomb.png").write_bytes(_bomb_png())
    bad = {"empty.png": "0 bytes", "truncated.png": "truncated", "not_an_image.jpg": "not a readable image",
           "bomb.png": "too large"}

    out = tmp_path / "out"
    code, err = _enhance_cli(world, [src], out, capsys)
    assert code == 1, err
    for name, reason in bad.items():
        assert any(name in line and reason in line for line in err.splitlines()), (name, reason, err)
    assert "2 enhanced" in err and f"{len(bad)} failed" in err, err
    assert sorted(p.name for p in out.iterdir()) == ["good.png", "one_pixel.png"]
    # the files that could be read come out exactly as the library's own enhance() makes them
    enhancer = Enhancer.from_files(world / "models" / "quantiles.ubj", world / "models" / "model.pt")
    for name, rgb in (("good.png", good), ("one_pixel.png", one)):
        got = np.asarray(Image.open(out / name))
        assert got.shape == rgb.shape
        np.testing.assert_array_equal(got, enhance(rgb, enhancer=enhancer))


class _Payload:
    """Unpickling this creates a file: what a malicious checkpoint would do instead."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_enhance_cli_refuses_a_checkpoint_that_would_run_code(world, tmp_path, capsys):
    import torch

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "lowlight-checkpoint", "version": 1, "model": "unet_small", "model_args": {},
                "inputs": "low+mapped", "state_dict": {}, "payload": _Payload(marker)}, evil)
    out = tmp_path / "out"
    code, err = _enhance_cli(world, [world / "dark"], out, capsys, weights=evil)
    assert code == 2, err
    assert not marker.exists(), "loading the checkpoint ran its pickled code"
    assert str(evil) in err and "refused" in err, err
    assert not out.exists() or not any(out.iterdir())


def _lol(root: Path, n: int = 6) -> Path:
    for i in range(n):
        high = synthetic_photo(32, 48, seed=400 + i)
        _save(root / "our485" / "high" / f"{i}.png", high)
        _save(root / "our485" / "low" / f"{i}.png", darken(high, seed=i))
    return root


def _stage_in_process(script: Path, argv: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """Run a stage script as ``python script argv`` would, in this process: (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", [str(script), *argv])
    code = 0
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().err


def test_prepare_refuses_a_linked_folder_that_leaves_the_dataset(tmp_path, monkeypatch, capsys):
    lol = _lol(tmp_path / "LOL")
    outside = tmp_path / "elsewhere" / "high"
    outside.parent.mkdir()
    shutil.move(lol / "our485" / "high", outside)
    os.symlink(outside, lol / "our485" / "high")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"data": {"source": "lol", "path": str(lol), "test_fraction": 0.0}}))
    out = tmp_path / "out" / "prepared"
    code, err = _stage_in_process(STAGES / "prepare.py", ["--params", str(params), "--out", str(out)],
                                  monkeypatch, capsys)
    assert code == 2 and "outside the dataset" in err and "our485/high" in err, err
    assert not out.exists()


# --------------------------------------------------------------------------- bad params


_NAN, _INF = float("nan"), float("inf")
BAD_TRAIN = [
    ("epochs", 0, "train.epochs"), ("epochs", -2, "train.epochs"), ("epochs", _NAN, "train.epochs"),
    ("lr", 0, "train.lr"), ("lr", -0.001, "train.lr"), ("lr", _NAN, "train.lr"),
    ("crop_size", 0, "train.crop_size"), ("crop_size", -32, "train.crop_size"),
    ("batch_size", 0, "train.batch_size"), ("weight_decay", _INF, "train.weight_decay"),
    ("model", "no_such_net", "train.model"), ("model_args", {"bogus": 1}, "train.model_args"),
    ("crop_size", 96, "train.crop_size"),  # larger than the 48 x 64 training images
]
@pytest.mark.parametrize("key, value, names", [
    pytest.param(*case, id=f"{case[0]}={case[1]}") for case in BAD_TRAIN])
def test_bad_train_params_stop_before_any_work(world, tmp_path, monkeypatch, capsys, key, value, names):
    import lowlight.training.build as training  # where the run is built and the data first read

    params = yaml.safe_load((world / "params.yaml").read_text())
    params["train"][key] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "out"
    reads = []
    load_split = training.load_split
    monkeypatch.setattr(training, "load_split", lambda *a, **k: reads.append(a) or load_split(*a, **k))
    argv = SPECS["train"].argv(world, out)
    argv[argv.index("--params") + 1] = str(tmp_path / "params.yaml")
    code, err = _stage_in_process(Path(argv[0]), argv[1:], monkeypatch, capsys)
    assert code == 2, err
    assert err.startswith("train: error:") and names in err and "Traceback" not in err, err
    if key != "crop_size" or value <= 0:
        assert not reads, "the data was read before the params were checked"
    assert not out.exists(), sorted(out.rglob("*"))


def test_bad_train_params_exit_code_from_a_real_process(world, tmp_path):
    params = yaml.safe_load((world / "params.yaml").read_text())
    params["train"]["lr"] = _NAN
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "out"
    argv = SPECS["train"].argv(world, out)
    argv[argv.index("--params") + 1] = str(tmp_path / "params.yaml")
    done = _run(argv, tmp_path)
    assert done.returncode == 2 and "train.lr" in done.stderr and "finite" in done.stderr, done.stderr
    assert not out.exists()


# --------------------------------------------------------------------------- disk full, read-only outputs


def _file_size_limit(nbytes: int):
    """A child that may not write files larger than ``nbytes`` (EFBIG, as on a full disk; works as root)."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))


def _copy_outputs(src: Path, dst: Path, outputs) -> None:
    for rel in outputs:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        if (src / rel).is_dir():
            shutil.copytree(src / rel, dst / rel)
        else:
            shutil.copy2(src / rel, dst / rel)




@pytest.mark.slow
@pytest.mark.parametrize("name", list(SPECS))
def test_disk_full_names_the_path_and_keeps_earlier_outputs(world, reference, tmp_path, name):
    stage = SPECS[name]
    ref = reference(name)
    out = tmp_path / "run"
    _copy_outputs(ref.out, out, stage.outputs)  # a previous run's complete outputs
    before = _snapshot(out, stage.outputs)
    assert before == ref.snapshot
    done = _run(stage.argv(world, out, overwrite=True), tmp_path, preexec=_file_size_limit(512))
    assert done.returncode == (1 if name == "enhance" else 2), done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert str(out) in done.stderr and "cannot write" in done.stderr, done.stderr[-3000:]
    assert _snapshot(out, stage.outputs) == before, "a failed write damaged an earlier output"
    watch = {(out / rel).parent for rel in stage.outputs} | {out / rel for rel in stage.outputs}
    assert not _temp_entries(watch), "temporary files left behind after a failed write"


def _unwritable(tmp_path: Path) -> Path:
    """A folder nobody may write into: chmod 555 for a normal user; root ignores modes, so a
    read-only file system (/sys) stands in."""
    if os.geteuid() != 0:
        ro = tmp_path / "readonly"
        ro.mkdir()
        ro.chmod(0o555)
        return ro
    sys_dir = Path("/sys/lowlight-fault-test")
    try:
        sys_dir.mkdir()
    except OSError:
        return sys_dir
    sys_dir.rmdir()
    pytest.skip("no read-only location available to root here")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["prepare", "histmap", "train"])  # evaluate and enhance: see disk full
def test_read_only_output_names_the_path(world, tmp_path, name):
    stage = SPECS[name]
    ro = _unwritable(tmp_path)
    try:
        done = _run(stage.argv(world, ro), tmp_path)
    finally:
        if ro.is_relative_to(tmp_path):
            ro.chmod(0o755)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert str(ro) in done.stderr and ("not writable" in done.stderr or "cannot" in done.stderr), done.stderr


# --------------------------------------------------------------------------- parallel queued experiments


def _queue_states(repo: Path) -> dict[str, str]:
    """Experiment name -> status, from `dvc queue status` (Queued, Running, Success, Failed)."""
    table = dvc("queue", "status", cwd=repo).stdout
    states = {}
    for line in table.splitlines():
        words = line.split()
        for status in ("Queued", "Running", "Success", "Failed"):
            if status in words and words.index(status) >= 2:
                states[words[1]] = status
    return states


def _exp_metrics(shown, name: str) -> dict:
    """An experiment's metrics/eval.json from `dvc exp show --json` (found by name at any depth)."""
    if isinstance(shown, dict):
        if shown.get("name") == name and "data" in shown:
            return shown["data"]["metrics"]["metrics/eval.json"]["data"]
        shown = list(shown.values())
    if isinstance(shown, list):
        for item in shown:
            found = _exp_metrics(item, name)
            if found is not None:
                return found
    return None


@pytest.mark.slow
def test_parallel_queued_experiments_each_get_their_own_mlflow_run(tmp_path):
    repo = make_repo_copy(tmp_path / "repo")
    dvc("repro", cwd=repo, env={"LOWLIGHT_MLFLOW": "0"})  # the baseline, cached; not tracked
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "baseline"], repo)
    # evaluate.gamma_mean changes only the last stage, and the gamma baseline's scores; two
    # experiments on two workers run at the same time (a third only waits for a free worker)
    gammas = {"gamma-30": 0.30, "gamma-55": 0.55}
    for name, g in gammas.items():
        dvc("exp", "run", "--queue", "-n", name, "-S", f"evaluate.gamma_mean={g}", cwd=repo)
    tracked = {**os.environ, "PATH": f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}",
               "LOWLIGHT_MLFLOW": "1", "MLFLOW_TRACKING_URI": ""}
    # the workers outlive `dvc queue start`: give them no pipe of ours to hold open
    subprocess.run([str(Path(PY).parent / "dvc"), "queue", "start", "-j", "2"], cwd=repo, env=tracked,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=120)
    try:
        deadline, polls = time.monotonic() + 400, 0
        while True:  # a finished experiment is a git ref; `dvc queue status` (slower) says if one failed
            time.sleep(2)
            polls += 1
            refs = run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], repo).stdout.split()
            done = sum(any(r.endswith("/" + n) for r in refs) for n in gammas)
            if done == len(gammas) or polls % 10 == 0:
                states = _queue_states(repo)
                if all(states.get(n) in ("Success", "Failed") for n in gammas):
                    break
            assert time.monotonic() < deadline, f"queue still busy: {_queue_states(repo)}"
    finally:
        dvc("queue", "stop", cwd=repo, check=False)
    failed = [n for n in gammas if states[n] != "Success"]
    assert not failed, "\n".join(dvc("queue", "logs", n, cwd=repo, check=False).stdout[-3000:] for n in failed)

    shown = json.loads(dvc("exp", "show", "--json", cwd=repo).stdout)
    files = {name: _exp_metrics(shown, name) for name in gammas}
    assert all(files.values()), files  # `dvc exp show` lists both, with their metrics

    # queued runs execute in .dvc/tmp/exps/...; their tracking must land in the original repo's database
    con = sqlite3.connect(repo / "mlflow.db")
    runs = con.execute("select run_uuid, status, artifact_uri from runs").fetchall()
    assert len(runs) == len(gammas), runs  # one pipeline run each; train came from the cache: no train run
    seen = {}
    for run_id, status, artifacts in runs:
        tags = dict(con.execute("select key, value from tags where run_uuid=?", (run_id,)).fetchall())
        params = dict(con.execute("select key, value from params where run_uuid=?", (run_id,)).fetchall())
        metrics = dict(con.execute("select key, value from latest_metrics where run_uuid=?", (run_id,)).fetchall())
        name = tags["dvc.exp_name"]
        assert status == "FINISHED" and tags["lowlight.stage"] == "pipeline", (name, status, tags)
        assert float(params["evaluate.gamma_mean"]) == gammas[name]
        # the run holds this experiment's own figures: its metrics file, and its own methods table
        assert metrics["eval.best_baseline.psnr"] == pytest.approx(files[name]["best_baseline"]["psnr"], rel=1e-5)
        assert "eval.pipeline.psnr" in metrics
        assert artifacts.startswith((repo / "mlartifacts").as_uri()), artifacts
        table = Path(artifacts[len("file://"):]) / "plots" / "eval" / "methods.csv"
        gamma_row = next(line for line in table.read_text().splitlines() if line.startswith("gamma,"))
        seen[name] = float(gamma_row.split(",")[1])
    assert sorted(seen) == sorted(gammas)
    assert len({round(v, 6) for v in seen.values()}) == len(gammas), "experiments got each other's figures"
