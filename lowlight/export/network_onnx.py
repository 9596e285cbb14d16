"""The network as ONNX: dynamic height and width, the whole photo's context as a second input.

Padding to the size multiple and the context thumbnail are computed outside the graph,
in NumPy (:mod:`lowlight.inference.network_input`), so the graph is the network alone and
the runtime feeds it padded input. TorchScript's exporter is used where this torch has it:
it exports the default U-Net in 1.5 s against 13 s for the dynamo exporter, and both match
PyTorch to 6e-7 in ONNX Runtime; the dynamo exporter is the fallback.
"""

from __future__ import annotations

import io
import json
import warnings

from lowlight.inference.onnx_contract import META_KEY, NETWORK_FORMAT, NETWORK_INPUTS, NETWORK_OUTPUT

__all__ = ["network_to_onnx", "OPSET"]

OPSET = 17


def network_to_onnx(model, settings: dict):
    """An ``onnx.ModelProto`` of ``model`` (eval mode, CPU); ``settings`` (input kind, size multiple,
    anchor, histmap) travel in its metadata with :data:`NETWORK_FORMAT`."""
    import onnx
    import torch

    from lowlight.models.context import CONTEXT_SIZE, uses_context
    from lowlight.models.padding import size_multiple, unwrap

    model = unwrap(model).float().to("cpu", memory_format=torch.contiguous_format).eval()
    channels = settings["in_channels"]
    m = size_multiple(model)
    x = torch.rand(1, channels, 4 * m, 6 * m)
    names = list(NETWORK_INPUTS if uses_context(model) else NETWORK_INPUTS[:1])
    args = (x, torch.rand(1, channels, CONTEXT_SIZE, CONTEXT_SIZE)) if uses_context(model) else (x,)
    dims = {"input": {2: "height", 3: "width"}, NETWORK_OUTPUT: {2: "height", 3: "width"}}
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        try:
            torch.onnx.export(model, args, buf, input_names=names, output_names=[NETWORK_OUTPUT],
                              dynamic_axes=dims, opset_version=OPSET, dynamo=False)
            proto = onnx.load_from_string(buf.getvalue())
        except (TypeError, RuntimeError, NotImplementedError):  # a torch without it
            h, w = torch.export.Dim("h", min=1, max=8192), torch.export.Dim("w", min=1, max=8192)
            shapes = ({2: m * h, 3: m * w},) + ((None,) if len(args) > 1 else ())
            program = torch.onnx.export(model, args, input_names=names, output_names=[NETWORK_OUTPUT],
                                        dynamic_shapes=shapes, opset_version=OPSET + 1, dynamo=True)
            proto = program.model_proto
    onnx.helper.set_model_props(proto, {META_KEY: json.dumps({**settings, "format": NETWORK_FORMAT,
                                                              "size_multiple": m,
                                                              "uses_context": uses_context(model)})})
    onnx.checker.check_model(proto)
    return proto
