"""`lowlight enhance` in this process with no weights to load: a stand-in enhancer.

``run_cli(tmp, args)`` runs ``lowlight.cli.main.main`` with ``Enhancer.from_files`` replaced by
an :class:`~lowlight.inference.enhancer.Enhancer` whose quantile model is a fixed stub and which
has no network: the real mapping, strength and writing code runs, in milliseconds.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest

from lowlight.cli import enhance as cli_enhance
from lowlight.cli.main import main


class StubQuantiles:
    """Predicts the same bright target histogram for every image."""

    def predict(self, images):
        return np.tile(np.linspace(20.0, 235.0, 21), (len(images), 3, 1))


class PassThroughNetwork:
    """A network runner that gives the low photo back unchanged: the enhancer then runs every step
    after the network (restraint, shadow lift) on the photo's own dark regions, in milliseconds."""

    runtime = "stub"
    size_multiple = 1

    def context(self, parts):
        return None

    def __call__(self, parts, context=None):
        return parts[0].astype(np.float32) / 255.0


def stub_enhancer(args, quantile_model, weights):
    from lowlight.inference.enhancer import Enhancer

    return Enhancer(StubQuantiles(), None, tile_pixels=args.tile_pixels)


def weight_files(folder: Path) -> list[str]:
    """Empty stand-ins for --quantile-model and --weights (they must exist; they are never read)."""
    folder.mkdir(parents=True, exist_ok=True)
    q, n = folder / "q.ubj", folder / "net.pt"
    q.touch()
    n.touch()
    return ["--quantile-model", str(q), "--weights", str(n)]


def run_cli(weights_dir: Path, args: list, quiet: bool = True) -> tuple[int, str]:
    """(exit code, stderr) of ``lowlight enhance ARGS`` with the stub enhancer."""
    err = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(err):
        mp.setattr(cli_enhance, "_load_enhancer", stub_enhancer)
        code = main(["enhance", *map(str, args), *weight_files(weights_dir), *(["-q"] if quiet else [])])
    return code, err.getvalue()
