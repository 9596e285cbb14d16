"""The contract between fitting and using: what an exported ONNX file must look like.

The ``export`` stage (:mod:`lowlight.export`) writes two ONNX files and the runtime
(:mod:`lowlight.inference.onnx_models`) reads them; both sides take the names below from
here, so a file from another version of the network (other inputs or outputs, another
format tag) is refused by name before it runs. Each file carries its settings as JSON in
its ``metadata_props`` under :data:`META_KEY`: the network its input kind, size multiple,
exposure anchor and histmap settings; the booster lowlight's quantile settings (the same
JSON the ``.ubj`` carries). This module imports neither onnx nor onnxruntime.
"""

from __future__ import annotations

__all__ = ["META_KEY", "NETWORK_FORMAT", "BOOSTER_FORMAT", "NETWORK_INPUTS", "NETWORK_OUTPUT", "BOOSTER_INPUT",
           "BOOSTER_OUTPUT", "NETWORK_FILE", "BOOSTER_FILE", "REBUILD"]

META_KEY = "lowlight"
NETWORK_FORMAT = "lowlight.network.onnx/1"
BOOSTER_FORMAT = "lowlight.quantiles.onnx/1"

NETWORK_INPUTS = ("input", "context")  # N x C x H x W padded to the size multiple; N x C x 64 x 64 (if it has one)
NETWORK_OUTPUT = "output"  # N x 3 x H x W in [0, 1]
BOOSTER_INPUT = "features"  # N x F float32 feature rows (lowlight.histbranch.quantile_features)
BOOSTER_OUTPUT = "raw"  # N x K raw tree outputs, decoded by lowlight.histbranch.quantile_targets

NETWORK_FILE = "model.onnx"  # beside the checkpoint model.pt
BOOSTER_FILE = "quantiles.onnx"  # beside quantiles.ubj

REBUILD = "rebuild it with `dvc repro export` (the shipped pair: `python -m lowlight.export --shipped`)"
