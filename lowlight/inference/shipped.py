"""Where the package's own weights live (``lowlight/weights/``: quantile model, network, model card).

The tool runs the ONNX pair (``*_ONNX``); the ``.ubj`` and ``.pt`` are what fine-tuning starts from, and
``python -m lowlight.export --shipped`` rebuilds the ONNX pair from them."""

from __future__ import annotations

from pathlib import Path

__all__ = ["WEIGHTS_DIR", "QUANTILE_MODEL", "NETWORK", "QUANTILE_MODEL_ONNX", "NETWORK_ONNX", "QUANTILE_MODEL_SHA256"]

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
QUANTILE_MODEL = "quantiles.ubj"
NETWORK = "model.pt"
QUANTILE_MODEL_ONNX = "quantiles.onnx"  # lowlight.inference.onnx_contract.BOOSTER_FILE
NETWORK_ONNX = "model.onnx"  # lowlight.inference.onnx_contract.NETWORK_FILE

# SHA-256 of the shipped quantile model: a file with exactly these bytes skips the structural
# check before XGBoost reads it (QuantileModel.load). Re-shipping the model means updating this
# (tests/test_shipped_weights.py fails until then); any other file, or a damaged copy, is checked.
QUANTILE_MODEL_SHA256 = "cf29e12f600d7c4c9e741db425dcefc4623609876eccea19de7de8942d5a3bd7"
