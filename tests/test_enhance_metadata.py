"""What photographers keep: `lowlight enhance` carries EXIF and the ICC profile to the output,
turns the pixels upright once (the orientation tag is dropped), and honours --quality."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from lowlight.imageio import photo_metadata
from lowlight.metadata import MARKER, ORIENTATION, SOFTWARE

from enhance_stub import run_cli

TAGS = {0x010F: "Maker", 0x0110: "Model 1", 0x0131: "lowlight-test", 0x0132: "2026:12:01 12:00:00",
        0x013B: "A. Photographer", 0x8298: "(c) 2026", 0x010E: "a dark kitchen", ORIENTATION: 6}


ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()  # once: it carries a timestamp


def _photo(path, ext: str, size=(12, 20)):
    rgb = np.random.default_rng(0).integers(0, 90, (*size, 3), dtype=np.uint8)
    exif = Image.Exif()
    for tag, value in TAGS.items():
        exif[tag] = value
    Image.fromarray(rgb).save(path, exif=exif.tobytes(), icc_profile=ICC,
                              **({"quality": 98} if ext == "jpg" else {}))
    return path


@pytest.mark.parametrize("ext", ["jpg", "png", "webp"])
def test_exif_and_icc_reach_the_output_and_orientation_is_applied_once(tmp_path, ext):
    src = _photo(tmp_path / f"in.{ext}", ext)
    code, err = run_cli(tmp_path / "w", [src, "-o", tmp_path / "out"])
    assert code == 0, err
    with Image.open(tmp_path / "out" / f"in.{ext}") as out:
        exif = out.getexif()
        kept = {t: exif.get(t) for t in TAGS if t not in (ORIENTATION, SOFTWARE)}
        assert kept == {t: v for t, v in TAGS.items() if t not in (ORIENTATION, SOFTWARE)}  # 6 tags in, 6 out
        assert exif[SOFTWARE] == MARKER  # the program that wrote the file is lowlight, not the camera's
        assert ORIENTATION not in exif  # pixels are upright; a viewer must not rotate them again
        assert out.size == (12, 20)  # orientation 6 (rotate 90): the 20 x 12 input comes back turned
        assert out.info.get("icc_profile") == ICC


def test_tiff_keeps_the_tags_and_the_profile(tmp_path):
    # TIFF holds EXIF as tags of its own IFD; Pillow's TIFF reader reports the orientation
    # differently, so only the tags and the profile are checked here
    src = _photo(tmp_path / "in.tif", "tif")
    code, err = run_cli(tmp_path / "w", [src, "-o", tmp_path / "out"])
    assert code == 0, err
    with Image.open(tmp_path / "out" / "in.tif") as out:
        exif = out.getexif()
        assert ({t: exif.get(t) for t in TAGS if t not in (ORIENTATION, SOFTWARE)}
                == {t: v for t, v in TAGS.items() if t not in (ORIENTATION, SOFTWARE)})
        assert exif[SOFTWARE] == MARKER
        assert out.info.get("icc_profile") == ICC


def test_quality_sets_jpeg_size_and_bad_quality_is_one_line(tmp_path):
    src = _photo(tmp_path / "in.jpg", "jpg", size=(64, 64))
    sizes = {}
    for q in (30, 95):
        code, err = run_cli(tmp_path / "w", [src, "-o", tmp_path / f"q{q}", "--quality", q])
        assert code == 0, err
        sizes[q] = (tmp_path / f"q{q}" / "in.jpg").stat().st_size
    assert sizes[30] < sizes[95]
    code, err = run_cli(tmp_path / "w", [src, "-o", tmp_path / "bad", "--quality", 0])
    assert code == 2 and "--quality 0: must be from 1 to 100" in err and "Traceback" not in err


def test_unreadable_exif_is_dropped_not_fatal():
    img = Image.new("RGB", (4, 4))
    img.info["exif"] = b"Exif\x00\x00garbage"
    meta = photo_metadata(img)
    assert "icc_profile" not in meta
    assert set(meta) <= {"exif"}  # whatever Pillow makes of it, no exception
    buf = io.BytesIO()
    img.save(buf, format="PNG", **meta)
