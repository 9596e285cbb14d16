"""Reading images with errors that name the file and the problem (writing: :mod:`lowlight.image_writer`).

Everything inside the project is 8-bit RGB (``uint8`` array, H x W x 3).
:func:`read_rgb` is strict (the dataset stages refuse what is not plain RGB so
that nothing is silently converted in a benchmark); :func:`load_image` is the
lenient reader for people's own photos (EXIF orientation, grey, alpha, palette,
16-bit).
"""

from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from lowlight.colour import to_rgb
from lowlight.errors import UserError
from lowlight.metadata import EXIF_ERRORS, photo_metadata, quiet_exif_parse

__all__ = ["photo_metadata", "open_image_bytes", "ImageError", "IMAGE_EXTENSIONS", "READ_EXTENSIONS",
           "READ_FORMATS", "WRITE_FORMATS", "MAX_PIXELS", "is_image_file",
           "output_format", "read_rgb", "LoadedImage", "load_image", "from_pil", "to_pil",
           "open_image"]

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
"""The project's own formats: datasets, ``lowlight evaluate`` and folder scans everywhere."""


def _pillow_formats() -> tuple[set[str], dict[str, str], list[str]]:
    """What ``lowlight enhance`` reads and writes: :data:`IMAGE_EXTENSIONS`, plus AVIF and
    JPEG 2000 where this Pillow has the codec, plus GIF for reading only: its 256 colours
    would band an enhanced photo, so a GIF needs ``--format``."""
    from PIL import features

    write = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF",
             ".tiff": "TIFF"}
    if features.check("avif"):
        write[".avif"] = "AVIF"
    if features.check("jpg_2000"):
        write[".jp2"] = "JPEG2000"
    # (Pillow's JPEG decoder also opens a camera's MPO, a JPEG that carries previews)
    return set(write) | {".gif"}, write, sorted(set(write.values()) | {"GIF"})


READ_EXTENSIONS, WRITE_FORMATS, READ_FORMATS = _pillow_formats()
"""READ_FORMATS: the only Pillow decoders an input or upload is handed to, whatever its name or
bytes say. Pillow knows some forty formats; a PostScript file renamed ``holiday.jpg`` would
otherwise reach Ghostscript, and each rarely used decoder is attack surface for nothing."""

MAX_PIXELS = 50_000_000
"""lowlight's own pixel limit (50 megapixels, e.g. 8660 x 5773), checked from the header before
decoding: a photo this size needs about 2 GB to enhance. Pillow's decompression-bomb limit
(``Image.MAX_IMAGE_PIXELS``, ~89 MP) lets through images that take several GB and a minute."""

# a multi-frame JPEG (MPO) is a camera's photo plus previews: its first frame is the photo
_STILL_WITH_FRAMES = {"MPO"}


class ImageError(UserError, ValueError):
    """An input image that cannot be used; ``str()`` names the file and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def is_image_file(path: Path, extensions: set[str] = IMAGE_EXTENSIONS) -> bool:
    """An image by its extension; hidden names (``.x.tmp.png`` left by a killed writer,
    macOS ``._x.png`` forks) are never taken as images."""
    return path.suffix.lower() in extensions and not path.name.startswith(".")


def output_format(path: Path) -> str:
    """The Pillow format that ``path``'s extension promises; refuse what lowlight does not write."""
    fmt = WRITE_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        kind = "GIF (256 colours would band the enhanced photo)" if Path(path).suffix.lower() == ".gif" else \
            f"{Path(path).suffix or 'files without an extension'}"
        raise ImageError(path, f"lowlight does not write {kind}; use --format png (or jpg, webp, tiff), "
                               "or convert it to PNG first")
    return fmt


def _pixels(n: float) -> str:
    return f"{n / 1e6:.1f} megapixels" if n >= 100_000 else f"{int(n)} pixels"


def too_large(path: str | os.PathLike, width: int, height: int, max_pixels: int | None) -> ImageError | None:
    """The refusal for an image over ``max_pixels`` (None: no limit of lowlight's own), or None."""
    if max_pixels is None or width * height <= max_pixels:
        return None
    return ImageError(path, f"image is too large: {width}x{height} ({_pixels(width * height)}), over "
                            f"lowlight's limit of {_pixels(max_pixels)}; raise it with --max-pixels N "
                            "(max_pixels= in Python) if this machine has the memory (about 30 bytes a pixel)")


def _check_header(path: Path, img: Image.Image, max_pixels: int | None) -> None:
    refusal = too_large(path, *img.size, max_pixels)
    if refusal is not None:
        raise refusal
    frames = getattr(img, "n_frames", 1)
    if frames > 1 and img.format not in _STILL_WITH_FRAMES:
        raise ImageError(path, f"animated or multi-page {img.format} ({frames} frames); lowlight enhances one still "
                               "photo per file: extract the frame you want first (e.g. as PNG)")


def open_image(path: Path, max_pixels: int | None = MAX_PIXELS) -> Image.Image:
    """Open and decode a still image, refusing from its header what is too large or animated."""
    path = Path(path)
    if not path.exists():
        raise ImageError(path, "file does not exist")
    if path.is_dir():
        raise ImageError(path, "is a folder, not an image")
    if path.stat().st_size == 0:
        raise ImageError(path, "file is empty (0 bytes)")
    return _decode(path, path, max_pixels)


def open_image_bytes(data: bytes, where: str, max_pixels: int | None = MAX_PIXELS) -> Image.Image:
    """:func:`open_image` for the bytes of an image file (an upload, a served request); errors name ``where``."""
    if not data:
        raise ImageError(where, "image is empty (0 bytes)")
    return _decode(io.BytesIO(data), where, max_pixels)


# What Pillow's decoders raise on hostile or damaged bytes, besides OSError and ValueError: a bad
# TIFF header gives struct.error or TypeError, a WebP's bad EXIF SyntaxError (red-team pass and
# the fuzz in tests/test_faults_hostile.py). Each is the file's problem, never the program's.
DECODER_ERRORS = (*EXIF_ERRORS, MemoryError)

# signatures of documents that are not photos, to say what the file is instead of "unreadable"
_DOCUMENTS = {b"%!PS": "a PostScript document", b"\xc5\xd0\xd3\xc6": "an EPS document", b"%PDF": "a PDF document"}


def _not_a_photo(source) -> str:
    """The refusal of a file none of :data:`READ_FORMATS` identifies."""
    head = b""
    try:
        if isinstance(source, io.BytesIO):
            head = source.getvalue()[:4]
        else:
            with open(source, "rb") as f:
                head = f.read(4)
    except OSError:
        pass
    kind = next((f"{what}, " for sig, what in _DOCUMENTS.items() if head.startswith(sig)), "")
    return f"not a readable image ({kind}none of {', '.join(READ_FORMATS)}, whatever its extension says)"


def _decode(source, where, max_pixels: int | None) -> Image.Image:
    try:
        with quiet_exif_parse():  # a damaged TIFF directory's EXIF: the photo is read without it
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(source, formats=READ_FORMATS)  # the header only
            try:
                _check_header(where, img, max_pixels)
                img.load()  # decode now so truncation is found here, not later
            except BaseException:
                img.close()
                raise
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{_pixels(int(found.group(1)))}, " if found else ""
        raise ImageError(where, f"image is too large to decode safely ({size}over Pillow's limit of "
                               f"{_pixels(Image.MAX_IMAGE_PIXELS or 0)}, Image.MAX_IMAGE_PIXELS; "
                               "--max-pixels raises both)") from exc
    except Image.UnidentifiedImageError as exc:
        raise ImageError(where, _not_a_photo(source)) from exc
    except MemoryError as exc:
        raise ImageError(where, "not enough memory to decode this image; lower --max-pixels or free memory") from exc
    except DECODER_ERRORS as exc:
        msg = " ".join(str(exc).split())[:200] or type(exc).__name__
        if "truncated" in msg.lower():
            raise ImageError(where, "image file is truncated") from exc
        raise ImageError(where, f"not a readable image ({msg})") from exc
    return img


def read_rgb(path: str | os.PathLike, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """Decode an 8-bit RGB image; refuse other modes with a clear reason."""
    path = Path(path)
    img = open_image(path, max_pixels)
    if img.mode != "RGB":
        kind = {"L": "grayscale", "LA": "grayscale with alpha", "RGBA": "RGBA (has an alpha channel)",
                "P": "palette", "I;16": "16-bit grayscale", "I;16B": "16-bit grayscale",
                "I": "32-bit integer", "F": "floating point", "CMYK": "CMYK", "1": "1-bit"}.get(img.mode, img.mode)
        raise ImageError(path, f"{kind} image; only 8-bit RGB is accepted here (convert it to RGB first)")
    return np.asarray(img, dtype=np.uint8).copy()


@dataclass
class LoadedImage:
    """A photo as the enhancer sees it: RGB pixels plus what is needed to write it back."""

    rgb: np.ndarray  # uint8 H x W x 3
    alpha: np.ndarray | None  # uint8 H x W, or None
    mode: str  # PIL mode of the file ('RGB', 'L', 'RGBA', 'I;16', ...)
    bit_depth: int  # 8 or 16


def load_image(path: str | os.PathLike, max_pixels: int | None = MAX_PIXELS) -> LoadedImage:
    """Lenient reader for people's photos: EXIF orientation, grey, alpha, palette, 16-bit."""
    path = Path(path)
    try:
        return from_pil(open_image(path, max_pixels))
    except ImageError:
        raise
    except ValueError as exc:
        raise ImageError(path, str(exc)) from exc


def _upright(img: Image.Image) -> Image.Image:
    """``img`` turned as its EXIF orientation says; as it was when that EXIF cannot be parsed
    (:func:`photo_metadata` drops such a block too, so the output is consistent)."""
    try:
        with quiet_exif_parse():
            return ImageOps.exif_transpose(img)
    except EXIF_ERRORS:
        return img


def _sixteen_bit(img: Image.Image, where: str) -> np.ndarray:
    """16-bit grey samples as float; a 32-bit integer image only when its values fit 16 bits
    (older Pillow gave 16-bit PNGs mode I): anything else would wrap or saturate silently."""
    arr = np.asarray(img)
    if img.mode == "I" and arr.size and (int(arr.min()) < 0 or int(arr.max()) > 65535):
        raise ImageError(where, f"32-bit integer image with values from {int(arr.min())} to {int(arr.max())}; "
                                "lowlight reads 8- and 16-bit photos: convert it to 16-bit first")
    return arr.astype(np.float64)


def from_pil(img: Image.Image) -> LoadedImage:
    """PIL image -> RGB pixels + what is needed to give the result back in the same kind.

    16-bit inputs are reduced to 8 bits for the network (the method is 8-bit) and
    their depth is remembered so that :func:`to_pil` returns 16-bit output. CMYK, CIELAB
    and YCbCr become RGB (:func:`lowlight.colour.to_rgb`); floating-point and 32-bit
    integer images outside 16 bits are refused with an :class:`ImageError`.
    """
    where = getattr(img, "filename", "") or "image"
    try:
        return _from_pil(_upright(img), where)
    except ImageError:
        raise
    except DECODER_ERRORS as exc:  # a lazily opened image decodes here; an exotic mode may not convert
        raise ImageError(where, f"cannot read its pixels ({' '.join(str(exc).split())[:200]})") from exc


def _from_pil(img: Image.Image, where: str) -> LoadedImage:
    mode = img.mode
    alpha = None
    bit_depth = 8
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = _sixteen_bit(img, where)
        bit_depth = 16
        rgb = np.repeat(np.clip(np.round(arr / 257.0), 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    elif mode == "F":
        raise ImageError(where, "floating-point image; lowlight reads 8- and 16-bit photos: convert it to "
                                "16-bit first")
    else:
        if mode == "P":
            img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        elif mode in ("RGBa", "La"):  # premultiplied alpha
            img = img.convert("RGBA" if mode == "RGBa" else "LA")
        if img.mode in ("RGBA", "LA", "PA"):
            alpha = np.asarray(img.getchannel("A"), dtype=np.uint8).copy()
            img = img.convert("RGB")
        rgb = np.asarray(to_rgb(img), dtype=np.uint8).copy()
    if rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 1:
        raise ImageError(where, f"unexpected pixel layout {rgb.shape}")
    return LoadedImage(rgb=rgb, alpha=alpha, mode=mode, bit_depth=bit_depth)


def to_pil(rgb: np.ndarray, like: LoadedImage) -> Image.Image:
    """Enhanced RGB pixels back in the kind of the input: grey stays grey, alpha is kept,
    16-bit grey comes back as 16-bit (8-bit precision, scaled by 257), palette becomes RGB."""
    if like.bit_depth == 16:
        grey = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.uint16) * 257
        return Image.fromarray(grey.astype(np.uint16))
    out = Image.fromarray(rgb)
    if like.mode in ("L", "LA", "1"):
        out = out.convert("L")
    if like.alpha is not None:
        out = out.convert("LA" if out.mode == "L" else "RGBA")
        out.putalpha(Image.fromarray(like.alpha))
    return out
