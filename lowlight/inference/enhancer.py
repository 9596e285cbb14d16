"""The single inference path: low image -> histogram mapping -> network -> enhanced image.

Used by ``lowlight enhance``, the ``evaluate`` stage and the tests, so padding,
tiling and device handling live here once:

1. the quantile model predicts the well-lit image's 21 percentiles per channel
   from the WHOLE low image's histogram (also when the network runs in tiles);
2. :func:`lowlight.histbranch.histmap.map_image` maps the low image onto that histogram;
3. the network refines (low, mapped) into the final image, padded to its size
   multiple; it runs in ONNX Runtime (:mod:`lowlight.inference.onnx_models`, the
   exported pair), or in PyTorch for a checkpoint (:mod:`lowlight.models.torch_runner`,
   the reference the export is checked against). Images over ``tile_pixels`` are
   processed in overlapping tiles of near-equal size blended with a smooth window, so
   there are no seams and memory stays bounded (one band of tile rows is held in float
   at a time);
4. the exposure anchor (the checkpoint's ``train.exposure_anchor``,
   :mod:`lowlight.inference.exposure`) pulls the result's overall brightness towards
   the mapped image's, one gain for the whole photo, rolled off near white so it clips
   nothing the photo did not; the exposure restraint
   (:mod:`lowlight.inference.restraint`) then holds back the brightening of a photo that
   was already normally exposed;
5. ``exposure`` (stops, 0 by default) is the person's exposure compensation: the result's
   linear light times ``2 ** exposure``, highlights rolled off
   (:func:`lowlight.inference.exposure.compensate_exposure`);
6. the shadow lift (:mod:`lowlight.inference.shadows`) raises the dark regions of a dark
   photo with a smooth, edge-aware gain, highlights held, then raises what is still pitch
   black to a deep-shadow floor (``keep_black`` leaves it black); ``shadows`` None (auto)
   acts only on photos with many crushed pixels, a number sets the amount (0: off);
7. ``strength`` blends the result with the input in 8-bit space,
   ``round(low + s * (enhanced - low))``: 0 gives the input back, 1 (the default) the
   full enhancement, up to :data:`STRENGTH_MAX` brightens further.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lowlight.config import HistmapConfig, from_dict
from lowlight.imageio import MAX_PIXELS, too_large
from lowlight.inference.exposure import KNEE, anchor_exposure, compensate_exposure
from lowlight.inference.settings import (STRENGTH_MAX, WEIGHTS_DIR, EnhanceError, check_anchor, check_exposure,
                                         check_shadows, check_strength, checkpoint_anchor, default_weights,
                                         resolve_device, resolve_weights)
from lowlight.inference.network_input import stack_inputs
from lowlight.inference.pipeline_weights import checkpoint_network, fitted_quantile_model
from lowlight.inference.restraint import restrain_exposure
from lowlight.inference.shadows import FLOOR, auto_amount, lift_shadows
from lowlight.inference.tiles import (OVERLAP, TILE, TILE_PIXELS, apply_strength, blend_window, even_tile,
                                      padded_pixels, tile_starts, to_uint8)

# the settings' names stay importable from here, where the command line and the app import them
__all__ = ["Enhancer", "EnhanceError", "enhance", "default_weights", "resolve_weights", "check_strength", "check_shadows",
           "check_exposure", "resolve_device", "WEIGHTS_DIR", "STRENGTH_MAX"]


@dataclass
class Enhancer:
    """Holds the loaded models; call it on a uint8 RGB array."""

    quantile_model: Any
    network: Any = None  # a network runner (OnnxNetwork, TorchNetwork), a torch.nn.Module, or None (mapping only)
    inputs: str = "low+mapped"
    histmap: HistmapConfig = field(default_factory=HistmapConfig)
    device: str = "cpu"
    tile_pixels: int = TILE_PIXELS  # above this many pixels the network runs in tiles
    tile: int = TILE  # the longest tile side (tiles are as near this as an even split allows)
    overlap: int = OVERLAP
    strength: float = 1.0  # 0: the input unchanged, 1: the full enhancement (see check_strength)
    exposure_anchor: float = 0.0  # train.exposure_anchor of the checkpoint (lowlight.inference.exposure)
    shadows: float | None = None  # the shadow lift's amount: None = auto (lowlight.inference.shadows), 0 = off
    exposure: float = 0.0  # the person's exposure compensation in stops (lowlight.inference.exposure); 0 = the tool's
    keep_black: bool = False  # no black floor after the lift's gain: pitch-black regions stay black
    restrain: bool = True  # the exposure restraint (lowlight.inference.restraint); off for its ablation
    highlight_knee: float | None = KNEE  # the anchor's highlight shoulder (lowlight.inference.exposure); None clips
    progress: Callable[[int, int], None] | None = field(default=None, compare=False)  # (done, total) tiles

    def __post_init__(self):
        self.strength = check_strength(self.strength)
        self.exposure_anchor = check_anchor(self.exposure_anchor)
        self.shadows = check_shadows(self.shadows)
        self.exposure = check_exposure(self.exposure)
        if self.network is not None and not hasattr(self.network, "runtime"):  # a bare torch module
            from lowlight.models.torch_runner import TorchNetwork

            self.network = TorchNetwork(self.network, self.inputs, self.device)

    @classmethod
    def from_files(cls, quantile_model: str | Path, checkpoint: str | Path | None = None,
                   histmap: HistmapConfig | None = None, device: str = "cpu", **kwargs) -> "Enhancer":
        """The exported ``.onnx`` pair in ONNX Runtime (what the tool runs); a ``.ubj`` quantile model or a
        ``.pt`` checkpoint is read with XGBoost or PyTorch instead (the pipeline extra: the reference)."""
        device = resolve_device(device)
        if Path(quantile_model).suffix == ".onnx":
            from lowlight.inference.onnx_models import load_quantile_model

            qm = load_quantile_model(quantile_model)
        else:
            qm = fitted_quantile_model(Path(quantile_model))
        net, inputs, raw_histmap = None, "low+mapped", None
        if checkpoint is not None and Path(checkpoint).suffix == ".onnx":
            from lowlight.inference.onnx_models import load_network

            net = load_network(checkpoint, device)
            inputs, raw_histmap = net.inputs, net.histmap
            kwargs.setdefault("exposure_anchor", check_anchor(net.exposure_anchor, f"{checkpoint}: exposure_anchor"))
        elif checkpoint is not None:
            net, meta = checkpoint_network(Path(checkpoint), device)
            inputs, raw_histmap = net.inputs, (meta.get("params") or {}).get("histmap")
            kwargs.setdefault("exposure_anchor", checkpoint_anchor(Path(checkpoint), meta))
        if histmap is None and raw_histmap:
            histmap = from_dict(HistmapConfig, raw_histmap, prefix="histmap")
        return cls(qm, net, inputs, histmap or HistmapConfig(), device, **kwargs)

    @classmethod
    def pretrained(cls, device: str = "cpu", **kwargs) -> "Enhancer":
        q, n = default_weights()
        return cls.from_files(q, n, device=device, **kwargs)

    # ----------------------------------------------------------------- steps

    def predict_percentiles(self, rgb: np.ndarray) -> np.ndarray:
        return self.quantile_model.predict([rgb])[0]

    def map(self, rgb: np.ndarray) -> np.ndarray:
        """Histogram mapping alone (the network's input)."""
        from lowlight.histbranch.histmap import map_image

        _check_rgb(rgb)
        return map_image(rgb, self.predict_percentiles(rgb), self.histmap)

    def __call__(self, rgb: np.ndarray, strength: float | None = None) -> np.ndarray:
        """The enhanced image (uint8 H x W x 3); ``strength`` overrides :attr:`strength` for this call."""
        _check_rgb(rgb)
        strength = self.strength if strength is None else check_strength(strength)
        if strength == 0.0:
            return rgb.copy()
        return apply_strength(rgb, self.lift(self.unlifted(rgb), rgb), strength)

    def unlifted(self, rgb: np.ndarray) -> np.ndarray:
        """Steps 1-4: the enhanced photo before the shadow lift (uint8 H x W x 3), which :meth:`lift`
        finishes. The app keeps it, so a move of its shadows slider costs one lift, not a network run."""
        _check_rgb(rgb)
        mapped = self.map(rgb)
        if self.network is None:
            out = mapped
        elif padded_pixels(*rgb.shape[:2], self.network.size_multiple) <= self.tile_pixels:
            out = to_uint8(self._run(rgb, mapped))
        else:
            out = self._run_tiled(rgb, mapped)
        if self.network is not None and self.exposure_anchor > 0:
            out = anchor_exposure(out, mapped, self.exposure_anchor, self.highlight_knee)
        if self.network is not None and self.restrain:
            out = restrain_exposure(out, rgb)
        return out

    def shadow_amount(self, rgb: np.ndarray) -> float:
        """The shadow lift's amount for ``rgb`` (the input): :attr:`shadows`, or in auto what the
        gate reads from the photo; 0 without a network (the mapping alone is not lifted)."""
        if self.network is None:
            return 0.0
        return auto_amount(rgb) if self.shadows is None else self.shadows

    def lift(self, unlifted: np.ndarray, rgb: np.ndarray, amount: float | None = None,
             exposure: float | None = None) -> np.ndarray:
        """Steps 5-6 on :meth:`unlifted`'s output for the input ``rgb``: the exposure compensation
        (None: the enhancer's own, :attr:`exposure`; else stops from -3 to 3), then the shadow lift
        at ``amount`` (None: :attr:`shadows`; a number from 0 to ``SHADOWS_MAX`` otherwise)."""
        ev = self.exposure if exposure is None else check_exposure(exposure)
        compensated = compensate_exposure(unlifted, ev)
        if self.network is None:
            return compensated
        amount = self.shadows if amount is None else check_shadows(amount)
        return lift_shadows(compensated, rgb, amount, floor=0.0 if self.keep_black else FLOOR)

    # ----------------------------------------------------------------- network

    def _run(self, low: np.ndarray, mapped: np.ndarray, context=None) -> np.ndarray:
        """Network on one (tile of an) image; float32 H x W x 3 in [0, 1].

        ``context``: the whole image's (a tile gets the context of the photo it is cut
        from); None computes it from this image, which is right for a whole image.
        """
        return self.network(stack_inputs(low, mapped, self.inputs), context)

    def _run_tiled(self, low: np.ndarray, mapped: np.ndarray) -> np.ndarray:
        """Overlapping tiles blended with a smooth window.

        The image is padded ONCE to the network's size multiple (reflection, as
        :func:`~lowlight.models.padding.run_padded` would do for the whole image), and
        tiles and overlaps are multiples of it, so every tile sees exactly the pixels
        the whole-image run would; only context beyond the overlap is lost.
        """
        # of the whole photo, before padding, as a whole-image run sees it
        context = self.network.context(stack_inputs(low, mapped, self.inputs))
        h, w = low.shape[:2]
        m = self.network.size_multiple
        ph, pw = -h % m, -w % m
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "edge"
            low = np.pad(low, ((0, ph), (0, pw), (0, 0)), mode=mode)
            mapped = np.pad(mapped, ((0, ph), (0, pw), (0, 0)), mode=mode)
        H, W = low.shape[:2]
        tile = max(m, self.tile // m * m)
        overlap = min(-(-self.overlap // m) * m, tile // 2 // m * m)
        # near-equal tiles: a fixed size would leave a sliver at the far edge that re-runs most of a tile
        tile_h, tile_w = even_tile(H, tile, overlap, m), even_tile(W, tile, overlap, m)
        result = np.empty((h, w, 3), dtype=np.uint8)
        ys, xs = tile_starts(H, tile_h, overlap), tile_starts(W, tile_w, overlap)
        # Float sums are kept for one band of tile rows only: rows above the next band's
        # top get no more tiles, so they are final and leave as uint8 (the same sums, in
        # the same order, as one whole-image accumulator, at a fraction of its memory).
        carry_acc = carry_weight = None
        for i, y0 in enumerate(ys):
            y1 = min(y0 + tile_h, H)
            acc = np.zeros((y1 - y0, W, 3), dtype=np.float32)
            weight = np.zeros((y1 - y0, W, 1), dtype=np.float32)
            if carry_acc is not None:
                acc[:len(carry_acc)] += carry_acc
                weight[:len(carry_weight)] += carry_weight
            for x0 in xs:
                cols = slice(x0, min(x0 + tile_w, W))
                out = self._run(low[y0:y1, cols], mapped[y0:y1, cols], context)
                sides = (y0 > 0, y0 + tile_h < H, x0 > 0, x0 + tile_w < W)
                win = blend_window(out.shape[0], out.shape[1], overlap, sides)[..., None]
                out *= win
                acc[:, cols] += out
                weight[:, cols] += win
                if self.progress is not None:
                    self.progress(i * len(xs) + xs.index(x0) + 1, len(ys) * len(xs))
            done = (ys[i + 1] if i + 1 < len(ys) else y1) - y0
            band = acc[:done]
            band /= weight[:done]
            top, bottom = y0, min(y0 + done, h)
            if bottom > top:
                result[top:bottom] = to_uint8(band[:bottom - top, :w])
            carry_acc, carry_weight = acc[done:], weight[done:]
        return result


def _check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        desc = f"{getattr(rgb, 'dtype', type(rgb).__name__)} {getattr(rgb, 'shape', '')}"
        raise ValueError(f"expected a uint8 H x W x 3 RGB array, got {desc}")


_DEFAULT: dict[str, Enhancer] = {}


def enhance(image, enhancer: Enhancer | None = None, device: str = "cpu", strength: float | None = None,
            max_pixels: int | None = MAX_PIXELS):
    """Enhance a PIL image or a uint8 array and return the same kind.

    A PIL image comes back in its own kind (grey stays grey, alpha is kept, 16-bit
    grey stays 16-bit; see :func:`lowlight.imageio.to_pil`); an array may be
    H x W (grey), H x W x 3 or H x W x 4 (alpha kept). The command line uses this
    same function, so both give identical pixels. ``strength`` (default: the
    enhancer's, 1) blends with the input: 0 returns it unchanged. Images over
    ``max_pixels`` (None: no limit) are refused; a lazily opened PIL image is
    refused from its header, before it is decoded.
    """
    from PIL import Image

    from lowlight.imageio import from_pil, to_pil

    strength = None if strength is None else check_strength(strength)
    if isinstance(image, Image.Image):
        refusal = too_large(getattr(image, "filename", "") or "image", *image.size, max_pixels)
    else:
        shape = np.shape(image)
        refusal = too_large("image", shape[1], shape[0], max_pixels) if len(shape) >= 2 else None
    if refusal is not None:
        raise refusal
    if enhancer is None:
        if device not in _DEFAULT:
            _DEFAULT[device] = Enhancer.pretrained(device=device)
        enhancer = _DEFAULT[device]
    if isinstance(image, Image.Image):
        loaded = from_pil(image)
        return to_pil(enhancer(loaded.rgb, strength), loaded)
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {arr.dtype}")
    if arr.ndim == 2:
        out = enhancer(np.repeat(arr[..., None], 3, axis=2), strength)
        return np.asarray(Image.fromarray(out).convert("L"))
    if arr.ndim == 3 and arr.shape[2] == 4:
        out = enhancer(np.ascontiguousarray(arr[..., :3]), strength)
        return np.concatenate([out, arr[..., 3:]], axis=2)
    return enhancer(arr, strength)
