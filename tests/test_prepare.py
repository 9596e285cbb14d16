"""The prepare stage: every source on tiny data, grouped splits, bad data refused whole, atomic output."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lowlight.data import prepare as prep
from lowlight.config import DataConfig
from lowlight.errors import DataError
from lowlight.data.pairs import SPLITS, list_pairs, load_pairs

from conftest import REPO, darken, lol_root, synthetic_photo

SIZE = (24, 32)


# --------------------------------------------------------------------------- helpers


def save(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    kw = {"lossless": True} if path.suffix == ".webp" else {"quality": 95} if path.suffix == ".jpg" else {}
    Image.fromarray(rgb).save(path, **kw)
    return path


def save_png16(path: Path, rgb16: np.ndarray) -> Path:
    """A 16-bit RGB PNG (Pillow cannot write one; it reads it back as 8-bit 'RGB')."""
    h, w, _ = rgb16.shape

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + rgb16[i].astype(">u2").tobytes() for i in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


def make_lol(root: Path, eval15: bool = True) -> Path:
    """A tiny LOL-layout folder: 11 scenes, 15 pairs in our485, PNG+JPEG+WebP.

    Scenes 0-2 each serve several low shots: their repeated high files are a
    symbolic link, a byte copy and a link stored as a text file (as in the shared copy).
    """
    exts = [".png", ".jpg", ".webp"]
    n = 0
    for scene in range(11):
        high = synthetic_photo(*SIZE, seed=100 + scene)
        shots = {0: 3, 1: 2, 2: 2}.get(scene, 1)
        first = None
        for k in range(shots):
            n += 1
            stem = str(n)
            save(root / "our485" / "low" / f"{stem}{exts[n % 3]}", darken(high, 0.05 + 0.03 * k, seed=n))
            hp = root / "our485" / "high" / f"{stem}{exts[scene % 3] if scene < 3 else exts[(n + 1) % 3]}"
            if first is None:
                first = save(hp, high)
            elif scene == 0:
                hp = hp.with_suffix(first.suffix)
                os.symlink(first.name, hp)  # relative, inside the dataset
            elif scene == 1:
                shutil.copyfile(first, hp.with_suffix(first.suffix))
            else:
                hp.with_suffix(first.suffix).write_text(first.name)  # git's symlink without core.symlinks
    if eval15:
        for i in range(3):
            high = synthetic_photo(*SIZE, seed=500 + i)
            save(root / "eval15" / "high" / f"e{i}.png", high)
            save(root / "eval15" / "low" / f"e{i}.png", darken(high, 0.05, seed=i))
    return root


def lol_cfg(root: Path, **kw) -> DataConfig:
    return DataConfig(source="lol", path=str(root), **kw)


def manifest(out: Path) -> list[dict]:
    with open(out / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def high_contents_by_split(out: Path) -> dict[str, set[str]]:
    res = {}
    for split in SPLITS:
        _, _, highs = load_pairs(out, split)
        res[split] = {hashlib.sha256(h.tobytes()).hexdigest() for h in highs}
    return res


def assert_manifest_matches_files(out: Path) -> list[dict]:
    rows = manifest(out)
    assert set(rows[0]) >= set(prep.MANIFEST_COLUMNS)
    for r in rows:
        for kind in ("low", "high"):
            f = out / r["split"] / kind / f"{r['stem']}.png"
            assert sha(f) == r[f"{kind}_sha256"], f
        w, h = Image.open(out / r["split"] / "low" / f"{r['stem']}.png").size
        assert (w, h) == (int(r["width"]), int(r["height"]))
    written = {(s, p.stem) for s in SPLITS for p in list_pairs(out, s)}
    assert written == {(r["split"], r["stem"]) for r in rows}
    return rows


def no_leftovers(parent: Path) -> bool:
    return not [p for p in parent.iterdir() if p.name.startswith(".") and ("tmp" in p.name or "old" in p.name)]


# --------------------------------------------------------------------------- lol


@pytest.fixture
def lol(tmp_path) -> Path:
    return make_lol(tmp_path / "LOL")


def test_lol_pairs_groups_and_manifest(lol, tmp_path):
    out = tmp_path / "prepared"
    s = prep.prepare(lol_cfg(lol, val_fraction=0.3), seed=0, out=out)
    assert s["test_pairs"] == 3 and s["test_groups"] == 3
    assert s["train_pairs"] + s["val_pairs"] == 15 and s["val_pairs"] >= 1
    assert s["train_groups"] + s["val_groups"] == 11  # 15 pairs of 11 scenes
    assert s["high_groups_shared"] == 3
    assert s["linked_files"] == 3 and s["link_text_files"] == 1  # 2 symlinks + 1 link stored as text
    assert s["train_pairs"] > s["val_pairs"]
    rows = assert_manifest_matches_files(out)
    # pixels survive unchanged: the PNGs hold what the sources decode to (PNG, lossless WebP, JPEG)
    for r in rows:
        for kind in ("low", "high"):
            src = Path(os.path.realpath(lol / r[f"{kind}_source"]))
            if src.stat().st_size < 100:  # the link stored as text
                src = src.parent / src.read_text()
            assert np.array_equal(np.asarray(Image.open(src)),
                                  np.asarray(Image.open(out / r["split"] / kind / f"{r['stem']}.png")))
    by_split = high_contents_by_split(out)
    assert not by_split["train"] & by_split["val"]
    assert not (by_split["train"] | by_split["val"]) & by_split["test"]
    assert {r["stem"] for r in rows if r["split"] == "test"} == {"e0", "e1", "e2"}
    assert all(r["exposure"] == "" for r in rows)


@pytest.mark.parametrize("seed", range(6))
def test_lol_split_never_puts_one_high_image_in_two_splits(lol, tmp_path, seed):
    out = tmp_path / "prepared"
    prep.prepare(lol_cfg(lol, val_fraction=0.4), seed=seed, out=out, workers=1)
    by_split = high_contents_by_split(out)
    assert not by_split["train"] & by_split["val"]
    rows = manifest(out)
    # the scenes with several shots stay together (stems 1-3, 4-5, 6-7)
    for stems in ({"1", "2", "3"}, {"4", "5"}, {"6", "7"}):
        assert len({r["split"] for r in rows if r["stem"] in stems}) == 1


def test_split_groups_property():
    sizes = {f"g{i}": 1 + (i % 4) for i in range(40)}
    total = sum(sizes.values())
    seen_val = set()
    for seed in range(20):
        a = prep.split_groups(sizes, 0.2, 0.1, seed)
        assert set(a) == set(sizes) and set(a.values()) == {"train", "val", "test"}
        n = {s: sum(sizes[g] for g in a if a[g] == s) for s in SPLITS}
        assert 0 < n["val"] <= 0.2 * total and 0 < n["test"] <= 0.1 * total
        assert n["train"] > n["val"] > n["test"]
        assert a == prep.split_groups(sizes, 0.2, 0.1, seed)  # seeded
        seen_val.add(frozenset(g for g in a if a[g] == "val"))
    assert len(seen_val) > 10  # the seed matters
    with pytest.raises(DataError, match="2 group"):
        prep.split_groups({"a": 1, "b": 1}, 0.2, 0.2, 0)
    # groups all larger than the target: each split still gets its smallest one
    a = prep.split_groups({"a": 5, "b": 3, "c": 9, "d": 9}, 0.1, 0.1, 0)
    assert sorted(k for k in a if a[k] != "train") == ["a", "b"]


def test_lol_without_eval15_has_empty_test_and_says_so(tmp_path):
    root = make_lol(tmp_path / "LOL", eval15=False)
    out = tmp_path / "prepared"
    s = prep.prepare(lol_cfg(root), seed=1, out=out)
    assert s["test_pairs"] == 0 and s["train_pairs"] + s["val_pairs"] == 15
    assert any("eval15" in n and "empty" in n for n in s["notes"])
    assert list_pairs(out, "test") == [] and (out / "test" / "low").is_dir()


def test_lol_is_reproducible_and_seed_changes_split(lol, tmp_path):
    a, b, c = (tmp_path / x for x in "abc")
    prep.prepare(lol_cfg(lol, val_fraction=0.3), seed=3, out=a)
    prep.prepare(lol_cfg(lol, val_fraction=0.3), seed=3, out=b, workers=1)
    assert tree(a) == tree(b)
    vals = set()
    for seed in range(4, 10):
        prep.prepare(lol_cfg(lol, val_fraction=0.3), seed=seed, out=c, workers=1)
        vals.add(frozenset(r["stem"] for r in manifest(c) if r["split"] == "val"))
    assert len(vals) > 1


# --------------------------------------------------------------------------- bad data


def _break(root: Path, case: str) -> list[str]:
    """Damage a good LOL folder; return the file names the error must mention."""
    low, high = root / "our485" / "low", root / "our485" / "high"
    rgb = synthetic_photo(*SIZE, seed=9)
    if case == "zero_byte":
        p = next(low.glob("8.*"))
        p.write_bytes(b"")
        return [p.name, "0 bytes"]
    if case == "truncated":
        p = next(high.glob("9.*"))
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2])
        return [p.name]
    if case == "not_an_image":
        p = next(low.glob("10.*"))
        p.write_text("this is not a picture, it only has an image extension\n" * 3)
        return [p.name]
    if case == "low_without_high":
        next(high.glob("11.*")).unlink()
        return [next(low.glob("11.*")).name, "without a high"]
    if case == "high_without_low":
        next(low.glob("12.*")).unlink()
        return [next(high.glob("12.*")).name, "without a low"]
    if case == "size_mismatch":
        p = next(low.glob("13.*"))
        p.unlink()
        save(p.with_suffix(".png"), synthetic_photo(SIZE[0] + 2, SIZE[1], seed=1))
        return ["13.png", f"{SIZE[1]}x{SIZE[0] + 2}"]
    if case in ("grayscale", "rgba", "palette", "sixteen_bit"):
        p = next(low.glob("14.*"))
        p.unlink()
        p = p.with_suffix(".png")
        if case == "grayscale":
            Image.fromarray(rgb[..., 0]).save(p)
        elif case == "rgba":
            Image.fromarray(np.dstack([rgb, np.full(SIZE, 255, np.uint8)])).save(p)
        elif case == "palette":
            Image.fromarray(rgb).convert("P").save(p)
        else:
            save_png16(p, rgb.astype(np.uint16) * 257)
        word = {"grayscale": "grayscale", "rgba": "RGBA", "palette": "palette", "sixteen_bit": "16-bit"}[case]
        return ["14.png", word, "convert"]
    if case == "empty_folder":
        shutil.rmtree(high)
        high.mkdir()
        return [str(high), "no images"]
    if case == "missing_folder":
        shutil.rmtree(low)
        return [str(low), "missing"]
    if case == "missing_eval15_half":
        shutil.rmtree(root / "eval15" / "high")
        return [str(root / "eval15" / "high"), "missing"]
    if case == "symlink_outside":
        outside = root.parent / "elsewhere.png"
        save(outside, rgb)
        p = next(high.glob("15.*"))
        p.unlink()
        os.symlink(outside, p)
        return [p.name, "outside the dataset"]
    if case == "link_text_outside":
        save(root.parent / "elsewhere.png", rgb)
        p = next(high.glob("15.*"))
        p.write_text("../../../elsewhere.png")
        return [p.name, "outside the dataset"]
    if case == "broken_symlink":
        p = next(high.glob("15.*"))
        p.unlink()
        os.symlink("gone.png", p)
        return [p.name, "broken"]
    if case == "eval15_leak":
        src = next(high.glob("15.*"))
        dst = root / "eval15" / "high" / "e1.png"
        Image.open(src).save(dst)
        return ["e1.png", "leak"]
    raise AssertionError(case)


BAD_CASES = ["zero_byte", "truncated", "not_an_image", "low_without_high", "high_without_low", "size_mismatch",
             "grayscale", "rgba", "palette", "sixteen_bit", "empty_folder", "missing_folder",
             "missing_eval15_half", "symlink_outside", "link_text_outside", "broken_symlink", "eval15_leak"]


@pytest.mark.fault
@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_lol_data_is_refused_and_nothing_written(lol, tmp_path, case):
    words = _break(lol, case)
    out = tmp_path / "out" / "prepared"
    with pytest.raises(DataError) as info:
        prep.prepare(lol_cfg(lol), seed=0, out=out)
    msg = str(info.value)
    for w in words:
        assert w in msg, (w, msg)
    assert not out.exists()
    assert not (tmp_path / "out").exists() or no_leftovers(tmp_path / "out")


@pytest.mark.fault
def test_every_bad_file_is_named_in_one_error_and_old_output_survives(lol, tmp_path):
    out = tmp_path / "prepared"
    prep.prepare(lol_cfg(lol), seed=0, out=out)
    before = tree(out)
    expected = []
    for case in ("zero_byte", "not_an_image", "grayscale", "low_without_high", "size_mismatch", "symlink_outside"):
        expected += _break(lol, case)[:1]
    with pytest.raises(DataError) as info:
        prep.prepare(lol_cfg(lol), seed=0, out=out)
    assert len(info.value.problems) == 6, info.value.problems
    for name in expected:
        assert name in str(info.value)
    assert tree(out) == before
    assert no_leftovers(tmp_path)


@pytest.mark.fault
def test_failure_while_writing_leaves_old_output(lol, tmp_path, monkeypatch):
    out = tmp_path / "prepared"
    prep.prepare(lol_cfg(lol), seed=0, out=out)
    before = tree(out)
    calls = {"n": 0}
    import lowlight.data.pair_writer as writer

    real = writer.encode_png

    def flaky(rgb):
        calls["n"] += 1
        if calls["n"] == 7:
            raise OSError(28, "No space left on device")
        return real(rgb)

    monkeypatch.setattr(writer, "encode_png", flaky)
    with pytest.raises(OSError, match="No space"):
        prep.prepare(lol_cfg(lol), seed=1, out=out)
    assert tree(out) == before
    assert no_leftovers(tmp_path)


def test_missing_lol_root_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="nowhere"):
        prep.prepare(lol_cfg(tmp_path / "nowhere"), seed=0, out=tmp_path / "o")


def test_non_image_files_are_ignored_and_reported(lol, tmp_path):
    (lol / "our485" / "low" / "README.txt").write_text("notes")
    (lol / "our485" / "low" / ".DS_Store").write_bytes(b"\x00\x01")
    s = prep.prepare(lol_cfg(lol), seed=0, out=tmp_path / "o")
    assert s["train_pairs"] + s["val_pairs"] == 15
    assert any("README.txt" in n for n in s["notes"])


# --------------------------------------------------------------------------- clean_folder


@pytest.fixture
def clean(tmp_path) -> Path:
    root = tmp_path / "clean"
    for i in range(6):
        save(root / f"photo{i}{['.jpg', '.png', '.webp'][i % 3]}", synthetic_photo(40 + 4 * i, 56, seed=i))
    shutil.copyfile(root / "photo1.png", root / "photo1_copy.png")  # same photo twice: one group
    return root


def test_clean_folder_pairs_grouped_resized_reproducible(clean, tmp_path):
    cfg = DataConfig(source="clean_folder", path=str(clean), max_size=32, pairs_per_image=2,
                     val_fraction=0.2, test_fraction=0.2)
    a, b = tmp_path / "a", tmp_path / "b"
    s = prep.prepare(cfg, seed=4, out=a)
    assert s["photos"] == 7 and s["duplicate_photos"] == 1 and s["pairs"] == 14
    assert s["val_pairs"] >= 2 and s["test_pairs"] >= 2 and s["train_pairs"] > max(s["val_pairs"], s["test_pairs"])
    rows = assert_manifest_matches_files(a)
    assert all(max(int(r["width"]), int(r["height"])) == 32 for r in rows)
    by_photo = {}
    for r in rows:
        by_photo.setdefault(r["high_source"], set()).add(r["split"])
        assert 1 / 40 - 1e-9 <= float(r["exposure"]) <= 1 / 8 + 1e-9
        assert r["low_source"] == f"synthetic:{r['high_source']}"
    assert all(len(v) == 1 for v in by_photo.values())  # versions never straddle splits
    assert by_photo["photo1.png"] == by_photo["photo1_copy.png"]
    by_split = high_contents_by_split(a)
    assert not by_split["train"] & by_split["val"] and not by_split["train"] & by_split["test"]
    # low is darker than high for every pair
    for split in SPLITS:
        _, lows, highs = load_pairs(a, split)
        assert all(lo.mean() < 0.5 * hi.mean() for lo, hi in zip(lows, highs))
    prep.prepare(cfg, seed=4, out=b, workers=1)
    assert tree(a) == tree(b)
    prep.prepare(cfg, seed=5, out=b)
    assert tree(a) != tree(b)


def test_identical_photos_under_two_names_share_a_split(clean, tmp_path):
    cfg = DataConfig(source="clean_folder", path=str(clean), max_size=16, pairs_per_image=1)
    for seed in range(8):
        prep.prepare(cfg, seed=seed, out=tmp_path / "o", workers=1)
        split = {r["high_source"]: r["split"] for r in manifest(tmp_path / "o")}
        assert split["photo1.png"] == split["photo1_copy.png"]
        assert len(set(split.values())) == 3


@pytest.mark.fault
def test_clean_folder_bad_files_all_named(clean, tmp_path):
    Image.fromarray(synthetic_photo(20, 20)[..., 0]).save(clean / "grey.png")
    (clean / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (clean / "photo0.png").write_bytes((clean / "photo1.png").read_bytes())  # same stem as photo0.jpg
    with pytest.raises(DataError) as info:
        prep.prepare(DataConfig(source="clean_folder", path=str(clean)), seed=0, out=tmp_path / "o")
    msg = str(info.value)
    assert "grey.png" in msg and "grayscale" in msg and "broken.jpg" in msg and "photo0.png" in msg
    assert not (tmp_path / "o").exists()


@pytest.mark.fault
@pytest.mark.parametrize("make, words", [
    (lambda p: None, ["missing"]),
    (lambda p: p.mkdir(), ["no images"]),
    (lambda p: (p.mkdir(), (p / "notes.txt").write_text("x")), ["no images"]),
])
def test_clean_folder_missing_or_empty(tmp_path, make, words):
    folder = tmp_path / "photos"
    make(folder)
    with pytest.raises(DataError) as info:
        prep.prepare(DataConfig(source="clean_folder", path=str(folder)), seed=0, out=tmp_path / "o")
    assert str(folder) in str(info.value) and all(w in str(info.value) for w in words)


def test_too_few_photos_for_three_splits(tmp_path):
    save(tmp_path / "c" / "a.png", synthetic_photo(16, 16, 1))
    save(tmp_path / "c" / "b.png", synthetic_photo(16, 16, 2))
    with pytest.raises(DataError, match="test_fraction"):
        prep.prepare(DataConfig(source="clean_folder", path=str(tmp_path / "c")), seed=0, out=tmp_path / "o")
    s = prep.prepare(DataConfig(source="clean_folder", path=str(tmp_path / "c"), test_fraction=0.0),
                     seed=0, out=tmp_path / "o")
    assert (s["train_pairs"], s["val_pairs"], s["test_pairs"]) == (3, 3, 0)


# --------------------------------------------------------------------------- demo


def test_demo_photos_are_installed_well_lit_rgb():
    photos = prep.demo_photo_paths()
    assert len(photos) == 9 and len({g for g, _, _ in photos}) == 8
    for _, path, _ in photos:
        im = Image.open(path)
        assert im.mode == "RGB", path
        assert 60 < np.asarray(im).mean() < 200, path  # well lit, not already dark or blown out


def test_demo_source_small(tmp_path):
    cfg = DataConfig(source="demo", max_size=48, pairs_per_image=2)
    a, b = tmp_path / "a", tmp_path / "b"
    s = prep.prepare(cfg, seed=0, out=a)
    assert s["photos"] == 9 and s["pairs"] == 18
    assert s["val_groups"] >= 1 and s["test_groups"] >= 1
    assert s["train_pairs"] > s["val_pairs"] and s["train_pairs"] > s["test_pairs"]
    rows = assert_manifest_matches_files(a)
    assert all(max(int(r["width"]), int(r["height"])) <= 48 for r in rows)
    moto = {r["split"] for r in rows if r["stem"].startswith("motorcycle")}
    assert len(moto) == 1 and {r["group"] for r in rows if r["stem"].startswith("motorcycle")} == {"motorcycle"}
    prep.prepare(cfg, seed=0, out=b)
    assert tree(a) == tree(b)  # bit-identical with the same seed


# --------------------------------------------------------------------------- stage script


def _params(tmp_path: Path, data: str) -> Path:
    p = tmp_path / "params.yaml"
    p.write_text(f"base:\n  seed: 3\ndata:\n{data}")
    return p


def _stage():
    spec = importlib.util.spec_from_file_location("stage_prepare", REPO / "stages" / "prepare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stage_script_writes_output(tmp_path, capsys):
    stage = _stage()
    params = _params(tmp_path, "  source: demo\n  max_size: 32\n  pairs_per_image: 1\n")
    stage.main(["--params", str(params), "--out", str(tmp_path / "prepared")])
    assert "train" in capsys.readouterr().out
    assert_manifest_matches_files(tmp_path / "prepared")


@pytest.mark.fault
def test_stage_script_bad_data_exits_2_with_one_message(tmp_path, capsys):
    stage = _stage()
    root = make_lol(tmp_path / "LOL")
    next((root / "our485" / "low").glob("1.*")).write_bytes(b"")
    params = _params(tmp_path, f"  source: lol\n  path: {root}\n")
    with pytest.raises(SystemExit) as info:
        stage.main(["--params", str(params), "--out", str(tmp_path / "prepared")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("prepare:")]  # the rest is the progress bar
    assert lines == ["prepare: error: data.source lol (%s): cannot use this dataset (1 problem):" % root]
    assert "1.jpg: file is empty (0 bytes)" in err and "Traceback" not in err
    assert not (tmp_path / "prepared").exists()


# --------------------------------------------------------------------------- the shared LOL copy


@pytest.mark.slow
@pytest.mark.lol
def test_shared_lol_copy(tmp_path):
    root = lol_root()
    if root is None:
        pytest.skip("shared LOL copy not found")
    out = tmp_path / "prepared"
    s = prep.prepare(lol_cfg(root), seed=42, out=out)
    assert s["train_pairs"] + s["val_pairs"] == 485
    assert s["high_groups_shared"] == 66
    assert s["train_groups"] + s["val_groups"] == 485 - 86
    assert s["val_pairs"] == pytest.approx(0.2 * 485, abs=6)
    rows = manifest(out)
    by_split: dict[str, set[str]] = {}
    for r in rows:
        by_split.setdefault(r["split"], set()).add(r["high_sha256"])
    assert not by_split["train"] & by_split["val"]
    assert len({r["group"] for r in rows}) == 399
    for r in rows[:: 40]:
        assert sha(out / r["split"] / "high" / f"{r['stem']}.png") == r["high_sha256"]
