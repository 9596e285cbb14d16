"""A PyTorch network as the enhancer's network runner: the reference the ONNX export is checked against.

Same interface as :class:`lowlight.inference.onnx_models.OnnxNetwork` (uint8 input images and
an optional context thumbnail in, float32 H x W x 3 in [0, 1] out), through the training
side's own stacking, padding and context (:func:`~lowlight.models.padding.run_padded`,
:func:`~lowlight.models.context.image_context_uint8`), so a check against it is a check
against the pipeline as trained.
"""

from __future__ import annotations

import numpy as np
import torch

from lowlight.models.context import image_context_uint8, uses_context
from lowlight.models.padding import run_padded, size_multiple

__all__ = ["TorchNetwork"]


class TorchNetwork:
    runtime = "torch"

    def __init__(self, model: torch.nn.Module, inputs: str = "low+mapped", device: str = "cpu"):
        self.model, self.inputs, self.device = model, inputs, device
        self.size_multiple = size_multiple(model)
        self.uses_context = uses_context(model)

    def context(self, parts: list[np.ndarray]) -> np.ndarray | None:
        if not self.uses_context:
            return None
        return torch.cat([image_context_uint8(p) for p in parts], dim=1).numpy()

    def __call__(self, parts: list[np.ndarray], context: np.ndarray | None = None) -> np.ndarray:
        x = np.concatenate(parts, axis=2) if len(parts) > 1 else parts[0]
        x = np.require(x, requirements=("C", "W"))  # torch warns on read-only arrays (np.asarray of a PIL image)
        t = torch.from_numpy(x).to(self.device).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
        ctx = None if context is None else torch.from_numpy(context)
        with torch.inference_mode():
            y = run_padded(self.model, t, ctx)
        return y[0].permute(1, 2, 0).float().cpu().numpy()
