"""Colour spaces of people's photos: how each becomes the RGB the enhancer works in, and which
ICC profile may travel with the pixels written.

A TIFF or JPEG may hold CMYK, CIELAB or YCbCr pixels and a profile for that space. The
enhancer sees RGB, so the output is RGB (or grey): a CMYK profile copied into it would tell
every viewer to read three channels as four (the red-team pass found RGB files labelled
CMYK). A profile is therefore written only when its own colour space is the one of the
pixels written (:func:`profile_fits`).
"""

from __future__ import annotations

import io

from PIL import Image

__all__ = ["icc_colour_space", "profile_fits", "to_rgb"]

# the ICC header's data colour space field (bytes 16-20) for the modes lowlight writes
_SPACE_OF_MODE = {"RGB": b"RGB ", "RGBA": b"RGB ", "L": b"GRAY", "LA": b"GRAY", "I;16": b"GRAY", "CMYK": b"CMYK"}


def icc_colour_space(profile: bytes | None) -> bytes | None:
    """The 4-byte colour space an ICC profile says it describes (``b"RGB "``, ``b"CMYK"``,
    ``b"GRAY"``, ``b"Lab "``...), or None when ``profile`` is no profile at all."""
    if not isinstance(profile, (bytes, bytearray)) or len(profile) < 128 or profile[36:40] != b"acsp":
        return None  # the header is 128 bytes and carries the 'acsp' signature at 36
    return bytes(profile[16:20])


def profile_fits(profile: bytes | None, mode: str) -> bool:
    """Whether ``profile`` may be embedded in pixels of PIL ``mode``."""
    space = icc_colour_space(profile)
    return space is not None and space == _SPACE_OF_MODE.get(mode)


def to_rgb(img: Image.Image) -> Image.Image:
    """``img`` as RGB pixels. CMYK with its own profile goes through that profile to sRGB (a
    press profile is the only record of what the inks look like); other spaces use Pillow's
    conversions, which are exact for YCbCr and CIELAB (D50) and the usual naive inks-to-light
    formula for an unprofiled CMYK."""
    if img.mode == "RGB":
        return img
    if img.mode == "CMYK" and icc_colour_space(img.info.get("icc_profile")) == b"CMYK":
        from PIL import ImageCms

        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(img.info["icc_profile"]))
            return ImageCms.profileToProfile(img, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass  # a damaged profile: the naive conversion below still gives a usable photo
    return img.convert("RGB")
