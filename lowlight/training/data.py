"""Training data: image pairs decoded once into memory, cropped and augmented on the fly.

Decoding PNGs every epoch would cost more CPU than training the small default
network, so each split is decoded once into uint8 arrays (a 600 x 400 pair with
its mapped image is 2.2 MB; LOL's 485 training pairs fit in about 1 GB) and
every batch is cut from memory. Random crops, horizontal/vertical flips and
90-degree rotations are applied to input and target together; all eight
flip/rotation combinations are plausible for photos of scenes and they leave
pixel statistics unchanged.

Each sample's randomness comes from ``(seed, epoch, index)`` alone, so a batch
does not depend on the number of DataLoader workers, on the process it runs in
(DistributedDataParallel) or on whether training was interrupted and resumed.

The network input is built by :func:`stack_inputs` from the low image and the
histogram-mapped image (``data/mapped/<split>/<stem>.png``) according to
``train.inputs``; the channel order is ``[low, mapped]``, so the mapped image
is always the last three channels (the residual U-Net adds to them).

With ``train.target_exposure: mapped`` (:func:`at_mapped_exposure`) each training
target is first scaled, one gain per image, to its mapped image's grey mean: the
reference as it would look at the exposure the quantile model chose. The loss then
holds no term the network cannot learn from a few hundred scenes (their exposure,
which the dark photo predicts poorly) and the enhancer's exposure anchor
(:mod:`lowlight.inference.exposure`) has nothing left to undo.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from lowlight.config import INPUT_KINDS
from lowlight.errors import DataError
from lowlight.imageio import ImageError, read_rgb
from lowlight.data.pairs import load_pairs
from lowlight.inference.exposure import anchor_exposure

__all__ = ["INPUT_CHANNELS", "input_channels", "stack_inputs", "to_tensor", "SplitData", "load_split",
           "at_mapped_exposure", "check_crop", "fingerprint", "contexts", "CropDataset"]

INPUT_CHANNELS = {kind: 3 * len(kind.split("+")) for kind in INPUT_KINDS}  # RGB per image fed


def input_channels(inputs: str) -> int:
    try:
        return INPUT_CHANNELS[inputs]
    except KeyError:
        raise ValueError(f"unknown inputs {inputs!r}; use one of {', '.join(INPUT_CHANNELS)}") from None


def stack_inputs(low: np.ndarray, mapped: np.ndarray | None, inputs: str) -> np.ndarray:
    """The network input as H x W x C uint8: ``low``, ``mapped`` or both (``[low, mapped]``)."""
    input_channels(inputs)
    if inputs == "low":
        return low
    if mapped is None:
        raise ValueError(f"inputs {inputs!r} needs the histogram-mapped image")
    if mapped.shape != low.shape:
        raise ValueError(f"mapped image is {mapped.shape[1]}x{mapped.shape[0]}, low image "
                         f"{low.shape[1]}x{low.shape[0]}")
    if inputs == "mapped":
        return mapped
    return np.concatenate([low, mapped], axis=2)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """H x W x C uint8 array -> C x H x W uint8 tensor (scaled to [0, 1] on the device, after transfer)."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


@dataclass
class SplitData:
    """One split in memory. ``inputs[i]`` is H x W x C per ``inputs``; ``lows``/``mapped`` are views for plots."""

    split: str
    inputs_kind: str
    stems: list[str]
    inputs: list[np.ndarray]
    targets: list[np.ndarray]
    lows: list[np.ndarray]
    mapped: list[np.ndarray] | None

    def __len__(self) -> int:
        return len(self.stems)


def load_split(data_root: str | Path, mapped_root: str | Path | None, split: str, inputs: str) -> SplitData:
    """Decode a split of the prepared dataset plus its mapped images (when ``inputs`` uses them or they exist)."""
    data_root = Path(data_root)
    stems, lows, highs = load_pairs(data_root, split)
    if not stems:
        raise DataError([f"{data_root / split}: no image pairs (expected {split}/low/*.png and {split}/high/*.png)"],
                        header=f"no {split} data")
    problems = [f"{data_root / split / 'low' / s}.png: low is {lo.shape[1]}x{lo.shape[0]} but high is "
                f"{hi.shape[1]}x{hi.shape[0]}" for s, lo, hi in zip(stems, lows, highs) if lo.shape != hi.shape]
    mapped = None
    want_mapped = "mapped" in inputs
    folder = Path(mapped_root) / split if mapped_root is not None else None
    if want_mapped or (folder is not None and folder.is_dir()):
        if folder is None:
            raise DataError([f"inputs {inputs!r} needs mapped images but no mapped folder was given"])
        mapped = []
        for stem, low in zip(stems, lows):
            path = folder / f"{stem}.png"
            if not path.is_file():
                problems.append(f"{path}: missing (histmap writes one mapped image per low image)")
                continue
            try:
                m = read_rgb(path)
            except ImageError as exc:
                problems.append(str(exc))
                continue
            if m.shape != low.shape:
                problems.append(f"{path}: {m.shape[1]}x{m.shape[0]} but the low image is {low.shape[1]}x{low.shape[0]}")
            mapped.append(m)
        if problems and not want_mapped:
            mapped, problems = None, [p for p in problems if not p.startswith(str(folder))]
    if problems:
        raise DataError(problems, header=f"unusable {split} data")
    stacked = [stack_inputs(lo, m, inputs) for lo, m in zip(lows, mapped or [None] * len(lows))]
    if inputs == "low+mapped":  # keep one copy of each image: views into the stacked arrays
        lows = [s[..., :3] for s in stacked]
        mapped = [s[..., 3:] for s in stacked]
    return SplitData(split, inputs, stems, stacked, highs, lows, mapped)


def at_mapped_exposure(data: SplitData) -> SplitData:
    """``data`` with each target scaled by ``grey(mapped) / grey(target)`` (rounded, clipped; at most
    :data:`lowlight.inference.exposure.MAX_GAIN`), the gain the anchor gives at ``alpha = 1``, without its
    highlight shoulder: the references' highlights are the truth the network learns."""
    if data.mapped is None:
        raise ValueError(f"{data.split}: target exposure 'mapped' needs the mapped images")
    return dataclasses.replace(data, targets=[anchor_exposure(t, m, 1.0, knee=None) for t, m in zip(data.targets, data.mapped)])


def check_crop(data: SplitData, crop_size: int) -> None:
    """Every training image must hold a crop; say which ones do not and what would fit."""
    small = [(s, x.shape[0], x.shape[1]) for s, x in zip(data.stems, data.inputs) if min(x.shape[:2]) < crop_size]
    if small:
        fit = min(min(h, w) for _, h, w in small)
        raise DataError([f"{s}: {w}x{h}" for s, h, w in small[:10]] + ([f"... and {len(small) - 10} more"]
                                                                         if len(small) > 10 else []),
                        header=f"train.crop_size {crop_size} is larger than {len(small)} {data.split} image(s); "
                               f"lower train.crop_size to at most {fit}")


def fingerprint(*splits: SplitData) -> str:
    """A digest of the decoded data: a resumed run must see exactly the data it started with."""
    h = hashlib.blake2b(digest_size=16)
    for data in splits:
        h.update(f"{data.split}:{data.inputs_kind}:{len(data)}".encode())
        for stem, x, y in zip(data.stems, data.inputs, data.targets):
            h.update(stem.encode())
            h.update(np.ascontiguousarray(x).data)
            h.update(np.ascontiguousarray(y).data)
    return h.hexdigest()


def contexts(images: list[np.ndarray]) -> list[torch.Tensor]:
    """The whole-image context (:func:`lowlight.models.context.image_context`) of each H x W x C uint8 image."""
    from lowlight.models.context import image_context

    return [image_context(to_tensor(im)[None].float().div_(255))[0] for im in images]


class CropDataset(Dataset):
    """``length`` random crops per epoch; item ``i`` comes from image ``i % len(images)``.

    Returns ``(input, target)`` as C x H x W uint8 tensors, plus the image's context
    (flipped and turned as the crop) when ``contexts`` are given; call
    :meth:`set_epoch` before each epoch, as with ``DistributedSampler``.
    """

    def __init__(self, inputs: list[np.ndarray], targets: list[np.ndarray], crop_size: int, length: int, seed: int,
                 contexts: list[torch.Tensor] | None = None):
        if not inputs or len(inputs) != len(targets):
            raise ValueError("need as many targets as inputs, and at least one pair")
        if contexts is not None and len(contexts) != len(inputs):
            raise ValueError("need one context per input image")
        self.contexts = contexts
        self.inputs, self.targets = inputs, targets
        self.crop = crop_size
        self.length = length
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        k = i % len(self.inputs)
        x, y = self.inputs[k], self.targets[k]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        c = self.crop
        top = int(rng.integers(0, x.shape[0] - c + 1))
        left = int(rng.integers(0, x.shape[1] - c + 1))
        x, y = x[top:top + c, left:left + c], y[top:top + c, left:left + c]
        flip_h, flip_v, turns = rng.random() < 0.5, rng.random() < 0.5, int(rng.integers(4))
        if flip_h:
            x, y = x[:, ::-1], y[:, ::-1]
        if flip_v:
            x, y = x[::-1], y[::-1]
        if turns:
            x, y = np.rot90(x, turns), np.rot90(y, turns)
        if self.contexts is None:
            return to_tensor(x), to_tensor(y)
        ctx = self.contexts[k]  # C x h x w: the same flips and turns as the H x W x C crop
        if flip_h:
            ctx = ctx.flip(2)
        if flip_v:
            ctx = ctx.flip(1)
        if turns:
            ctx = torch.rot90(ctx, turns, dims=(1, 2))
        return to_tensor(x), to_tensor(y), ctx.contiguous()
