"""Writing images atomically, as their extension says, with the input's metadata where it fits.

:func:`save_photo` is what ``lowlight enhance`` and ``lowlight app`` write a person's photo
with; :func:`write_image` is the plain writer of the pipeline's own images (mapped images,
benchmarks). Reading is :mod:`lowlight.imageio`.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from lowlight.atomic import atomic_path
from lowlight.colour import profile_fits
from lowlight.imageio import IMAGE_EXTENSIONS, ImageError, output_format
from lowlight.metadata import marked_exif, marked_pnginfo

__all__ = ["METADATA_FORMATS", "save_photo", "write_image"]

METADATA_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "AVIF")  # formats Pillow writes EXIF and ICC profiles into


def _writable(img: Image.Image, fmt: str) -> Image.Image:
    """``img`` in a mode ``fmt`` stores as itself, so that the file opens in that same mode."""
    if fmt in ("JPEG", "BMP") and img.mode in ("RGBA", "LA"):
        img = img.convert("RGB" if img.mode == "RGBA" else "L")  # these formats have no alpha
    if img.mode == "I;16" and fmt not in ("PNG", "TIFF", "JPEG2000"):  # no 16-bit grey in the others
        img = Image.fromarray((np.asarray(img) // 257).astype(np.uint8))  # exact: 16-bit output is 257 * v
    return img


def _metadata_kwargs(img: Image.Image, fmt: str, metadata: dict) -> dict:
    """The input's EXIF with lowlight's mark, and its ICC profile only where the pixels written are
    in the profile's colour space (a CMYK profile on RGB pixels makes viewers misread them)."""
    if fmt not in METADATA_FORMATS:
        return {}
    out = {"exif": marked_exif(metadata.get("exif"))}
    icc = metadata.get("icc_profile")
    if profile_fits(icc, img.mode):
        out["icc_profile"] = icc
    if fmt == "PNG":  # beside the eXIf chunk, which few PNG readers look at
        out["pnginfo"] = marked_pnginfo()
    return out


def save_photo(img: Image.Image, dst: str | os.PathLike, metadata: dict | None = None,
               quality: int | None = None) -> None:
    """Write an enhanced photo atomically as its extension says, with the input's EXIF and ICC profile
    (:func:`photo_metadata`) where the format holds them and they fit the pixels, and lowlight's mark
    (:mod:`lowlight.metadata`); ``quality`` for JPEG, WebP and AVIF (default: 95, and lossless WebP).
    What ``lowlight enhance`` and ``lowlight app`` write."""
    dst = Path(dst)
    fmt = output_format(dst)  # the bytes are what the extension says
    img = _writable(img, fmt)
    if quality is None:
        kwargs = {"JPEG": {"quality": 95}, "WEBP": {"lossless": True}, "AVIF": {"quality": 95}}.get(fmt, {})
    else:
        kwargs = {"quality": quality} if fmt in ("JPEG", "WEBP", "AVIF") else {}
    kwargs.update(_metadata_kwargs(img, fmt, metadata or {}))
    try:
        with atomic_path(dst) as tmp:
            img.save(tmp, format=fmt, **kwargs)
    except (ValueError, struct.error, TypeError) as exc:  # the format's own limits: WebP's 16383 pixels a side...
        raise ImageError(dst, f"cannot be written as {fmt} ({' '.join(str(exc).split())[:200]}); "
                              "choose another --format") from exc


def write_image(path: str | os.PathLike, array: np.ndarray, **save_kwargs) -> None:
    """Write a uint8 (or uint16) image atomically; format from the extension."""
    path = Path(path)
    if array.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"{path}: expected uint8 or uint16 pixels, got {array.dtype}")
    img = Image.fromarray(array)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ImageError(path, f"unknown image extension {path.suffix!r}; use one of "
                               f"{', '.join(sorted(IMAGE_EXTENSIONS))}")
    if fmt == "JPEG":
        save_kwargs.setdefault("quality", 95)
    with atomic_path(path) as tmp:
        img.save(tmp, format=fmt, **save_kwargs)
