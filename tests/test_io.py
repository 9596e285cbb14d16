"""Atomic outputs and image reading: bad files get a clear error naming them, and a
failed write leaves no partial file and keeps the previous output."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lowlight.atomic import OutputError, atomic_dir, atomic_path, write_json
from lowlight.image_writer import write_image
from lowlight.imageio import ImageError, from_pil, load_image, read_rgb, to_pil

pytestmark = pytest.mark.fault


def _png_bytes(arr, mode=None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format="PNG") if mode else Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_atomic_path_failure_leaves_old_file(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text().strip().startswith("{") and '"v": 1' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temp file left


def test_atomic_dir_swaps_whole_folder(tmp_path):
    out = tmp_path / "folder"
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("a")
    with pytest.raises(ValueError):
        with atomic_dir(out) as tmp:
            (tmp / "b.txt").write_text("b")
            raise ValueError("fail mid-way")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]


def _unwritable_targets(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    targets = [afile / "out.png"]  # parent is a file
    if not os.access("/sys", os.W_OK) or os.geteuid() == 0:
        targets.append(Path("/sys/lowlight-test/out.png"))  # read-only file system
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        targets.append(ro / "out.png")
    return targets


def test_unwritable_output_names_the_path(tmp_path):
    for target in _unwritable_targets(tmp_path):
        with pytest.raises(OutputError) as info:
            write_image(target, np.zeros((4, 4, 3), np.uint8))
        assert str(target.parent) in str(info.value)


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("empty.png", b"", "empty"),
        ("text.png", b"this is not an image at all", "not a readable image"),
        ("trunc.png", None, "truncated"),
    ],
)
def test_bad_files_named(tmp_path, name, content, words):
    path = tmp_path / name
    if content is None:
        data = _png_bytes(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
        content = data[: len(data) // 2]
    path.write_bytes(content)
    for reader in (read_rgb, load_image):
        with pytest.raises(ImageError) as info:
            reader(path)
        assert str(path) in str(info.value) and words in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        read_rgb(tmp_path / "nope.png")


def test_decompression_bomb_refused(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.new("RGB", (400, 400)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)  # 160k px is > 2x this: an error
    with pytest.raises(ImageError, match="too large"):
        read_rgb(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 120 * 120)  # 1x-2x: a warning, also refused
    with pytest.raises(ImageError, match="too large"):
        read_rgb(path)


@pytest.mark.parametrize("mode, arr", [
    ("L", np.zeros((5, 5), np.uint8)),
    ("RGBA", np.zeros((5, 5, 4), np.uint8)),
    ("I;16", np.zeros((5, 5), np.uint16)),
])
def test_strict_reader_refuses_non_rgb(tmp_path, mode, arr):
    path = tmp_path / f"x_{mode.replace(';', '')}.png"
    Image.fromarray(arr, mode=mode).save(path) if mode != "I;16" else Image.fromarray(arr).save(path)
    with pytest.raises(ImageError) as info:
        read_rgb(path)
    assert str(path) in str(info.value) and "RGB" in str(info.value)


def test_one_pixel_image_reads(tmp_path):
    path = tmp_path / "one.png"
    Image.fromarray(np.array([[[10, 20, 30]]], np.uint8)).save(path)
    assert read_rgb(path).tolist() == [[[10, 20, 30]]]


def test_lenient_reader_round_trips_kinds(tmp_path):
    grey = Image.fromarray(np.arange(20, dtype=np.uint8).reshape(4, 5))
    rgba = Image.fromarray(np.full((4, 5, 4), 100, np.uint8))
    deep = Image.fromarray((np.arange(20, dtype=np.uint16) * 3000).reshape(4, 5))
    pal = grey.convert("RGB").convert("P")
    for img, mode in [(grey, "L"), (rgba, "RGBA"), (deep, "I;16"), (pal, "RGB")]:
        loaded = from_pil(img)
        assert loaded.rgb.shape == (4, 5, 3) and loaded.rgb.dtype == np.uint8
        back = to_pil(loaded.rgb, loaded)
        assert back.mode == mode, (img.mode, back.mode)
        assert back.size == img.size
    assert np.array_equal(np.asarray(to_pil(from_pil(rgba).rgb, from_pil(rgba)))[..., 3], np.full((4, 5), 100))


def test_exif_orientation_respected(tmp_path):
    arr = np.zeros((4, 8, 3), np.uint8)
    arr[:, :4] = 255
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif.tobytes(), quality=100)
    loaded = load_image(path)
    assert loaded.rgb.shape[:2] == (8, 4)


def test_too_many_pixels_refused_from_the_header(tmp_path):
    from lowlight.imageio import open_image

    path = tmp_path / "wide.png"
    Image.new("RGB", (300, 200)).save(path)
    with pytest.raises(ImageError) as info:
        open_image(path, max_pixels=50_000)
    assert str(path) in str(info.value) and "300x200" in str(info.value) and "--max-pixels" in str(info.value)
    assert load_image(path, max_pixels=60_000).rgb.shape == (200, 300, 3)
    assert read_rgb(path, max_pixels=None).shape == (200, 300, 3)


def test_the_api_refuses_too_many_pixels_before_decoding(tmp_path):
    from lowlight.inference.enhancer import enhance

    path = tmp_path / "wide.png"
    Image.new("RGB", (300, 200)).save(path)
    lazy = Image.open(path)
    with pytest.raises(ImageError, match="300x200"):
        enhance(lazy, enhancer=object(), max_pixels=50_000)  # refused before the enhancer is used
    assert lazy.tile  # its decoder tiles are still there: the pixels were never decoded
    with pytest.raises(ImageError, match="max_pixels="):
        enhance(np.zeros((200, 300, 3), np.uint8), enhancer=object(), max_pixels=50_000)


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "TIFF"])
def test_animated_and_multi_page_files_refused(tmp_path, fmt):
    frames = [Image.new("RGB", (4, 4), (v, v, v)) for v in (0, 80)]
    path = tmp_path / f"two.{fmt.lower()}"
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:])
    for reader in (read_rgb, load_image):
        with pytest.raises(ImageError) as info:
            reader(path)
        assert str(path) in str(info.value) and "2 frames" in str(info.value)


def test_output_format_follows_the_extension():
    from lowlight.imageio import WRITE_FORMATS, output_format

    assert output_format(Path("a.JPG")) == "JPEG" and output_format(Path("a.tif")) == "TIFF"
    assert set(WRITE_FORMATS) >= {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
    for name, words in [("a.gif", "GIF"), ("a.heic", ".heic"), ("noext", "without an extension")]:
        with pytest.raises(ImageError) as info:
            output_format(Path(name))
        assert words in str(info.value) and "--format png" in str(info.value)
