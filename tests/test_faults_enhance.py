"""`lowlight enhance` against what a person can get wrong or hand it: no CUDA, missing
weights, a huge image, an animated file, a bad --strength. Each is one line naming the
fix, with exit code 2 for a usage error and 1 for a file that failed; made in the test."""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lowlight.cli.main import main
from lowlight.imageio import MAX_PIXELS, ImageError, load_image

from enhance_stub import run_cli, weight_files

pytestmark = pytest.mark.fault


def _photo(path: Path, size=(6, 8), seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 120, (*size, 3), dtype=np.uint8)).save(path)
    return path


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_cuda_without_cuda_is_one_line(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    src = _photo(tmp_path / "a.png")
    code = main(["enhance", str(src), "-o", str(tmp_path / "o"), "--device", "cuda", *weight_files(tmp_path / "w")])
    line = _one_error_line(capsys.readouterr().err)
    assert code == 2 and "--device cuda" in line and "use --device cpu or auto" in line, line
    assert not (tmp_path / "o").exists()


def test_missing_weights_are_one_line(tmp_path, capsys, monkeypatch):
    src = _photo(tmp_path / "a.png")
    q = weight_files(tmp_path / "w")[1]
    code = main(["enhance", str(src), "-o", str(tmp_path / "o"), "--weights", "nope.pt", "--quantile-model", q])
    line = _one_error_line(capsys.readouterr().err)
    assert code == 2 and "--weights nope.pt: file does not exist" in line, line
    import lowlight.inference.settings

    monkeypatch.setattr(lowlight.inference.settings, "WEIGHTS_DIR", tmp_path / "empty")  # an install without its weights
    code = main(["enhance", str(src), "-o", str(tmp_path / "o")])
    line = _one_error_line(capsys.readouterr().err)
    assert code == 2 and "shipped weights are missing" in line and "--weights" in line, line


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height RGB pixels, with the first rows' data only:
    enough for a decoder to start (and take minutes and gigabytes to finish)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = zlib.compress(b"\0" * (1 + 3 * width) * 64)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


def test_a_huge_image_is_refused_from_its_header(tmp_path):
    """9400 x 9500 is just under Pillow's decompression-bomb limit; decoding and enhancing it
    took 5 GiB and 48 s. lowlight's own limit refuses it before decoding."""
    big = tmp_path / "in" / "huge.png"
    big.parent.mkdir()
    big.write_bytes(_png_header_only(9400, 9500))
    assert 9400 * 9500 < Image.MAX_IMAGE_PIXELS
    _photo(tmp_path / "in" / "fine.png")
    start = time.perf_counter()
    code, err = run_cli(tmp_path / "w", [tmp_path / "in", "-o", tmp_path / "o"])
    secs = time.perf_counter() - start
    print(f"\nrefused a 9400x9500 PNG in {secs:.2f} s")
    line = next(line for line in err.splitlines() if "huge.png" in line)
    assert code == 1 and secs < 1.0, (secs, err)
    for words in ("9400x9500", "89.3 megapixels", f"{MAX_PIXELS / 1e6:.1f} megapixels", "--max-pixels"):
        assert words in line, line
    assert (tmp_path / "o" / "fine.png").is_file() and not (tmp_path / "o" / "huge.png").exists()
    with pytest.raises(ImageError, match="max_pixels="):
        load_image(big)


def test_max_pixels_lowers_and_raises_the_limit(tmp_path, monkeypatch):
    src = _photo(tmp_path / "a.png", size=(6, 8))  # 48 pixels
    code, err = run_cli(tmp_path / "w", [src, "-o", tmp_path / "o", "--max-pixels", "40"])
    assert code == 1 and "8x6 (48 pixels), over lowlight's limit of 40 pixels" in err, err
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20)  # Pillow's own limit is below the one asked for
    code, err = run_cli(tmp_path / "w", [src, "-o", tmp_path / "o", "--max-pixels", "48"])
    assert code == 0, err
    assert Image.MAX_IMAGE_PIXELS == 20  # restored after the run
    monkeypatch.undo()
    assert load_image(tmp_path / "o" / "a.png", max_pixels=None).rgb.shape == (6, 8, 3)
    code, err = run_cli(tmp_path / "w", [src, "-o", tmp_path / "o", "--max-pixels", "0"])
    assert code == 2 and "--max-pixels 0: must be a positive number" in _one_error_line(err)


@pytest.mark.parametrize("fmt, ext", [("GIF", ".gif"), ("PNG", ".png"), ("WEBP", ".webp")])
def test_animated_files_are_refused_not_cut_to_one_frame(tmp_path, fmt, ext):
    frames = [Image.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (10, 60, 110)]
    src = tmp_path / "in" / f"anim{ext}"
    src.parent.mkdir()
    frames[0].save(src, format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    code, err = run_cli(tmp_path / "w", [src, "-o", tmp_path / "o", "--format", "png"])
    named = [line for line in err.splitlines() if f"anim{ext}" in line]
    assert len(named) == 1 and "animated" in named[0] and "3 frames" in named[0], err
    assert code == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_strength_blends_with_the_input_and_refuses_bad_values(tmp_path):
    src = _photo(tmp_path / "a.png", size=(10, 12))
    low = np.asarray(Image.open(src)).astype(int)
    outs = {}
    for s in ("0", "0.5", "1"):
        code, err = run_cli(tmp_path / "w", [src, "-o", tmp_path / s, "--strength", s])
        assert code == 0, err
        outs[s] = np.asarray(Image.open(tmp_path / s / "a.png")).astype(int)
    assert np.array_equal(outs["0"], low)  # 0: the input unchanged, exactly
    assert np.array_equal(outs["0.5"], np.rint(low + 0.5 * (outs["1"] - low)))
    for bad in ("-0.1", "nan", "inf", "1.6"):
        code, err = run_cli(tmp_path / "w", [src, "-o", tmp_path / "bad", "--strength", bad])
        line = _one_error_line(err)
        assert code == 2 and "--strength" in line and "from 0" in line, line
    assert not (tmp_path / "bad").exists()


def _enhancer_settings(tmp_path, monkeypatch, src, setting: str, flag_lists) -> list:
    """``args.<setting>`` as the enhancer loader received it, for one CLI call per list of flags."""
    from enhance_stub import stub_enhancer

    from lowlight.cli import enhance as cli_enhance

    recorded = []

    def recording(args, q, w):
        recorded.append(getattr(args, setting))
        return stub_enhancer(args, q, w)

    for k, flags in enumerate(flag_lists):
        with monkeypatch.context() as mp:
            mp.setattr(cli_enhance, "_load_enhancer", recording)
            assert main(["enhance", str(src), "-o", str(tmp_path / f"{setting}{k}"), "-q", *flags]) == 0
    return recorded


def test_shadows_option_reaches_the_enhancer_and_refuses_bad_values(tmp_path, monkeypatch):
    src = _photo(tmp_path / "a.png", size=(10, 12))
    seen = []
    for s, want in (("auto", None), ("AUTO", None), ("0", 0.0), ("1.5", 1.5), ("2", 2.0)):
        code, err = run_cli(tmp_path / "w", [src, "-o", tmp_path / f"o{len(seen)}", "--shadows", s])
        assert code == 0, err
        seen.append(want)
    flag_lists = [["--shadows", s] for s in ("auto", "0", "1.5")]
    recorded = _enhancer_settings(tmp_path, monkeypatch, src, "shadows", flag_lists)
    assert recorded == [None, 0.0, 1.5]
    for bad in ("-1", "2.5", "nan", "lots"):
        code, err = run_cli(tmp_path / "w", [src, "-o", tmp_path / "bad", "--shadows", bad])
        line = _one_error_line(err)
        assert code == 2 and "--shadows" in line and "0" in line and "2" in line, line
    assert not (tmp_path / "bad").exists()


def test_exposure_option_reaches_the_enhancer_and_refuses_bad_values(tmp_path, monkeypatch):
    src = _photo(tmp_path / "a.png", size=(10, 12))
    flag_lists = [[] if ev is None else [f"--exposure={ev}"] for ev in (None, "-1.5", "0.5", "3")]
    recorded = _enhancer_settings(tmp_path, monkeypatch, src, "exposure", flag_lists)
    assert recorded == [0.0, -1.5, 0.5, 3.0]
    for bad in ("-3.5", "4", "nan", "inf", "bright"):
        code, err = run_cli(tmp_path / "w", [src, "-o", tmp_path / "bad", f"--exposure={bad}"])
        line = _one_error_line(err)
        assert code == 2 and "--exposure" in line and "-3 to 3" in line and "stops" in line, line
    assert not (tmp_path / "bad").exists()


def test_keep_black_reaches_the_enhancer(tmp_path, monkeypatch):
    src = _photo(tmp_path / "a.png", size=(10, 12))
    kept = _enhancer_settings(tmp_path, monkeypatch, src, "keep_black", [[], ["--keep-black"]])
    assert kept == [False, True]


def test_exit_codes(tmp_path):
    good = _photo(tmp_path / "in" / "good.png")
    assert run_cli(tmp_path / "w", [good, "-o", tmp_path / "o"])[0] == 0
    assert run_cli(tmp_path / "w", [good, "-o", tmp_path / "o"])[0] == 0  # already done
    (tmp_path / "in" / "bad.png").write_bytes(b"not a png")
    assert run_cli(tmp_path / "w", [tmp_path / "in", "-o", tmp_path / "o"])[0] == 1  # a file failed
    (tmp_path / "afile").write_text("x")
    code, err = run_cli(tmp_path / "w", [good, "-o", tmp_path / "afile"])
    assert code == 2 and "-o" in _one_error_line(err)  # a usage error
