"""Shared fixtures: tiny synthetic images and a tiny prepared dataset, made in the test."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("LOWLIGHT_MLFLOW", "0")  # tests that check tracking switch it back on
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"


def synthetic_photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A well-lit uint8 RGB 'photo': smooth colour gradients, a few discs and texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.empty((h, w, 3))
    for c in range(3):
        a, b, p = rng.uniform(-1, 1, 3)
        img[..., c] = 0.5 + 0.3 * np.sin(a * xx / max(w, 1) * 6 + b * yy / max(h, 1) * 6 + p * 3)
    for _ in range(4):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.1, 0.3) * min(h, w)
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        img[mask] = rng.uniform(0.05, 0.95, 3)
    img += rng.normal(0, 0.02, img.shape)
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


def darken(img: np.ndarray, factor: float = 0.12, seed: int = 0) -> np.ndarray:
    """A simple stand-in for the degradation model: gamma-space scaling plus noise."""
    rng = np.random.default_rng(seed)
    lin = (img / 255.0) ** 2.2 * factor
    lin = lin + rng.normal(0, 0.002, lin.shape)
    return np.clip(np.clip(lin, 0, 1) ** (1 / 2.2) * 255 + 0.5, 0, 255).astype(np.uint8)


def write_prepared(root: Path, counts=None, size=(48, 64), seed: int = 0) -> Path:
    """Write a tiny prepared dataset in the layout of lowlight.data.pairs."""
    from PIL import Image

    counts = counts or {"train": 6, "val": 2, "test": 2}
    k = seed
    for split, n in counts.items():
        for d in ("low", "high"):
            (root / split / d).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            k += 1
            high = synthetic_photo(*size, seed=k)
            low = darken(high, factor=0.05 + 0.1 * (i % 3) / 2, seed=k)
            Image.fromarray(low).save(root / split / "low" / f"{split}{i:03d}.png")
            Image.fromarray(high).save(root / split / "high" / f"{split}{i:03d}.png")
    return root


@pytest.fixture
def photo():
    return synthetic_photo(48, 64, seed=1)


@pytest.fixture
def tiny_prepared(tmp_path) -> Path:
    return write_prepared(tmp_path / "prepared")


def load_stage(name: str):
    """The stage script ``stages/<name>.py`` as a module (its ``main(argv)`` is the stage)."""
    import importlib.util

    import sys

    spec = importlib.util.spec_from_file_location(f"stage_{name}", REPO / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses in the stage look their module up there
    spec.loader.exec_module(module)
    return module


def lol_root() -> Path | None:
    root = SHARED / "LOL"
    return root if (root / "our485" / "low").is_dir() else None


# --------------------------------------------------------------------------- fault-injection tally

_FAULT_OUTCOMES: dict[str, str] = {}


def pytest_runtest_logreport(report):
    """Remember the outcome of every test marked ``fault`` (a failure in any phase wins)."""
    if "fault" not in report.keywords:
        return
    if report.failed:
        state = "failed"
    elif report.skipped:
        state = "xfailed" if hasattr(report, "wasxfail") else "skipped"
    elif report.when == "call":
        state = "passed"
    else:
        return
    if _FAULT_OUTCOMES.get(report.nodeid) != "failed":
        _FAULT_OUTCOMES[report.nodeid] = state


def pytest_terminal_summary(terminalreporter):
    """One line for the README: how many faults were injected and how many the code survived."""
    if not _FAULT_OUTCOMES:
        return
    states = list(_FAULT_OUTCOMES.values())
    injected = sum(s != "skipped" for s in states)
    survived = states.count("passed")
    extra = [f"{states.count(s)} {s}" for s in ("failed", "xfailed", "skipped") if states.count(s)]
    terminalreporter.write_line(f"{injected} fault cases injected, {survived} survived"
                                + (f" ({', '.join(extra)})" if extra else ""))
