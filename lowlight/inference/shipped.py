"""Where the package's own weights live (``lowlight/weights/``: quantile model, network, model card)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["WEIGHTS_DIR", "QUANTILE_MODEL", "NETWORK"]

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
QUANTILE_MODEL = "quantiles.ubj"
NETWORK = "model.pt"
