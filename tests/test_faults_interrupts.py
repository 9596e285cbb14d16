"""`lowlight enhance` interrupted, given long names, or pointed at a person's own files (issue 26):
SIGTERM stops it like Ctrl-C, a rerun removes what a kill -9 left (and nothing else), a legal
name stays legal with its temporary sibling, and only lowlight's own outputs count as done."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lowlight.atomic import NAME_MAX, atomic_path, remove_stale_temps, temp_affixes
from lowlight.cli import enhance as cli_enhance
from lowlight.image_writer import save_photo

from enhance_stub import run_cli

pytestmark = pytest.mark.fault


def _photo(path: Path, seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 90, (6, 8, 3), dtype=np.uint8)).save(path)
    return path


# --------------------------------------------------------------------------- names

@pytest.mark.parametrize("name", ["a" * 244 + ".png", "é" * 120 + ".png", "x" * 251 + ".tif", "ß" * 125 + ".jpg"])
def test_a_long_legal_name_stays_legal_for_its_temporary_file(tmp_path, name):
    assert len(os.fsencode(name)) <= NAME_MAX
    prefix, suffix = temp_affixes(tmp_path / name)
    assert len(os.fsencode(prefix + "abcdefgh" + suffix)) <= NAME_MAX
    src = _photo(tmp_path / "in" / name)
    code, err = run_cli(tmp_path / "w", [src, "-o", tmp_path / "out"])
    assert code == 0, err
    assert (tmp_path / "out" / name).is_file() and not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


# --------------------------------------------------------------------------- interruptions

def _stale(folder: Path, target: str) -> Path:
    prefix, suffix = temp_affixes(folder / target)
    path = folder / f"{prefix}k1ll3d_9{suffix}"
    path.write_bytes(b"half a photo")
    return path


def test_a_rerun_removes_what_a_killed_run_left_and_only_that(tmp_path):
    src = _photo(tmp_path / "in" / "IMG_1.png")
    out = tmp_path / "out"
    out.mkdir()
    stale = _stale(out, "IMG_1.png")
    kept = [out / ".IMG_1.notmine.tmp.png", out / ".other.k1ll3d_9.tmp.png", out / ".IMG_1.k1ll3d_9.tmp.jpg",
            out / "IMG_1.k1ll3d_9.tmp.png"]  # another stem, another extension, not hidden: not lowlight's
    for p in kept:
        p.write_bytes(b"someone else's")
    code, err = run_cli(tmp_path / "w", [src, "-o", out])
    assert code == 0 and "removed 1 temporary file left by an interrupted run" in err, err
    assert not stale.exists() and all(p.read_bytes() == b"someone else's" for p in kept)


def test_a_live_writers_temporary_file_is_left_alone(tmp_path):
    target = tmp_path / "a.png"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"being written")
        assert remove_stale_temps([target]) == [] and tmp.exists()  # it holds its lock
    assert target.read_bytes() == b"being written"
    stale = _stale(tmp_path, "a.png")
    assert remove_stale_temps([target]) == [stale] and not stale.exists()


@pytest.mark.parametrize("when", ["decode", "write"])
def test_sigterm_stops_the_batch_in_one_line_with_130(tmp_path, monkeypatch, when):
    for i in range(3):
        _photo(tmp_path / "in" / f"{i}.png", seed=i)
    real = cli_enhance._enhance_one
    calls = []

    def killed(job, *args):
        calls.append(job)
        if len(calls) == 2:
            if when == "decode":
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                monkeypatch.setattr("lowlight.imageio.Image.Image.save",
                                    lambda *a, **k: os.kill(os.getpid(), signal.SIGTERM))
        return real(job, *args)

    monkeypatch.setattr(cli_enhance, "_enhance_one", killed)
    previous = signal.getsignal(signal.SIGTERM)
    code, err = run_cli(tmp_path / "w", [tmp_path / "in", "-o", tmp_path / "out"])
    assert code == 130 and err.strip().splitlines()[-1].startswith("lowlight enhance: stopped by SIGTERM"), err
    assert "Traceback" not in err and signal.getsignal(signal.SIGTERM) == previous
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["0.png"]  # nothing half-written
    monkeypatch.undo()
    code, err = run_cli(tmp_path / "w", [tmp_path / "in", "-o", tmp_path / "out"])  # the rerun finishes
    assert code == 0 and "2 enhanced" in err and "1 already done" in err, err


# --------------------------------------------------------------------------- already done means lowlight's

def test_a_photo_of_your_own_at_the_output_path_is_not_done(tmp_path):
    """`enhance s/IMG_1.png -o s --format jpg` beside the user's own IMG_1.jpg."""
    src = _photo(tmp_path / "s" / "IMG_1.png")
    own = _photo(tmp_path / "s" / "IMG_1.jpg".replace(".jpg", ".tmp.png"), seed=5).rename(tmp_path / "s" / "IMG_1.jpg")
    before = own.read_bytes()
    for extra in ([], ["--overwrite"]):
        code, err = run_cli(tmp_path / "w", [src, "-o", tmp_path / "s", "--format", "jpg", *extra])
        assert code == 1 and "lowlight did not write" in err and "already done" not in err, (extra, err)
        assert own.read_bytes() == before


def test_lowlights_own_output_is_done_and_a_foreign_one_elsewhere_needs_overwrite(tmp_path):
    src = _photo(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    _photo(out / "a.png", seed=3)  # not written by lowlight
    code, err = run_cli(tmp_path / "w", [src, "-o", out])
    assert code == 1 and "--overwrite to replace it" in err, err
    code, err = run_cli(tmp_path / "w", [src, "-o", out, "--overwrite"])
    assert code == 0 and "1 enhanced" in err, err
    code, err = run_cli(tmp_path / "w", [src, "-o", out])
    assert code == 0 and "1 already done" in err, err


def test_compare_pictures_carry_the_mark_too(tmp_path):
    src = _photo(tmp_path / "in" / "a.png")
    code, err = run_cli(tmp_path / "w", [src, "-o", tmp_path / "out", "--compare"])
    assert code == 0, err
    code, err = run_cli(tmp_path / "w", [src, "-o", tmp_path / "out", "--compare"])
    assert code == 0 and "1 already done" in err, err


def test_save_photo_marks_what_it_writes(tmp_path):
    from lowlight.metadata import written_by_lowlight

    for ext in (".png", ".jpg", ".webp", ".tif"):
        save_photo(Image.new("L", (2, 2)), tmp_path / f"g{ext}")
        assert written_by_lowlight(tmp_path / f"g{ext}"), ext
    save_photo(Image.new("RGB", (2, 2)), tmp_path / "b.bmp")
    assert not written_by_lowlight(tmp_path / "b.bmp")  # BMP holds no metadata: never counted as done
