"""Hostile and odd files through `lowlight enhance` (issue 26): formats lowlight does not document,
decoder errors, TIFF colour spaces and sample formats, profiles of another colour space, and a
fuzz of mutated files. Each must be refused by name (one line, the batch goes on) or written
as a file that opens in the mode its extension implies and carries only the photo's tags."""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from lowlight.errors import UserError
from lowlight.image_writer import save_photo
from lowlight.imageio import ImageError, READ_FORMATS, from_pil, open_image, open_image_bytes, photo_metadata, to_pil
from lowlight.metadata import MARKER, SOFTWARE, written_by_lowlight

from enhance_stub import run_cli

pytestmark = pytest.mark.fault

RNG = np.random.default_rng(26)
STORAGE_TAGS = {258, 259, 262, 273, 277, 278, 279, 284, 317, 338, 339, 530, 532}  # never copied as EXIF
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _cmyk_profile() -> bytes:
    """An sRGB profile relabelled CMYK: the header is all save_photo reads."""
    fake = bytearray(SRGB)
    fake[16:20] = b"CMYK"
    return bytes(fake)


def _good(folder: Path, name="zz_good.png") -> Path:
    path = folder / name
    Image.fromarray(RNG.integers(0, 90, (6, 8, 3), dtype=np.uint8)).save(path)
    return path


# --------------------------------------------------------------------------- documented formats only

def _foreign(fmt: str) -> bytes:
    img = Image.fromarray(RNG.integers(0, 255, (16, 16, 3), dtype=np.uint8))
    if fmt in ("XBM", "PALM"):
        img = img.convert("1")
    elif fmt in ("MSP",):
        img = img.convert("1")
    buf = io.BytesIO()
    with warnings.catch_warnings():  # writing IM is deprecated in Pillow 12; reading it is what is tried
        warnings.simplefilter("ignore", DeprecationWarning)
        img.save(buf, format=fmt)
    return buf.getvalue()


FOREIGN = ["EPS", "PDF", "PPM", "ICO", "PCX", "TGA", "SGI", "IM", "DDS", "XBM", "QOI", "ICNS", "SPIDER", "MSP"]


@pytest.mark.parametrize("fmt", FOREIGN)
@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_a_format_lowlight_does_not_document_is_refused_by_name(tmp_path, fmt, ext, monkeypatch):
    from PIL import EpsImagePlugin

    def no_ghostscript(*args, **kwargs):
        raise AssertionError("Ghostscript was called")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", no_ghostscript)
    try:
        data = _foreign(fmt)
    except (OSError, ValueError, KeyError) as exc:  # a writer this Pillow lacks
        pytest.skip(f"Pillow cannot write {fmt} here: {exc}")
    (tmp_path / "in").mkdir()
    src = tmp_path / "in" / f"holiday{ext}"
    src.write_bytes(data)
    with pytest.raises(ImageError, match="not a readable image") as info:
        open_image(src)
    assert str(src) in str(info.value) and "\n" not in str(info.value)
    good = _good(tmp_path / "in")
    code, err = run_cli(tmp_path / "w", [tmp_path / "in", "-o", tmp_path / "out"])
    assert code == 1 and "Traceback" not in err, err  # 1: a file failed; the batch went on
    assert (tmp_path / "out" / good.name).is_file() and not (tmp_path / "out" / src.name).exists()


def test_postscript_is_named_as_such(tmp_path):
    with pytest.raises(ImageError, match="a PostScript document"):
        open_image_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n", "holiday.jpg")


def test_the_allow_list_is_the_documented_formats():
    assert set(READ_FORMATS) <= {"AVIF", "BMP", "GIF", "JPEG", "JPEG2000", "PNG", "TIFF", "WEBP"}
    assert {"BMP", "GIF", "JPEG", "PNG", "TIFF", "WEBP"} <= set(READ_FORMATS)


# --------------------------------------------------------------------------- decoder errors

def _tiff_with_bad_header() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="TIFF")
    data = bytearray(buf.getvalue())
    offset = struct.unpack("<I", data[4:8])[0]
    data[offset + 2 + 2:offset + 2 + 4] = b"\x00\x07"  # first tag's type: 7 (UNDEFINED) with a huge count
    data[offset + 2 + 4:offset + 2 + 8] = b"\xff\xff\xff\x7f"
    return bytes(data)


def _webp_with_bad_exif() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (20, 30, 40)).save(buf, format="WEBP", exif=b"Exif\x00\x00MM\x00\x2a\xff\xff\xff\xff")
    return buf.getvalue()


def _png_with_bad_exif() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (20, 30, 40)).save(buf, format="PNG", exif=b"Exif\x00\x00II\x2a\x00\x08\x00\x00\x00\xff")
    return buf.getvalue()


BROKEN = {
    "tiff bad header": (".tif", _tiff_with_bad_header),
    "tiff no IFD": (".tif", lambda: b"II*\x00\xff\xff\xff\x7f"),
    "tiff big-endian garbage": (".tiff", lambda: b"MM\x00*\x00\x00\x00\x08\x00\x01" + b"\xff" * 20),
    "webp bad exif": (".webp", _webp_with_bad_exif),
    "png bad exif": (".png", _png_with_bad_exif),
    "png bad chunk": (".png", lambda: b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\xff\xff\xff\xff\x00\x00\x00\x01\x08\x02"),
    "jpeg header only": (".jpg", lambda: b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"),
    "gif bad": (".gif", lambda: b"GIF89a\xff\xff\xff\xff\xf7\x00\x00"),
    "bmp bad": (".bmp", lambda: b"BM" + b"\xff" * 60),
}


@pytest.mark.filterwarnings("error::UserWarning")  # and says it in lowlight's line, not in Pillow's warnings
@pytest.mark.parametrize("case", list(BROKEN))
def test_a_decoder_error_skips_that_file_and_not_the_batch(tmp_path, case):
    ext, make = BROKEN[case]
    (tmp_path / "in").mkdir()
    src = tmp_path / "in" / f"a_broken{ext}"
    src.write_bytes(make())
    good = _good(tmp_path / "in")
    code, err = run_cli(tmp_path / "w", [tmp_path / "in", "-o", tmp_path / "out"])
    assert "Traceback" not in err and code in (0, 1), err
    assert (tmp_path / "out" / good.name).is_file(), err
    if code == 1:  # refused: by name, on one line
        assert f"skipped {src}: " in err, err
    else:  # decoded after all (the bad EXIF dropped): the output opens
        with Image.open(tmp_path / "out" / src.name) as out:
            out.load()


# --------------------------------------------------------------------------- TIFF colour spaces and samples

def _tiff_source(kind: str) -> Image.Image:
    rgb = RNG.integers(0, 255, (8, 10, 3), dtype=np.uint8)
    if kind == "CMYK":
        return Image.fromarray(RNG.integers(0, 255, (8, 10, 4), dtype=np.uint8), "CMYK")
    if kind == "CMYK+profile":
        img = Image.fromarray(RNG.integers(0, 255, (8, 10, 4), dtype=np.uint8), "CMYK")
        img.info["icc_profile"] = _cmyk_profile()
        return img
    if kind == "LAB":
        return Image.frombytes("LAB", (10, 8), rgb.tobytes())
    if kind == "YCbCr":
        return Image.fromarray(rgb).convert("YCbCr")
    if kind == "I;16":
        return Image.fromarray(RNG.integers(0, 65535, (8, 10), dtype=np.uint16))
    if kind == "I in 16 bits":
        return Image.fromarray(RNG.integers(0, 65535, (8, 10)).astype(np.int32))
    img = Image.fromarray(rgb).convert(kind)  # RGB, L, LA, RGBA, 1, P
    if kind in ("LA", "RGBA"):  # a real alpha channel: an opaque one is dropped by some writers
        img.putalpha(Image.fromarray(RNG.integers(0, 255, (8, 10), dtype=np.uint8)))
    return img


EXPECTED_MODE = {"CMYK": "RGB", "CMYK+profile": "RGB", "LAB": "RGB", "YCbCr": "RGB", "RGB": "RGB", "L": "L",
                 "LA": "LA", "RGBA": "RGBA", "1": "L", "P": "RGB", "I;16": "I;16", "I in 16 bits": "I;16"}
# the mode each output extension stores those as (no alpha in JPEG, no 16-bit outside PNG/TIFF, WebP is RGB)
_BY_EXT = {".jpg": {"LA": "L", "RGBA": "RGB", "I;16": "L"}, ".webp": {"L": "RGB", "LA": "RGBA", "I;16": "RGB"},
           ".bmp": {"LA": "L", "RGBA": "RGB", "I;16": "L"}, ".png": {}, ".tif": {}}


@pytest.mark.parametrize("kind", list(EXPECTED_MODE))
@pytest.mark.parametrize("fmt", [None, "png", "jpg", "webp"])
def test_every_tiff_colour_space_comes_back_openable_in_its_mode(tmp_path, kind, fmt):
    img = _tiff_source(kind)
    src = tmp_path / "in.tif"
    img.save(src, icc_profile=img.info.get("icc_profile"))
    code, err = run_cli(tmp_path / "w", [src, "-o", tmp_path / "out", *(["--format", fmt] if fmt else [])])
    assert code == 0, err
    ext = "." + (fmt or "tif")
    want = _BY_EXT[ext].get(EXPECTED_MODE[kind], EXPECTED_MODE[kind])
    with Image.open(tmp_path / "out" / f"in{ext}") as out:
        out.load()
        assert out.mode == want, (kind, ext, out.mode)
        exif = out.getexif()
        assert not STORAGE_TAGS & set(exif) or ext == ".tif", sorted(exif)  # a TIFF's own tags are its own
        assert exif.get(SOFTWARE) == MARKER
        assert "icc_profile" not in out.info or out.info["icc_profile"][16:20] != b"CMYK"


@pytest.mark.parametrize("kind", ["I;16", "I in 16 bits"])
def test_sixteen_bit_tiffs_do_not_wrap(tmp_path, kind):
    values = np.array([[0, 1000, 32767, 32768, 65535, 65000]], dtype=np.uint16)
    arr = values if kind == "I;16" else values.astype(np.int32)
    src = tmp_path / "in.tif"
    Image.fromarray(arr).save(src)
    loaded = from_pil(open_image(src))
    assert loaded.bit_depth == 16 and loaded.rgb[0, :, 0].tolist() == [0, 4, 127, 128, 255, 253]
    dst = tmp_path / "out.tif"
    save_photo(to_pil(loaded.rgb, loaded), dst, photo_metadata(open_image(src)))
    with Image.open(dst) as out:
        assert out.mode == "I;16" and np.asarray(out)[0].tolist() == [v * 257 for v in [0, 4, 127, 128, 255, 253]]


@pytest.mark.parametrize("arr, words", [
    (np.array([[-5, 70000]], dtype=np.int32), "32-bit integer image with values from -5 to 70000"),
    (np.array([[0.5, 2.0]], dtype=np.float32), "floating-point image"),
])
def test_integer_and_float_tiffs_beyond_16_bits_are_refused_clearly(tmp_path, arr, words):
    src = tmp_path / "deep.tif"
    Image.fromarray(arr).save(src)
    code, err = run_cli(tmp_path / "w", [src, "-o", tmp_path / "out"])
    assert code == 1 and words in err and str(src) in err and "Traceback" not in err, err


@pytest.mark.parametrize("profile, mode, kept", [
    ("cmyk", "RGB", False), ("cmyk", "L", False), ("srgb", "RGB", True), ("srgb", "L", False),
    ("srgb", "RGBA", True), ("garbage", "RGB", False),
])
def test_a_profile_is_written_only_for_pixels_of_its_colour_space(tmp_path, profile, mode, kept):
    icc = {"cmyk": _cmyk_profile(), "srgb": SRGB, "garbage": b"not a profile" * 20}[profile]
    img = Image.new(mode, (4, 4))
    for ext in (".png", ".tif", ".jpg", ".webp"):
        save_photo(img, tmp_path / f"o{ext}", {"icc_profile": icc})
        with Image.open(tmp_path / f"o{ext}") as out:
            assert (out.info.get("icc_profile") == icc) == (kept and not (ext == ".webp" and mode == "L")), ext


def test_cmyk_with_its_profile_goes_through_the_profile():
    img = Image.new("CMYK", (2, 2), (0, 255, 255, 0))  # pure magenta + yellow: red
    img.info["icc_profile"] = _cmyk_profile()  # not a real CMYK profile: the naive formula is the fallback
    assert from_pil(img).rgb[0, 0].tolist() == [255, 0, 0]


def test_a_tiffs_own_tags_are_not_copied_as_exif(tmp_path):
    src = tmp_path / "in.tif"
    exif = Image.Exif()
    exif[0x010F] = "Maker"
    Image.fromarray(np.zeros((4, 4), np.uint16)).save(src, exif=exif)
    with Image.open(src) as img:
        assert STORAGE_TAGS & set(img.getexif())  # Pillow's getexif() of a TIFF is its first IFD
        meta = Image.Exif()
        meta.load(photo_metadata(img)["exif"])
    assert set(meta) == {0x010F}


# --------------------------------------------------------------------------- the mark

@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp", ".tif"])
def test_every_output_carries_lowlights_mark(tmp_path, ext):
    save_photo(Image.new("RGB", (3, 3)), tmp_path / f"o{ext}")
    assert written_by_lowlight(tmp_path / f"o{ext}")
    Image.new("RGB", (3, 3)).save(tmp_path / f"user{ext}")
    assert not written_by_lowlight(tmp_path / f"user{ext}")


# --------------------------------------------------------------------------- fuzz

FUZZ_SEEDS = ["png", "jpeg", "tiff", "tiff-lzw", "webp", "gif", "bmp", "tiff-cmyk", "tiff-16"]
FUZZ_CHUNKS, FUZZ_PER_CHUNK = 4, 40  # 9 x 4 cases of 40 files: 1,440 mutated files, about 3 s


def _fuzz_seed(kind: str, rng) -> bytes:
    exif = Image.Exif()
    exif[0x010F], exif[0x0112], exif[0x8769] = "Maker", 6, {0x9003: "2026:01:01 00:00:00"}
    img = Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8))
    kw: dict = {"exif": exif.tobytes(), "icc_profile": SRGB}
    fmt = kind.split("-")[0].upper()
    if kind in ("gif", "bmp", "tiff-lzw"):
        kw = {"compression": "tiff_lzw"} if kind == "tiff-lzw" else {}
    if kind == "tiff-cmyk":
        img = Image.fromarray(rng.integers(0, 255, (8, 8, 4), dtype=np.uint8), "CMYK")
    if kind == "tiff-16":
        img = Image.fromarray(rng.integers(0, 65535, (8, 8), dtype=np.uint16))
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _mutate(data: bytes, rng) -> bytes:
    d = bytearray(data)
    how = rng.integers(0, 4)
    if how == 0:  # flip bytes
        for _ in range(rng.integers(1, 8)):
            d[rng.integers(0, len(d))] = rng.integers(0, 256)
    elif how == 1:  # truncate
        d = d[:rng.integers(1, len(d))]
    elif how == 2:  # insert
        i = rng.integers(0, len(d))
        d[i:i] = rng.integers(0, 256, rng.integers(1, 16), dtype=np.uint8).tobytes()
    else:  # an extreme 32-bit value somewhere (sizes, offsets, counts)
        i = rng.integers(0, len(d) - 4)
        d[i:i + 4] = [b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff"][rng.integers(0, 3)]
    return bytes(d)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("chunk", range(FUZZ_CHUNKS))
@pytest.mark.parametrize("kind", FUZZ_SEEDS)
def test_fuzz_mutated_files_raise_only_the_users_error(tmp_path, kind, chunk):
    rng = np.random.default_rng([26, FUZZ_SEEDS.index(kind), chunk])
    seed = _fuzz_seed(kind, rng)
    exts = [".png", ".jpg", ".tif", ".webp", ".bmp"]
    for i in range(FUZZ_PER_CHUNK):
        data = _mutate(seed, rng)
        try:
            raw = open_image_bytes(data, f"fuzz-{kind}-{chunk}-{i}", max_pixels=4_000_000)
            loaded = from_pil(raw)
            save_photo(to_pil(loaded.rgb, loaded), tmp_path / f"o{exts[i % len(exts)]}", photo_metadata(raw))
        except UserError as exc:
            assert "\n" not in str(exc)
