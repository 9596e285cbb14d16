"""Write a checkpoint and a quantile model as the ONNX pair the tool runs, checked, all or nothing.

Both files are written beside their destinations under temporary names, opened in ONNX
Runtime and checked against the PyTorch + XGBoost pipeline (:mod:`lowlight.export.check`);
only a pair that passes replaces the destinations, so a failed or interrupted export leaves
whatever was there before and no half-written file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from lowlight.atomic import atomic_path
from lowlight.export.booster_onnx import booster_to_onnx
from lowlight.export.check import compare_pair, require_match
from lowlight.export.network_onnx import network_to_onnx
from lowlight.inference.enhancer import Enhancer
from lowlight.inference.settings import checkpoint_anchor

__all__ = ["export_pair", "network_settings"]


def network_settings(checkpoint: Path, meta: dict) -> dict:
    """What the runtime needs to know of a checkpoint, beside its graph."""
    inputs = meta.get("inputs", "low+mapped")
    return {"inputs": inputs, "in_channels": 3 * len(inputs.split("+")), "model": meta.get("model"),
            "model_args": meta.get("model_args"), "exposure_anchor": checkpoint_anchor(checkpoint, meta),
            "histmap": (meta.get("params") or {}).get("histmap")}


def export_pair(checkpoint: Path, quantile_model: Path, network_out: Path, booster_out: Path,
                pairs: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]], histmap=None) -> dict:
    """Export, check on ``pairs()`` (low, well-lit) and write; returns the check's figures.

    ``histmap``: the mapping settings both enhancers use (None: the checkpoint's own)."""
    reference = Enhancer.from_files(quantile_model, checkpoint, histmap=histmap, device="cpu")
    network = reference.network
    net_proto = network_to_onnx(network.model, network_settings(Path(checkpoint), network.meta))
    qm = reference.quantile_model
    booster_proto = booster_to_onnx(json.loads(qm.booster.save_raw("json")), qm._meta())
    # nested, so that a failed write is reported with its own file's name; neither is renamed into
    # place before both are written and checked
    with atomic_path(network_out) as tmp_net:
        tmp_net.write_bytes(net_proto.SerializeToString())
        with atomic_path(booster_out) as tmp_booster:
            tmp_booster.write_bytes(booster_proto.SerializeToString())
            exported = Enhancer.from_files(tmp_booster, tmp_net, histmap=histmap, device="cpu")
            figures = compare_pair(reference, exported, pairs())
            require_match(figures, f"{network_out} and {booster_out}")
    return figures

