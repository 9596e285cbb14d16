"""The prepare stage's extra train pairs: clean photos added to a primary source, held-out photos, identity pairs."""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lowlight.data import prepare as prep
from lowlight.config import ConfigError, DataConfig, from_dict
from lowlight.errors import DataError
from lowlight.data.pairs import SPLITS, load_pairs

from conftest import synthetic_photo
from test_prepare import assert_manifest_matches_files, make_lol, manifest, save, tree


@pytest.fixture
def lol(tmp_path) -> Path:
    return make_lol(tmp_path / "LOL")


@pytest.fixture
def photos(tmp_path) -> Path:
    root = tmp_path / "bsds"
    for i in range(8):
        save(root / f"{1000 + i}{['.jpg', '.png'][i % 2]}", synthetic_photo(30 + 2 * i, 44, seed=300 + i))
    return root


def cfg(lol: Path, photos: Path | None, **kw) -> DataConfig:
    kw.setdefault("extra_clean_holdout", 3)
    return DataConfig(source="lol", path=str(lol), val_fraction=0.3,
                      extra_clean_path=str(photos) if photos else "", **kw)


def pixel_hashes(out: Path) -> dict[str, set[str]]:
    res = {}
    for split in SPLITS:
        _, lows, highs = load_pairs(out, split)
        res[split] = {hashlib.sha256(x.tobytes()).hexdigest() for x in lows + highs}
    return res


def test_lol_plus_clean_photos_plus_identity_pairs(lol, photos, tmp_path):
    out = tmp_path / "prepared"
    s = prep.prepare(cfg(lol, photos, extra_pairs_per_image=2, identity_fraction=0.3), seed=2, out=out)
    rows = assert_manifest_matches_files(out)
    assert (s["extra_clean_photos"], s["extra_clean_heldout"]) == (5, 3)
    kinds = defaultdict(list)
    for r in rows:
        kinds[r["kind"]].append(r)
    assert {r["split"] for r in kinds["synthetic"]} == {"train"} and len(kinds["synthetic"]) == 10
    assert all(r["stem"].startswith("clean_") and r["group"] == f"clean:{r['stem'][6:].rsplit('_', 1)[0]}"
               for r in kinds["synthetic"])
    # identity pairs: train only, low bit-identical to high, named and grouped after the pair they copy
    n_train = sum(r["split"] == "train" for r in rows if r["kind"] != "identity")
    assert s["identity_pairs"] == len(kinds["identity"]) == round(0.3 * n_train) > 0
    group_of = {r["stem"]: r["group"] for r in rows}
    for r in kinds["identity"]:
        assert r["split"] == "train" and r["stem"].startswith("id_")
        assert r["low_source"] == f"identity:{r['high_source']}" and r["low_sha256"] == r["high_sha256"]
        low, high = (out / "train" / k / f"{r['stem']}.png" for k in ("low", "high"))
        assert low.read_bytes() == high.read_bytes()
        base = r["stem"][3:]
        assert r["group"] == group_of.get(base, group_of.get(f"{base}_0"))
    assert len({r["high_sha256"] for r in kinds["identity"]}) == len(kinds["identity"])  # distinct high images
    # val and test are exactly the run without extras
    plain = tmp_path / "plain"
    prep.prepare(cfg(lol, None), seed=2, out=plain)
    for split in ("val", "test"):
        assert tree(out / split) == tree(plain / split)
        assert [r for r in rows if r["split"] == split] == [
            {**r, "kind": "real"} for r in manifest(plain) if r["split"] == split]
    # a group never straddles splits; no high image is in two splits
    splits_of = defaultdict(set)
    for r in rows:
        splits_of[r["group"]].add(r["split"])
    assert all(len(v) == 1 for v in splits_of.values())
    by_split = pixel_hashes(out)
    assert not by_split["train"] & (by_split["val"] | by_split["test"])


def test_heldout_photos_are_in_no_split_and_listed(lol, photos, tmp_path):
    out = tmp_path / "prepared"
    prep.prepare(cfg(lol, photos, identity_fraction=1.0), seed=0, out=out)
    listed = (out / "heldout.txt").read_text().splitlines()
    expected = prep.heldout_photos(sorted(photos.iterdir()), 3)
    assert listed == [p.name for p in expected] and len(listed) == 3
    rows = manifest(out)
    assert not {r["high_source"] for r in rows} & set(listed)
    held = {hashlib.sha256(np.asarray(Image.open(photos / n).convert("RGB")).tobytes()).hexdigest()
            for n in listed}
    assert not held & set().union(*pixel_hashes(out).values())  # nor resized away: max_size > the photos


def test_heldout_photos_ignore_order_and_seed(photos):
    paths = sorted(photos.iterdir())
    shuffled = paths[:]
    random.Random(1).shuffle(shuffled)
    assert prep.heldout_photos(shuffled, 3) == prep.heldout_photos(paths, 3)
    assert set(prep.heldout_photos(paths, 3)) < set(prep.heldout_photos(paths, 4))  # growing keeps the earlier ones
    assert prep.heldout_photos(paths, 0) == []


def test_extras_are_reproducible_and_off_by_default(lol, photos, tmp_path):
    c = cfg(lol, photos, identity_fraction=0.2)
    a, b = tmp_path / "a", tmp_path / "b"
    prep.prepare(c, seed=5, out=a)
    prep.prepare(c, seed=5, out=b, workers=1)
    assert tree(a) == tree(b)
    s = prep.prepare(DataConfig(source="lol", path=str(lol)), seed=5, out=b)
    assert (s["extra_clean_photos"], s["extra_clean_heldout"], s["identity_pairs"]) == (0, 0, 0)
    assert (b / "heldout.txt").read_text() == "" and {r["kind"] for r in manifest(b)} == {"real"}


def test_extra_identity_adds_every_extra_train_photo_once(lol, photos, tmp_path):
    """data.extra_identity: each extra clean train photo (none of the held-out ones) is also an
    identity pair, beside the identity_fraction's picks and never twice."""
    base = prep.prepare(cfg(lol, photos, identity_fraction=0.3), seed=2, out=tmp_path / "base")
    s = prep.prepare(cfg(lol, photos, identity_fraction=0.3, extra_identity=True), seed=2, out=tmp_path / "more")
    rows = assert_manifest_matches_files(tmp_path / "more")
    ids = [r for r in rows if r["kind"] == "identity"]
    extra = {r["high_sha256"] for r in rows if r["kind"] == "synthetic"}
    held = set((tmp_path / "more" / "heldout.txt").read_text().split())
    assert extra and extra <= {r["high_sha256"] for r in ids}  # every extra train photo
    assert len({r["high_sha256"] for r in ids}) == len(ids) == s["identity_pairs"]  # once each
    assert not any(Path(r["high_source"]).name in held for r in ids)
    before = {r["high_sha256"] for r in manifest(tmp_path / "base") if r["kind"] == "identity"}
    assert before <= {r["high_sha256"] for r in ids}  # the fraction's picks are unchanged
    assert s["identity_pairs"] == len(before | extra) > base["identity_pairs"]
    with pytest.raises(ConfigError, match="data.extra_identity"):
        DataConfig(extra_identity=True)


def test_identity_pairs_on_a_synthetic_source_are_capped_and_resized(photos, tmp_path):
    c = DataConfig(source="clean_folder", path=str(photos), max_size=32, pairs_per_image=2, identity_fraction=1.0)
    s = prep.prepare(c, seed=1, out=tmp_path / "o")
    rows = assert_manifest_matches_files(tmp_path / "o")
    ids = [r for r in rows if r["kind"] == "identity"]
    train_photos = {r["high_source"] for r in rows if r["split"] == "train" and r["kind"] == "synthetic"}
    assert s["identity_pairs"] == len(ids) == len(train_photos)  # capped at the distinct high images
    assert any("identity_fraction" in n for n in s["notes"])
    for r in ids:
        assert max(int(r["width"]), int(r["height"])) == 32 and r["low_sha256"] == r["high_sha256"]
        assert r["split"] == "train" and r["group"] == r["stem"][3:]


@pytest.mark.fault
@pytest.mark.parametrize("case, words", [
    ("missing", ["missing"]),
    ("empty", ["no images"]),
    ("bad_file", ["broken.jpg"]),
    ("holdout", ["data.extra_clean_holdout", "8 photo"]),
    ("leak", ["leak", "val"]),
])
def test_bad_extra_clean_folder_is_refused_naming_the_key(lol, photos, tmp_path, case, words):
    folder, holdout = photos, 3
    if case == "missing":
        folder = tmp_path / "nowhere"
    elif case == "empty":
        folder = tmp_path / "empty"
        folder.mkdir()
    elif case == "bad_file":
        (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    elif case == "holdout":
        holdout = 8
    else:  # a copy of a LOL val high image among the clean photos
        prep.prepare(cfg(lol, None), seed=0, out=tmp_path / "plain")
        val = next(r for r in manifest(tmp_path / "plain") if r["split"] == "val")
        Image.open(tmp_path / "plain" / "val" / "high" / f"{val['stem']}.png").save(photos / "zz_copy.png")
    out = tmp_path / "o"
    with pytest.raises(DataError) as info:
        prep.prepare(cfg(lol, folder, extra_clean_holdout=holdout), seed=0, out=out)
    msg = str(info.value)
    assert "data.extra_clean_" in msg and all(w in msg for w in words), msg
    if case in ("missing", "empty"):
        assert str(folder) in msg
    assert not out.exists()


def test_extra_params_are_checked():
    with pytest.raises(ConfigError, match="identity_fraction"):
        from_dict(DataConfig, {"identity_fraction": 1.5}, prefix="data")
    with pytest.raises(ConfigError, match="extra_pairs_per_image"):
        from_dict(DataConfig, {"extra_pairs_per_image": 0}, prefix="data")
    with pytest.raises(ConfigError, match="extra_clean_path"):
        DataConfig(source="clean_folder", path="photos", extra_clean_path="./photos")
