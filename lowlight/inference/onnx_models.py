"""The exported pair in ONNX Runtime: the network and the quantile booster, each checked as it opens.

:func:`load_network` gives an :class:`OnnxNetwork` (the enhancer's network runner: padding and
the context in NumPy, the graph in ONNX Runtime); :func:`load_quantile_model` gives the usual
:class:`~lowlight.histbranch.quantiles.QuantileModel` whose booster is an :class:`OnnxBooster`,
so features and the decoding of raw outputs stay the shared NumPy code. A missing or corrupt
file, or one from another version of lowlight (other inputs, outputs or format), is an
:class:`~lowlight.inference.settings.EnhanceError` of one line naming the file and how to
rebuild it. CPU sessions flush denormal floats to zero (subnormal activations in the tone
curve's ``pow`` cost several times the time of normal ones).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lowlight.inference import onnx_contract as contract
from lowlight.inference.network_input import CONTEXT_SIZE, image_context, padded_chw
from lowlight.inference.settings import EnhanceError, providers_for

__all__ = ["OnnxNetwork", "OnnxBooster", "load_network", "load_quantile_model", "open_session"]


def open_session(path: str | Path, what: str, fmt: str, device: str = "cpu", threads: int = 0):
    """(an ``onnxruntime.InferenceSession`` of ``path``, its lowlight settings); EnhanceError if unusable."""
    import onnxruntime as ort

    path = Path(path)
    fix = contract.REBUILD
    if not path.is_file():
        raise EnhanceError(f"{path}: {what} file does not exist; {fix}")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.set_denormal_as_zero", "1")
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1")
    opts.add_session_config_entry("session.force_spinning_stop", "1")
    # the arena reuses the run's buffers (a quarter off a 600 x 400 run); memory patterns, which
    # pre-plan one block per input shape, would add about 0.7 GiB at 4 MP, so they stay off
    opts.enable_cpu_mem_arena = True
    opts.enable_mem_pattern = False
    if threads:
        opts.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(path), opts, providers=providers_for(device))
    except Exception as exc:  # onnxruntime's own exception types (InvalidProtobuf, Fail, ...), whatever the file held
        first = (str(exc).strip().splitlines() or ["unreadable"])[0]
        raise EnhanceError(f"{path}: not a readable ONNX {what} ({first[:160]}); {fix}") from None
    raw = session.get_modelmeta().custom_metadata_map.get(contract.META_KEY)
    try:
        meta = json.loads(raw) if raw else {}
    except ValueError:
        meta = {}
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise EnhanceError(f"{path}: not lowlight's ONNX {what} (format {found!r}, expected {fmt!r}); {fix}")
    return session, meta


def _check_names(path: Path, what: str, session, inputs: tuple, outputs: tuple) -> None:
    got_in = tuple(i.name for i in session.get_inputs())
    got_out = tuple(o.name for o in session.get_outputs())
    if got_in != inputs or got_out != outputs:
        raise EnhanceError(f"{path}: an ONNX {what} from another version of lowlight (inputs {list(got_in)}, "
                           f"outputs {list(got_out)}; this version needs {list(inputs)} -> {list(outputs)}); "
                           f"{contract.REBUILD}")


class OnnxNetwork:
    """The network runner: uint8 input images -> float32 H x W x 3 in [0, 1], any H x W."""

    runtime = "onnxruntime"

    def __init__(self, session, meta: dict, path: Path):
        self.session, self.meta, self.path = session, meta, path
        self.inputs = meta["inputs"]
        self.size_multiple = int(meta["size_multiple"])
        self.uses_context = bool(meta["uses_context"])
        self.exposure_anchor = float(meta.get("exposure_anchor", 0.0))
        self.histmap = meta.get("histmap")

    def context(self, parts: list[np.ndarray]) -> np.ndarray | None:
        """The whole photo's context thumbnail (None for a network without a global view)."""
        return image_context(parts) if self.uses_context else None

    def __call__(self, parts: list[np.ndarray], context: np.ndarray | None = None) -> np.ndarray:
        h, w = parts[0].shape[:2]
        feed = {contract.NETWORK_INPUTS[0]: padded_chw(parts, self.size_multiple)}
        if self.uses_context:
            feed[contract.NETWORK_INPUTS[1]] = self.context(parts) if context is None else context
        y = self.session.run(None, feed)[0]
        return y[0, :, :h, :w].transpose(1, 2, 0)


def load_network(path: str | Path, device: str = "cpu") -> OnnxNetwork:
    path = Path(path)
    session, meta = open_session(path, "network", contract.NETWORK_FORMAT, device)
    want = contract.NETWORK_INPUTS if meta.get("uses_context") else contract.NETWORK_INPUTS[:1]
    _check_names(path, "network", session, want, (contract.NETWORK_OUTPUT,))
    try:
        net = OnnxNetwork(session, meta, path)
        channels = session.get_inputs()[0].shape[1]
        ok = net.inputs in ("low", "mapped", "low+mapped") and channels == 3 * len(net.inputs.split("+"))
        if net.uses_context:
            ok = ok and list(session.get_inputs()[1].shape[1:]) == [channels, CONTEXT_SIZE, CONTEXT_SIZE]
    except (KeyError, TypeError, ValueError, IndexError):
        ok = False
    if not ok:
        raise EnhanceError(f"{path}: the ONNX network's settings do not match its inputs; {contract.REBUILD}")
    return net


class OnnxBooster:
    """What the quantile model asks of an XGBoost booster, ``inplace_predict``, in ONNX Runtime."""

    def __init__(self, session):
        self.session = session

    def inplace_predict(self, rows: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        return self.session.run(None, {contract.BOOSTER_INPUT: rows})[0]


def load_quantile_model(path: str | Path):
    """A :class:`~lowlight.histbranch.quantiles.QuantileModel` predicting with the ONNX booster at ``path``."""
    from lowlight.errors import DataError
    from lowlight.histbranch.quantile_features import feature_names
    from lowlight.histbranch.quantiles import QuantileModel
    from lowlight.histbranch.quantiles import _settings as settings_from_json  # the .ubj's own settings check

    path = Path(path)
    session, meta = open_session(path, "quantile model", contract.BOOSTER_FORMAT, "cpu", threads=1)
    _check_names(path, "quantile model", session, (contract.BOOSTER_INPUT,), (contract.BOOSTER_OUTPUT,))
    try:
        cfg, step = settings_from_json(json.dumps(meta.get("quantiles")), path, "cannot load the quantile model")
    except DataError as exc:
        raise EnhanceError(f"{exc.problems[0]}; {contract.REBUILD}") from None
    model = QuantileModel(cfg, step, OnnxBooster(session))
    n_features, n_out = session.get_inputs()[0].shape[1], session.get_outputs()[0].shape[1]
    if n_features != len(feature_names(cfg, step)) or n_out != len(model.levels):
        raise EnhanceError(f"{path}: the ONNX quantile model takes {n_features} features and gives {n_out} outputs, "
                           f"its settings make {len(feature_names(cfg, step))} and {len(model.levels)}; "
                           f"{contract.REBUILD}")
    return model
