"""Enhancement networks, one file each, behind a small registry (as in timm).

A model file defines its blocks and its ``nn.Module`` class, then registers
size variants as plain functions::

    @register_model
    def unet_small(**kwargs) -> UNet:
        return UNet(**{"widths": (8, 16, 32), **kwargs})

The function's name is the model's name (``train.model`` in ``params.yaml``)
and its return annotation names the class, whose constructor arguments are the
ones :func:`build_model` accepts. Every model module is imported below by
name, so the registry's content is visible here rather than found by scanning
folders.

Every model takes ``in_channels`` (3 or 6, see :mod:`lowlight.training.data`),
maps N x C x H x W in [0, 1] to N x 3 x H x W in [0, 1], and declares
``size_multiple``; :func:`lowlight.models.padding.run_padded` makes any H x W fit.
Beside the models: ``checkpoint`` saves and rebuilds them (weights only, checked
against their registered arguments), ``devices`` picks CPU or CUDA and mixed precision.
"""

from lowlight.models.registry import (ModelError, build_model, count_parameters, list_models, model_arguments,
                                      model_class, register_model)

# Every model module, by name: importing one fills the registry with its variants.
from lowlight.models import llcnn, patch_transformer, unet  # noqa: F401  (isort: after the registry they fill)

__all__ = ["ModelError", "register_model", "list_models", "model_class", "model_arguments", "build_model",
           "count_parameters"]
