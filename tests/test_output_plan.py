"""The output plan of `lowlight enhance`: no input is ever written, no two jobs share an
output, linked folders do not loop, compare pictures are planned like outputs, and output
bytes are what their extension says. Every layout is made inside the test."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from lowlight.imageio import WRITE_FORMATS
from lowlight.cli.output_plan import plan_outputs

from enhance_stub import run_cli

pytestmark = pytest.mark.fault

_RNG = np.random.default_rng(0)


def _img(path: Path, seed: int | None = None, size=(6, 5)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = _RNG if seed is None else np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path, format=_format(path))
    return path


def _format(path: Path) -> str:
    return {".gif": "GIF"}.get(path.suffix.lower()) or WRITE_FORMATS.get(path.suffix.lower(), "PNG")


def _bytes(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` (links not followed) -> its bytes."""
    out = {}
    for folder, _, files in os.walk(root):
        for f in files:
            p = Path(folder, f)
            if p.is_file() and not p.is_symlink():
                out[str(p)] = p.read_bytes()
    return out


# --------------------------------------------------------------------------- the red-team cases


def test_an_input_of_another_folder_is_never_overwritten(tmp_path):
    """`enhance a b -o b --overwrite`: a/x.png's output is b/x.png, an input."""
    a, b = _img(tmp_path / "a" / "x.png"), _img(tmp_path / "b" / "x.png")
    before = _bytes(tmp_path)
    code, err = run_cli(tmp_path / "w", [a.parent, b.parent, "-o", b.parent, "--overwrite"])
    assert code == 1 and f"{a}: output {b} would overwrite the input {b}" in err, err
    assert _bytes(tmp_path / "a") | _bytes(tmp_path / "b") == {k: v for k, v in before.items() if "/w/" not in k}


def test_format_into_the_same_folder_keeps_the_other_photo(tmp_path):
    """`-o <same folder> --format png --overwrite` over IMG_1.jpg and IMG_1.png."""
    _img(tmp_path / "s" / "IMG_1.jpg")
    png = _img(tmp_path / "s" / "IMG_1.png")
    _img(tmp_path / "s" / "IMG_2.jpg")
    before = png.read_bytes()
    code, err = run_cli(tmp_path / "w", [tmp_path / "s", "-o", tmp_path / "s", "--format", "png", "--overwrite"])
    assert code == 1 and "IMG_1.jpg: output" in err and "would overwrite the input" in err, err
    assert png.read_bytes() == before
    assert Image.open(tmp_path / "s" / "IMG_2.png").format == "PNG"  # the one that could be done was


def test_recursive_output_folder_inside_the_input(tmp_path):
    """`enhance s3 -r -o s3/enh --overwrite` when s3/enh/p.png is one of the user's photos."""
    _img(tmp_path / "s3" / "p.png")
    mine = _img(tmp_path / "s3" / "enh" / "p.png")
    before = mine.read_bytes()
    code, err = run_cli(tmp_path / "w", [tmp_path / "s3", "-r", "-o", tmp_path / "s3" / "enh", "--overwrite"])
    assert code == 1 and "would overwrite the input" in err, err
    assert mine.read_bytes() == before


def test_links_and_case_are_seen_through(tmp_path):
    """An output reached by a symlink, a hard link or another letter case is still the input."""
    src = _img(tmp_path / "in" / "a.png")
    (tmp_path / "out").mkdir()
    os.symlink(src, tmp_path / "out" / "a.png")  # output path is a link to the input
    plan = plan_outputs([str(src)], tmp_path / "out", overwrite=True)
    assert not plan.jobs and "would overwrite the input" in plan.skipped[0]
    (tmp_path / "out" / "a.png").unlink()
    os.link(src, tmp_path / "out" / "a.png")  # a hard link: same inode
    plan = plan_outputs([str(src)], tmp_path / "out", overwrite=True)
    assert not plan.jobs and "would overwrite the input" in plan.skipped[0]
    os.symlink(tmp_path / "in", tmp_path / "via")  # -o is a link to the input folder
    plan = plan_outputs([str(tmp_path / "in")], tmp_path / "via", overwrite=True)
    assert not plan.jobs
    _img(tmp_path / "in2" / "A.PNG")
    plan = plan_outputs([str(tmp_path / "in2")], tmp_path / "in2", suffix=".png", overwrite=True)
    assert not plan.jobs and "where letter case is ignored" in plan.skipped[0]
    _img(tmp_path / "in2" / "a.png")  # case twins are two photos here, one output where case is ignored
    plan = plan_outputs([str(tmp_path / "in2")], tmp_path / "o3")
    assert len(plan.jobs) == 1 and "same output" in plan.skipped[0] and not plan.notes


def test_two_jobs_never_write_one_output(tmp_path):
    _img(tmp_path / "a" / "x.png")
    _img(tmp_path / "b" / "x.png")
    _img(tmp_path / "b" / "x.jpg")
    plan = plan_outputs([str(tmp_path / "a"), str(tmp_path / "b")], tmp_path / "o", suffix=".png")
    assert [j.src.parent.name for j in plan.jobs] == ["a"]
    assert len(plan.skipped) == 2 and all("same output" in s for s in plan.skipped)


def test_an_interrupted_batch_finishes_and_exits_0(tmp_path):
    for i in range(3):
        _img(tmp_path / "in" / f"{i}.png")
    out = tmp_path / "out"
    assert run_cli(tmp_path / "w", [tmp_path / "in" / "0.png", "-o", out])[0] == 0  # "killed" after one
    code, err = run_cli(tmp_path / "w", [tmp_path / "in", "-o", out])
    assert code == 0 and "2 enhanced" in err and "1 already done (use --overwrite to redo)" in err, err
    code, err = run_cli(tmp_path / "w", [tmp_path / "in", "-o", out])
    assert code == 0 and "nothing to do: 3 already done" in err, err


# --------------------------------------------------------------------------- compare pictures


def test_compare_pictures_are_planned_like_outputs(tmp_path):
    a_png, a_jpg = _img(tmp_path / "in" / "a.png"), _img(tmp_path / "in" / "a.jpg")
    out = tmp_path / "out"
    assert run_cli(tmp_path / "w", [tmp_path / "in", "-o", out, "--compare"])[0] == 0
    cmp = tmp_path / "out.compare"
    assert sorted(p.name for p in cmp.iterdir()) == ["a.jpg.compare.png", "a.png.compare.png"]  # one each
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "a.png"]  # nothing else in OUT
    stamp = {p: p.stat().st_mtime_ns for p in cmp.iterdir()}
    code, err = run_cli(tmp_path / "w", [tmp_path / "in", "-o", out, "--compare"])
    assert code == 0 and "2 already done" in err  # existing compare pictures are kept without --overwrite
    assert {p: p.stat().st_mtime_ns for p in cmp.iterdir()} == stamp
    # a compare picture can never replace an input, whatever the flags
    trap = _img(tmp_path / "in" / "b.png.compare.png")
    _img(tmp_path / "in" / "b.png")
    before = trap.read_bytes()
    code, err = run_cli(tmp_path / "w", [tmp_path / "in", "-o", tmp_path / "o2", "--compare-dir", tmp_path / "in",
                                         "--overwrite"])
    assert code == 1 and "compare image" in err and "would overwrite the input" in err, err
    assert trap.read_bytes() == before and a_png.exists() and a_jpg.exists()


def test_a_missing_compare_picture_is_made_without_redoing_the_output(tmp_path):
    _img(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    run_cli(tmp_path / "w", [tmp_path / "in", "-o", out])
    stamp = (out / "a.png").stat().st_mtime_ns
    plan = plan_outputs([str(tmp_path / "in")], out, compare_dir=tmp_path / "c")
    assert [(j.dst, j.compare.name) for j in plan.jobs] == [(None, "a.png.compare.png")]
    assert run_cli(tmp_path / "w", [tmp_path / "in", "-o", out, "--compare-dir", tmp_path / "c"])[0] == 0
    assert (tmp_path / "c" / "a.png.compare.png").is_file() and (out / "a.png").stat().st_mtime_ns == stamp


# --------------------------------------------------------------------------- linked folders, formats


def test_linked_folders_do_not_loop_and_files_are_taken_once(tmp_path):
    d = tmp_path / "d"
    _img(d / "a.png")
    _img(d / "sub" / "b.png")
    os.symlink(".", d / "self")
    os.symlink("..", d / "sub" / "up")
    start = time.perf_counter()
    for inputs in ([f"{d}/**/*.png"], [str(d)], [f"{d}/*", str(d), f"{d}/self"]):
        plan = plan_outputs(inputs, tmp_path / "o", recursive=True)
        assert sorted(str(j.src.relative_to(d)).replace("self/", "") for j in plan.jobs) == ["a.png", "sub/b.png"]
    assert time.perf_counter() - start < 0.5
    assert any("did not follow" in n for n in plan.notes) and any("reached twice" in n for n in plan.notes)
    # the glob keeps the tree below its leading folder
    assert sorted(str(j.dst.relative_to(tmp_path / "o")) for j in plan_outputs(
        [f"{d}/**/*.png"], tmp_path / "o", recursive=True).jobs) == ["a.png", "sub/b.png"]


def test_formats_are_written_as_what_their_extension_says(tmp_path):
    """.gif is read but not written (256 colours): it needs --format, and says so; other
    extensions lowlight does not read are counted once; outputs are real files of their kind."""
    src = tmp_path / "in"
    exts = [".png", ".jpg", ".webp", ".tif", ".bmp", ".avif", ".jp2"]
    for ext in exts:
        if ext in WRITE_FORMATS:
            _img(src / f"p{ext[1:]}{ext}")
    _img(src / "g.gif")
    (src / "notes.txt").write_text("x")
    (src / "raw.heic").write_bytes(b"\0" * 10)
    (src / "raw2.heic").write_bytes(b"\0" * 10)
    code, err = run_cli(tmp_path / "w", [src, "-o", tmp_path / "out"])
    assert code == 1 and "g.gif: lowlight does not write GIF" in err and "--format png" in err, err
    assert "skipped 3 files with unsupported extensions: .heic (2), .txt (1)" in err, err
    for p in (tmp_path / "out").iterdir():
        assert Image.open(p).format == WRITE_FORMATS[p.suffix.lower()], p
    assert run_cli(tmp_path / "w", [src / "g.gif", "-o", tmp_path / "out", "--format", "png"])[0] == 0
    assert Image.open(tmp_path / "out" / "g.png").format == "PNG"
    code, err = run_cli(tmp_path / "w", [src / "raw.heic", "-o", tmp_path / "out"])
    assert code == 1 and "raw.heic: unsupported extension .heic" in err, err


# --------------------------------------------------------------------------- property: random layouts

_FOLDERS = ["a", "b", "a/sub", "s3", "s3/enh", "A"]
_STEMS = ["x", "X", "IMG_1", "p"]
_EXTS = [".png", ".jpg", ".PNG", ".gif", ".txt"]
_GLOBS = ["a/*.png", "*/x.*", "s3/*", "A/*"]


@st.composite
def _layouts(draw):
    files = draw(st.lists(st.tuples(st.sampled_from(_FOLDERS), st.sampled_from(_STEMS), st.sampled_from(_EXTS)),
                          min_size=1, max_size=7, unique=True))
    links = draw(st.lists(st.sampled_from(["self", "up", "lnk", "filelink", "hardlink"]), max_size=3, unique=True))
    inputs = draw(st.lists(st.one_of(st.sampled_from(_FOLDERS + ["lnk"]), st.sampled_from(_GLOBS),
                                     st.sampled_from([f"{d}/{s}{e}" for d, s, e in files])),
                           min_size=1, max_size=3))
    return {
        "files": files, "links": links, "inputs": inputs,
        "out": draw(st.sampled_from(_FOLDERS + ["out", "a/out", "lnk", "s3/enh/deeper"])),
        "compare_dir": draw(st.sampled_from([None, None, "a", "cmp", "OUT"])),
        "compare": draw(st.booleans()),
        "recursive": draw(st.booleans()),
        "overwrite": draw(st.booleans()),
        "format": draw(st.sampled_from([None, None, "png", "jpg"])),
        "existing": draw(st.lists(st.sampled_from(["x.png", "p.png", "IMG_1.png", "x.png.compare.png"]),
                                  max_size=2, unique=True)),
    }


def _make(root: Path, lay: dict) -> None:
    for i, (d, stem, ext) in enumerate(lay["files"]):
        _img(root / d / f"{stem}{ext}", seed=i)
    for d in _FOLDERS:
        (root / d).mkdir(parents=True, exist_ok=True)
    if "self" in lay["links"]:
        os.symlink(".", root / "a" / "self")
    if "up" in lay["links"]:
        os.symlink("..", root / "a" / "sub" / "up")
    if "lnk" in lay["links"] or "lnk" in lay["inputs"] or lay["out"] == "lnk":
        os.symlink("a", root / "lnk")
    first = root / lay["files"][0][0] / "".join(lay["files"][0][1:])
    if "filelink" in lay["links"]:
        os.symlink(first, root / "b" / "linked.png")
    if "hardlink" in lay["links"] and not (root / "s3" / "hard.png").exists():
        os.link(first, root / "s3" / "hard.png")
    out = root / lay["out"]
    for name in lay["existing"]:
        if out.is_dir() or not out.exists():
            _img(out / name, seed=99)


def _inputs_by_hand(root: Path, args: list[str], recursive: bool) -> set[str]:
    """Every file the arguments name, found here independently of the planner (no links
    into folders followed, every extension): none of these may ever change."""
    found = set()
    for arg in args:
        p = root / arg
        hits = [Path(m) for m in glob.glob(str(p))] if set("*?[") & set(arg) else [p]
        for h in hits:
            if h.is_file():
                found.add(os.path.realpath(h))
            elif h.is_dir() and not (h.is_symlink() and h != p):
                for folder, dirs, files in os.walk(h):
                    found.update(os.path.realpath(Path(folder, f)) for f in files)
                    if not recursive:
                        break
    return found


def test_random_layouts_never_change_an_input(tmp_path):
    """Hundreds of random folder layouts (links, case twins, formats, existing outputs) under
    random flags through the planner and the real command: no input byte ever changes, only
    planned paths are written, no path twice, and every output is what its extension says."""
    stats = Counter()
    weights = tmp_path / "w"

    @settings(max_examples=400, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(_layouts())
    def check(lay):
        root = Path(tempfile.mkdtemp(dir=tmp_path))
        try:
            _make(root, lay)
            out = root / lay["out"]
            cmp = None if not lay["compare"] else (out if lay["compare_dir"] == "OUT" else
                                                   root / lay["compare_dir"] if lay["compare_dir"] else None)
            args = [str(root / a) for a in lay["inputs"]]
            flags = ["-o", str(out)] + (["-r"] if lay["recursive"] else []) + \
                (["--overwrite"] if lay["overwrite"] else []) + (["--format", lay["format"]] if lay["format"] else [])
            if lay["compare"]:
                flags += ["--compare"] + (["--compare-dir", str(cmp)] if cmp else [])
            protected = _inputs_by_hand(root, lay["inputs"], lay["recursive"])
            before = {os.path.realpath(k): v for k, v in _bytes(root).items()}
            suffix = {"png": ".png", "jpg": ".jpg"}.get(lay["format"])
            compare_dir = cmp or (out.with_name(out.name + ".compare") if lay["compare"] else None)
            plan = plan_outputs(args, out, recursive=lay["recursive"], suffix=suffix,
                                overwrite=lay["overwrite"], compare_dir=compare_dir)
            writes = [os.path.realpath(p) for p in plan.writes]
            assert len(set(writes)) == len(writes), "two jobs write one path"
            assert not set(writes) & protected, "an input is planned as an output"

            code, err = run_cli(weights, [*args, *flags])
            assert code in (0, 1), err
            after = {os.path.realpath(k): v for k, v in _bytes(root).items()}
            for path in protected:
                assert after.get(path) == before[path], f"input {path} changed\n{lay}\n{err}"
            changed = {p for p in after if before.get(p) != after[p]}
            planned = set(writes) | {os.path.abspath(p) for p in plan.writes}  # a link output is replaced, not followed
            assert changed <= planned, f"unplanned writes {changed - planned}\n{lay}\n{err}"
            for p in changed:
                assert Image.open(p).format == (_format(Path(p)) if not p.endswith(".compare.png") else "PNG")
            stats["layouts"] += 1
            stats["with jobs"] += bool(plan.jobs)
            stats["refused"] += bool(plan.skipped)
        finally:
            shutil.rmtree(root)

    start = time.perf_counter()
    check()
    secs = time.perf_counter() - start
    print(f"\nrandom layouts: {stats['layouts']} generated in {secs:.1f} s "
          f"({stats['with jobs']} wrote something, {stats['refused']} refused some input)")
    assert stats["layouts"] >= 300
    assert stats["with jobs"] >= 100 and stats["refused"] >= 30  # both sides of the rule were exercised
