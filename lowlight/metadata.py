"""What an output says about itself: the input's EXIF, copied by meaning, and lowlight's own mark.

EXIF in a JPEG, PNG or WebP is a block of its own; in a TIFF, Pillow's ``getexif()`` is the
file's first IFD, which also holds the tags that describe how the pixels are stored
(PhotometricInterpretation, BitsPerSample, SampleFormat, strip offsets...). Copied into an
output, those tags contradict the pixels written: the red-team pass got RGB files labelled
CMYK that nothing can open and 16-bit outputs labelled signed, so bright pixels wrapped to
dark. So only the tags that describe the photo (camera, date, author, the Exif and GPS
sub-directories) are copied, from whatever format.

Every output carries ``Software = lowlight <version>`` (EXIF, and a PNG text chunk): that
is how ``lowlight enhance`` knows an existing output is its own work and not a person's file.
"""

from __future__ import annotations

import contextlib
import os
import struct
import warnings

from PIL import Image

from lowlight import __version__

__all__ = ["MARKER", "SOFTWARE", "quiet_exif_parse", "photo_metadata", "marked_exif", "marked_pnginfo",
           "written_by_lowlight"]

MARKER = f"lowlight {__version__}"
SOFTWARE = 0x0131
ORIENTATION = 0x0112  # the tag exif_transpose applies: the pixels are written upright, so it is dropped
_EXIF_IFD, _GPS_IFD, _INTEROP_IFD = 0x8769, 0x8825, 0xA005

# First-IFD tags that describe the photo, not its storage (TIFF 6.0 and EXIF 2.3 names)
_DESCRIPTIVE = {
    0x010E,  # ImageDescription
    0x010F,  # Make
    0x0110,  # Model
    0x011A, 0x011B, 0x0128,  # XResolution, YResolution, ResolutionUnit: print size, not pixels
    0x0132,  # DateTime
    0x013B,  # Artist
    0x8298,  # Copyright
    0x9C9B, 0x9C9C, 0x9C9D, 0x9C9E, 0x9C9F,  # Windows XPTitle, XPComment, XPAuthor, XPKeywords, XPSubject
}

# What a damaged EXIF block makes Pillow's parser raise (found by tests/test_faults_hostile.py's fuzz)
EXIF_ERRORS = (OSError, ValueError, SyntaxError, struct.error, TypeError, KeyError, IndexError, EOFError,
               ZeroDivisionError, OverflowError, RuntimeError, AttributeError)


@contextlib.contextmanager
def quiet_exif_parse():
    """Pillow's own "Corrupt EXIF data" warnings silenced: a damaged block is dropped (or the
    photo kept as it is), which is this module's answer, so the warning would be noise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        yield


def _photo_exif(img: Image.Image) -> Image.Exif:
    """The descriptive part of ``img``'s EXIF (empty when it has none or it cannot be parsed)."""
    out = Image.Exif()
    try:
        with quiet_exif_parse():
            exif = img.getexif()
            for tag in _DESCRIPTIVE & set(exif):
                out[tag] = exif[tag]
            for pointer in (_EXIF_IFD, _GPS_IFD):
                sub = dict(exif.get_ifd(pointer)) if pointer in exif else {}
                if pointer == _EXIF_IFD and _INTEROP_IFD in sub:  # a file offset, meaningless in another file
                    sub[_INTEROP_IFD] = dict(exif.get_ifd(_INTEROP_IFD))
                if sub:
                    out[pointer] = sub
            out.tobytes()  # a value Pillow cannot write back is found here, not in the writer
    except EXIF_ERRORS:  # malformed EXIF from a camera: keep the photo, drop the tags
        return Image.Exif()
    return out


def photo_metadata(img: Image.Image) -> dict[str, bytes]:
    """Pillow ``save`` keywords that carry a photo's EXIF (by meaning, see the module) and ICC
    profile to another file. :func:`lowlight.image_writer.save_photo` drops the profile when the
    pixels written are not in its colour space, and adds the mark."""
    out: dict[str, bytes] = {}
    icc = img.info.get("icc_profile")
    if isinstance(icc, bytes) and icc:
        out["icc_profile"] = icc
    exif = _photo_exif(img)
    if len(exif):
        out["exif"] = exif.tobytes()
    return out


def marked_exif(exif: bytes | None) -> bytes:
    """``exif`` (bytes from :func:`photo_metadata`, or None) with Software set to :data:`MARKER`."""
    out = Image.Exif()
    if exif:
        try:
            with quiet_exif_parse():
                out.load(exif)
                out.tobytes()
        except EXIF_ERRORS:
            out = Image.Exif()
    out[SOFTWARE] = MARKER
    return out.tobytes()


def marked_pnginfo():
    """A PNG text chunk ``Software: lowlight <version>``, PNG's own place for the program that wrote it."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Software", MARKER)
    return info


def written_by_lowlight(path: str | os.PathLike) -> bool:
    """Whether the image at ``path`` carries lowlight's mark (read from the header only)."""
    from lowlight.imageio import READ_FORMATS

    try:
        with quiet_exif_parse(), Image.open(path, formats=READ_FORMATS) as img:
            software = img.info.get("Software") or img.getexif().get(SOFTWARE)
    except (*EXIF_ERRORS, Image.DecompressionBombError):
        return False
    return isinstance(software, str) and software.startswith("lowlight ")
