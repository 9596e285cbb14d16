"""The single inference path: low image -> histogram mapping -> network -> enhanced image.

Used by ``lowlight enhance``, the ``evaluate`` stage and the tests, so padding,
tiling and device handling live here once:

1. the quantile model predicts the well-lit image's 21 percentiles per channel
   from the WHOLE low image's histogram (also when the network runs in tiles);
2. :func:`lowlight.histmap.map_image` maps the low image onto that histogram;
3. the network refines (low, mapped) into the final image, padded to its size
   multiple in :mod:`lowlight.models.padding`; images over ``tile_pixels`` are
   processed in overlapping tiles blended with a smooth window, so there are no
   seams and memory stays bounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import HistmapConfig, from_dict

__all__ = ["Enhancer", "enhance", "default_weights", "WEIGHTS_DIR"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def default_weights() -> tuple[Path, Path]:
    """The shipped quantile model and network checkpoint (trained on LOL by this pipeline)."""
    q, n = WEIGHTS_DIR / "quantiles.ubj", WEIGHTS_DIR / "model.pt"
    missing = [str(p) for p in (q, n) if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"shipped weights are missing: {', '.join(missing)}; reinstall lowlight or "
                                "pass --weights/--quantile-model")
    return q, n


def _resolve_device(device: str):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but torch sees no CUDA device")
    return torch.device(device)


def _blend_window(h: int, w: int, overlap: int, sides: tuple[bool, bool, bool, bool]):
    """Tile weights: on each side that has a neighbour tile (top, bottom, left, right), the
    outer quarter of the overlap is dropped (too little context there) and the next half
    ramps linearly up to 1; sides on the image border keep full weight."""
    def ramp(n, first, last):
        r = np.ones(n, dtype=np.float32)
        k = min(overlap, n // 2)
        if k > 0:
            d = k / 4
            t = np.clip((np.arange(k, dtype=np.float32) + 0.5 - d) / max(k - 2 * d, 1), 0, 1)
            if first:
                r[:k] = t
            if last:
                r[n - k:] = np.minimum(r[n - k:], t[::-1])
        return r

    top, bottom, left, right = sides
    return ramp(h, top, bottom)[:, None] * ramp(w, left, right)[None, :]


def _tile_starts(n: int, tile: int, overlap: int) -> list[int]:
    if n <= tile:
        return [0]
    step = tile - overlap
    count = math.ceil((n - tile) / step) + 1
    starts = [min(i * step, n - tile) for i in range(count)]
    return sorted(set(starts))


@dataclass
class Enhancer:
    """Holds the loaded models; call it on a uint8 RGB array."""

    quantile_model: Any
    network: Any = None  # torch.nn.Module or None (mapping only)
    inputs: str = "low+mapped"
    histmap: HistmapConfig = field(default_factory=HistmapConfig)
    device: str = "cpu"
    tile_pixels: int = 1024 * 1024  # above this many pixels the network runs in tiles
    tile: int = 768
    overlap: int = 64

    @classmethod
    def from_files(cls, quantile_model: str | Path, checkpoint: str | Path | None = None,
                   histmap: HistmapConfig | None = None, device: str = "cpu", **kwargs) -> "Enhancer":
        from .quantiles import QuantileModel

        qm = QuantileModel.load(Path(quantile_model))
        net, inputs = None, "low+mapped"
        torch_device = _resolve_device(device)
        if checkpoint is not None:
            from .checkpoint import load_checkpoint

            net, meta = load_checkpoint(Path(checkpoint), device=torch_device)
            inputs = meta.get("inputs", inputs)
            if histmap is None:
                raw = (meta.get("params") or {}).get("histmap")
                if raw:
                    histmap = from_dict(HistmapConfig, raw, prefix="histmap")
        return cls(qm, net, inputs, histmap or HistmapConfig(), str(torch_device), **kwargs)

    @classmethod
    def pretrained(cls, device: str = "cpu", **kwargs) -> "Enhancer":
        q, n = default_weights()
        return cls.from_files(q, n, device=device, **kwargs)

    # ----------------------------------------------------------------- steps

    def predict_percentiles(self, rgb: np.ndarray) -> np.ndarray:
        return self.quantile_model.predict([rgb])[0]

    def map(self, rgb: np.ndarray) -> np.ndarray:
        """Histogram mapping alone (the network's input)."""
        from .histmap import map_image

        _check_rgb(rgb)
        return map_image(rgb, self.predict_percentiles(rgb), self.histmap)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        _check_rgb(rgb)
        mapped = self.map(rgb)
        if self.network is None:
            return mapped
        h, w = rgb.shape[:2]
        if h * w <= self.tile_pixels:
            return _to_uint8(self._run(rgb, mapped))
        return self._run_tiled(rgb, mapped)

    # ----------------------------------------------------------------- network

    def _input_tensor(self, low: np.ndarray, mapped: np.ndarray):
        import torch

        from .train_data import stack_inputs  # the same stacking the network was trained with

        x = np.ascontiguousarray(stack_inputs(low, mapped, self.inputs))
        t = torch.from_numpy(x).to(self.device)
        return t.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)

    def _run(self, low: np.ndarray, mapped: np.ndarray) -> np.ndarray:
        """Network on one (tile of an) image; float32 H x W x 3 in [0, 1]."""
        import torch

        from .models.padding import run_padded

        with torch.inference_mode():
            y = run_padded(self.network, self._input_tensor(low, mapped))
        return y[0].permute(1, 2, 0).float().cpu().numpy()

    def _run_tiled(self, low: np.ndarray, mapped: np.ndarray) -> np.ndarray:
        """Overlapping tiles blended with a smooth window.

        The image is padded ONCE to the network's size multiple (reflection, as
        :func:`~lowlight.models.padding.run_padded` would do for the whole image), and
        tiles and overlaps are multiples of it, so every tile sees exactly the pixels
        the whole-image run would; only context beyond the overlap is lost.
        """
        from .models.padding import size_multiple

        h, w = low.shape[:2]
        m = size_multiple(self.network)
        ph, pw = -h % m, -w % m
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "edge"
            low = np.pad(low, ((0, ph), (0, pw), (0, 0)), mode=mode)
            mapped = np.pad(mapped, ((0, ph), (0, pw), (0, 0)), mode=mode)
        tile = max(m, self.tile // m * m)
        overlap = min(-(-self.overlap // m) * m, tile // 2 // m * m)
        H, W = low.shape[:2]
        acc = np.zeros((H, W, 3), dtype=np.float32)
        weight = np.zeros((H, W, 1), dtype=np.float32)
        ys, xs = _tile_starts(H, tile, overlap), _tile_starts(W, tile, overlap)
        for y0 in ys:
            for x0 in xs:
                sl = (slice(y0, min(y0 + tile, H)), slice(x0, min(x0 + tile, W)))
                out = self._run(low[sl], mapped[sl])
                sides = (y0 > 0, y0 + tile < H, x0 > 0, x0 + tile < W)
                win = _blend_window(out.shape[0], out.shape[1], overlap, sides)[..., None]
                acc[sl] += out * win
                weight[sl] += win
        acc /= weight
        return _to_uint8(acc[:h, :w])


def _check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        desc = f"{getattr(rgb, 'dtype', type(rgb).__name__)} {getattr(rgb, 'shape', '')}"
        raise ValueError(f"expected a uint8 H x W x 3 RGB array, got {desc}")


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


_DEFAULT: dict[str, Enhancer] = {}


def enhance(image, enhancer: Enhancer | None = None, device: str = "cpu"):
    """Enhance a PIL image or a uint8 array and return the same kind.

    A PIL image comes back in its own kind (grey stays grey, alpha is kept, 16-bit
    grey stays 16-bit; see :func:`lowlight.imageio.to_pil`); an array may be
    H x W (grey), H x W x 3 or H x W x 4 (alpha kept). The command line uses this
    same function, so both give identical pixels.
    """
    from PIL import Image

    from .imageio import from_pil, to_pil

    if enhancer is None:
        if device not in _DEFAULT:
            _DEFAULT[device] = Enhancer.pretrained(device=device)
        enhancer = _DEFAULT[device]
    if isinstance(image, Image.Image):
        loaded = from_pil(image)
        return to_pil(enhancer(loaded.rgb), loaded)
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {arr.dtype}")
    if arr.ndim == 2:
        out = enhancer(np.repeat(arr[..., None], 3, axis=2))
        return np.asarray(Image.fromarray(out).convert("L"))
    if arr.ndim == 3 and arr.shape[2] == 4:
        out = enhancer(np.ascontiguousarray(arr[..., :3]))
        return np.concatenate([out, arr[..., 3:]], axis=2)
    return enhancer(arr)
