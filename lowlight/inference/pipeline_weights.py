"""The pipeline's own weight files for the enhancer: a ``.ubj`` quantile model read with XGBoost and a
``.pt`` checkpoint read with PyTorch (the pipeline extra; the tool itself runs the exported ``.onnx``
pair). Without the extra, either is an :class:`EnhanceError` of one line that names the fix."""

from __future__ import annotations

from pathlib import Path

from lowlight.inference import shipped
from lowlight.inference.settings import EnhanceError

__all__ = ["fitted_quantile_model", "checkpoint_network"]


def fitted_quantile_model(path: Path):
    """A ``.ubj`` quantile model, read with XGBoost (the pipeline extra)."""
    from lowlight.histbranch.quantiles import QuantileModel

    try:
        return QuantileModel.load(path, trusted_sha256=frozenset({shipped.QUANTILE_MODEL_SHA256}))
    except ImportError as exc:
        raise EnhanceError(f"{path}: an XGBoost model needs XGBoost ({exc}); use its exported .onnx, or "
                           "pip install 'lowlight[pipeline]'") from None


def checkpoint_network(path: Path, device: str):
    """A ``.pt`` checkpoint's network as a PyTorch runner, and its description (the pipeline extra)."""
    try:
        from lowlight.models.checkpoint import load_checkpoint
        from lowlight.models.torch_runner import TorchNetwork
    except ImportError as exc:
        raise EnhanceError(f"{path}: a PyTorch checkpoint needs PyTorch ({exc}); use its exported .onnx, or "
                           "pip install 'lowlight[pipeline]'") from None
    model, meta = load_checkpoint(path, device=device)
    runner = TorchNetwork(model, meta.get("inputs", "low+mapped"), device)
    runner.meta = meta  # what the export writes beside the graph
    return runner, meta
