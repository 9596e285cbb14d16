"""The inference path and `lowlight enhance`: any size, every input kind, tiling without
seams, errors reported by name, and the command's output equal to the API's bit for bit."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lowlight.models.checkpoint import save_checkpoint
from lowlight.cli.main import main as cli_main
from lowlight.config import QuantilesConfig
from lowlight.inference.enhancer import Enhancer, enhance
from lowlight.inference.restraint import restrain_exposure
from lowlight.inference.shadows import FLOOR
from lowlight.models import build_model
from lowlight.models.padding import run_padded
from lowlight.histbranch.quantiles import QuantileModel

from conftest import darken, synthetic_photo


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny quantile model and a tiny network, trained for a few steps so the output is
    image-like (a random network can hide tiling seams behind noise)."""
    root = tmp_path_factory.mktemp("weights")
    highs = [synthetic_photo(40, 56, seed=s) for s in range(8)]
    lows = [darken(h, 0.04 + 0.02 * (s % 3), seed=s) for s, h in enumerate(highs)]
    qm = QuantileModel(QuantilesConfig(n_estimators=8)).fit(lows, highs, seed=0, threads=1)
    qpath = qm.save(root / "q.ubj")
    torch.manual_seed(0)
    net = build_model("unet_small", in_channels=6)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    x = torch.cat([torch.from_numpy(np.stack(lows)), torch.from_numpy(np.stack(lows))], dim=3)
    x = x.permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(np.stack(highs)).permute(0, 3, 1, 2).float() / 255
    for _ in range(10):
        opt.zero_grad()
        torch.nn.functional.l1_loss(run_padded(net, x), y).backward()
        opt.step()
    npath = save_checkpoint(root / "net.pt", net.eval(), inputs="low+mapped",
                            params={"histmap": {"method": "kde", "bandwidth": 6.0, "space": "rgb"}})
    return qpath, npath


@pytest.fixture(scope="module")
def enhancer(weights) -> Enhancer:
    return Enhancer.from_files(*weights, device="cpu")


@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (37, 53), (64, 96)])
def test_any_size(enhancer, shape):
    img = darken(synthetic_photo(*shape, seed=3), 0.05) if min(shape) > 1 else np.full((*shape, 3), 9, np.uint8)
    out = enhancer(img)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert out.mean() > img.mean()  # it brightens


def test_histogram_from_whole_image_and_map_only(enhancer):
    low = darken(synthetic_photo(48, 64, seed=5), 0.05)
    mapped = enhancer.map(low)
    assert mapped.shape == low.shape and mapped.mean() > low.mean()
    assert np.array_equal(Enhancer(enhancer.quantile_model, None, histmap=enhancer.histmap)(low), mapped)


def test_tiled_matches_untiled(enhancer):
    low = darken(synthetic_photo(300, 420, seed=7), 0.05)
    whole = enhancer(low)
    tiled = Enhancer(enhancer.quantile_model, enhancer.network, enhancer.inputs, enhancer.histmap,
                     tile_pixels=100 * 100, tile=160, overlap=48)(low)
    diff = np.abs(whole.astype(int) - tiled.astype(int))
    assert diff.max() <= 2, f"tile seams: max difference {diff.max()} levels"


def _whole_image_blend(net: Enhancer, low: np.ndarray) -> np.ndarray:
    """The tiled run with one float accumulator for the whole image (as before the bands)."""
    from lowlight.inference.tiles import blend_window, even_tile, tile_starts, to_uint8

    h, w = low.shape[:2]
    m = net.network.size_multiple
    ph, pw = -h % m, -w % m
    pad = np.pad(low, ((0, ph), (0, pw), (0, 0)), mode="reflect" if ph < h and pw < w else "edge")
    tile = max(m, net.tile // m * m)
    overlap = min(-(-net.overlap // m) * m, tile // 2 // m * m)
    H, W = pad.shape[:2]
    th, tw = even_tile(H, tile, overlap, m), even_tile(W, tile, overlap, m)
    acc, weight = np.zeros((H, W, 3), np.float32), np.zeros((H, W, 1), np.float32)
    for y0 in tile_starts(H, th, overlap):
        for x0 in tile_starts(W, tw, overlap):
            sl = (slice(y0, min(y0 + th, H)), slice(x0, min(x0 + tw, W)))
            out = net._run(pad[sl], pad[sl])
            win = blend_window(*out.shape[:2], overlap, (y0 > 0, y0 + th < H, x0 > 0, x0 + tw < W))[..., None]
            acc[sl] += out * win
            weight[sl] += win
    acc /= weight
    return to_uint8(acc[:h, :w])


def test_tiles_in_bands_equal_one_whole_image_accumulator(enhancer, monkeypatch):
    """Only one band of tile rows is held in float at a time; the result must be the
    whole-image accumulator's exactly (a network whose output depends on the tile)."""
    net = Enhancer(enhancer.quantile_model, enhancer.network, enhancer.inputs, enhancer.histmap,
                   tile_pixels=1, tile=64, overlap=16)
    monkeypatch.setattr(Enhancer, "map", lambda self, rgb: rgb)
    monkeypatch.setattr(Enhancer, "_run", lambda self, low, mapped, context=None: (
        low.astype(np.float32) / 255 * 0.8 + np.float32(low.mean() % 1 * 0.2)))
    for shape in [(64, 64), (65, 200), (150, 97), (300, 33)]:
        low = synthetic_photo(*shape, seed=shape[0])
        # the restraint after the blend (these photos are normally exposed; the lift's gate is shut)
        assert np.array_equal(net(low), restrain_exposure(_whole_image_blend(net, low), low)), shape


def test_strength_blends_in_8_bit_space(enhancer):
    import lowlight

    low = darken(synthetic_photo(24, 32, seed=4), 0.05)
    full = enhance(low, enhancer=enhancer)
    assert np.array_equal(lowlight.enhance(low, enhancer=enhancer, strength=1), full)
    assert np.array_equal(lowlight.enhance(low, enhancer=enhancer, strength=0), low)
    half = lowlight.enhance(low, enhancer=enhancer, strength=0.5)
    assert np.array_equal(half, np.rint(low + 0.5 * (full.astype(float) - low)).astype(np.uint8))
    assert (np.minimum(low, full) <= half).all() and (half <= np.maximum(low, full)).all()
    more = enhance(low, enhancer=enhancer, strength=1.5)
    assert more.mean() > full.mean() and more.dtype == np.uint8
    pil = enhance(Image.fromarray(low), enhancer=enhancer, strength=0)
    assert np.array_equal(np.asarray(pil), low)
    weak = Enhancer(enhancer.quantile_model, enhancer.network, enhancer.inputs, enhancer.histmap, strength=0.5)
    assert np.array_equal(weak(low), half)
    for bad in (-0.1, float("nan"), float("inf"), 2.0, "1"):
        with pytest.raises(ValueError, match="strength"):
            enhance(low, enhancer=enhancer, strength=bad)


def test_the_shadow_lift_runs_once_on_the_whole_output_with_the_amount_of_shadows(enhancer, monkeypatch):
    from dataclasses import replace

    import lowlight.inference.enhancer as enhancer_module

    low = darken(synthetic_photo(40, 56, seed=5), 0.03)
    off = replace(enhancer, shadows=0.0)(low)
    calls = []

    def spy(out, photo, amount, floor):
        calls.append((out.copy(), photo, amount, floor))
        return np.minimum(out, 200)  # a visible change

    monkeypatch.setattr(enhancer_module, "lift_shadows", spy)
    for amount in (None, 0.0, 1.5):
        calls.clear()
        assert np.array_equal(replace(enhancer, shadows=amount)(low), np.minimum(off, 200))
        assert len(calls) == 1 and calls[0][1] is low and calls[0][2] == amount and calls[0][3] == FLOOR
        assert np.array_equal(calls[0][0], off)  # the anchored network output, before strength
    calls.clear()
    replace(enhancer, keep_black=True)(low)
    assert len(calls) == 1 and calls[0][3] == 0.0  # --keep-black: the gain without the floor
    calls.clear()
    replace(enhancer, shadows=1.0, tile_pixels=16 * 16, tile=16, overlap=8)(low)
    assert len(calls) == 1 and calls[0][0].shape == low.shape  # once, on the blended tiles
    half = replace(enhancer, shadows=1.0, strength=0.5)(low)
    assert np.array_equal(half, np.rint(low + 0.5 * (np.minimum(off, 200).astype(float) - low)).astype(np.uint8))
    with pytest.raises(ValueError, match="--shadows"):
        replace(enhancer, shadows=-1)


def test_the_exposure_compensation_comes_before_the_shadow_lift(enhancer, monkeypatch):
    from dataclasses import replace

    import lowlight.inference.enhancer as enhancer_module
    from lowlight.inference.exposure import compensation_table

    low = darken(synthetic_photo(40, 56, seed=5), 0.03)
    seen = []
    monkeypatch.setattr(enhancer_module, "lift_shadows", lambda out, photo, amount, floor: seen.append(out) or out)
    base = replace(enhancer, shadows=0.0)(low)
    for ev in (-1.0, 0.5, 2.0):
        out = replace(enhancer, shadows=0.0, exposure=ev)(low)
        assert np.array_equal(seen[-1], compensation_table(ev)[base]) and np.array_equal(out, seen[-1])
    assert (replace(enhancer, exposure=-1.0)(low).mean() < base.mean()
            < replace(enhancer, exposure=1.0)(low).mean())
    assert np.array_equal(replace(enhancer, exposure=2.0, strength=0.0)(low), low)  # strength 0: the input
    unlifted = enhancer.unlifted(low)
    assert np.array_equal(enhancer.lift(unlifted, low, 0.0, 0.5), replace(enhancer, shadows=0.0, exposure=0.5)(low))
    for bad in (-3.1, 3.5, float("nan"), True, "1"):
        with pytest.raises(ValueError, match="--exposure .*stops from -3 to 3"):
            replace(enhancer, exposure=bad)


def test_api_kinds(enhancer):
    low = darken(synthetic_photo(24, 32, seed=2), 0.05)
    rgb_out = enhance(low, enhancer=enhancer)
    assert isinstance(rgb_out, np.ndarray) and rgb_out.shape == low.shape
    pil_out = enhance(Image.fromarray(low), enhancer=enhancer)
    assert isinstance(pil_out, Image.Image) and np.array_equal(np.asarray(pil_out), rgb_out)
    grey = enhance(Image.fromarray(low[..., 1]), enhancer=enhancer)
    assert grey.mode == "L" and grey.size == (32, 24)
    rgba = np.dstack([low, np.arange(24 * 32, dtype=np.uint8).reshape(24, 32)])
    out = enhance(Image.fromarray(rgba), enhancer=enhancer)
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out)[..., 3], rgba[..., 3])
    assert enhance(rgba, enhancer=enhancer).shape == (24, 32, 4)
    deep = Image.fromarray(low[..., 0].astype(np.uint16) * 257)
    out16 = enhance(deep, enhancer=enhancer)
    assert out16.mode == "I;16" and np.asarray(out16).max() > 255
    with pytest.raises(ValueError, match="uint8"):
        enhance(low.astype(np.float32), enhancer=enhancer)


# ------------------------------------------------------------------------- command line


def _cli(weights, *args) -> int:
    q, n = weights
    return cli_main(["enhance", *map(str, args), "--quantile-model", str(q), "--weights", str(n), "-q"])


def _photos(folder: Path, n: int = 3, ext: str = ".png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"img{i}{ext}"
        Image.fromarray(darken(synthetic_photo(30, 40, seed=20 + i), 0.05)).save(p)
        paths.append(p)
    return paths


def test_cli_output_equals_api_bit_for_bit(weights, enhancer, tmp_path):
    src = _photos(tmp_path / "in", 2)
    assert _cli(weights, *src, "-o", tmp_path / "out") == 0
    for p in src:
        api = enhance(Image.open(p), enhancer=enhancer)
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / p.name)), np.asarray(api))


def test_the_command_in_process_leaves_the_callers_collector_as_it_was(weights, tmp_path):
    """``main`` builds with the collector off for speed, then restores it; only the program's own
    exit (``console``) freezes what is left."""
    import gc

    src = _photos(tmp_path / "in", 1)
    frozen = gc.get_freeze_count()
    assert _cli(weights, *src, "-o", tmp_path / "out") == 0
    assert gc.isenabled() and gc.get_freeze_count() == frozen
    gc.disable()
    try:
        assert _cli(weights, *src, "-o", tmp_path / "out2") == 0
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()


def test_the_program_exits_cleanly_with_its_status(weights, tmp_path):
    src = _photos(tmp_path / "in", 1)
    q, n = weights
    ok = subprocess.run([sys.executable, "-m", "lowlight", "enhance", str(src[0]), "-o", str(tmp_path / "out"),
                         "--quantile-model", str(q), "--weights", str(n)], capture_output=True, text=True,
                        cwd=tmp_path, timeout=300)
    assert ok.returncode == 0 and "1 enhanced" in ok.stderr and "Exception ignored" not in ok.stderr, ok.stderr
    bad = subprocess.run([sys.executable, "-m", "lowlight", "enhance", str(tmp_path / "missing.png"), "-o",
                          str(tmp_path / "out")], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert bad.returncode == 1 and "Exception ignored" not in bad.stderr, bad.stderr


def test_cli_folders_recursive_globs_and_format(weights, tmp_path):
    _photos(tmp_path / "in", 2)
    _photos(tmp_path / "in" / "sub", 1, ".jpg")
    assert _cli(weights, tmp_path / "in", "-o", tmp_path / "flat") == 0
    assert sorted(p.name for p in (tmp_path / "flat").iterdir()) == ["img0.png", "img1.png"]
    assert _cli(weights, tmp_path / "in", "-r", "--format", "webp", "-o", tmp_path / "deep") == 0
    assert (tmp_path / "deep" / "sub" / "img0.webp").is_file()
    assert _cli(weights, str(tmp_path / "in" / "img*.png"), "--compare", "-o", tmp_path / "glob") == 0
    # compare pictures go beside the output folder, never into it (evaluate would take them for outputs)
    assert sorted(p.name for p in (tmp_path / "glob").iterdir()) == ["img0.png", "img1.png"]
    cmp = Image.open(tmp_path / "glob.compare" / "img1.png.compare.png")
    assert cmp.size == (40 * 2 + 8, 30)


@pytest.mark.fault
def test_cli_never_overwrites(weights, tmp_path, capsys):
    src = _photos(tmp_path / "in", 1)
    assert _cli(weights, *src, "-o", tmp_path / "in") == 1  # output would be the input
    assert "overwrite the input" in capsys.readouterr().err
    assert _cli(weights, *src, "-o", tmp_path / "out") == 0
    before = (tmp_path / "out" / "img0.png").stat().st_mtime_ns
    assert _cli(weights, *src, "-o", tmp_path / "out") == 0  # already done: not a failure
    assert "1 already done (use --overwrite to redo)" in capsys.readouterr().err
    assert (tmp_path / "out" / "img0.png").stat().st_mtime_ns == before
    assert _cli(weights, *src, "-o", tmp_path / "out", "--overwrite") == 0


@pytest.mark.fault
def test_cli_bad_files_reported_and_skipped(weights, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "in"
    good = _photos(folder, 2)
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_bytes(b"hello, not a jpeg")
    buf = io.BytesIO()
    Image.fromarray(synthetic_photo(60, 60)).save(buf, format="PNG")
    (folder / "cut.png").write_bytes(buf.getvalue()[:300])
    Image.new("RGB", (300, 300)).save(folder / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)
    Image.fromarray(np.array([[[3, 4, 5]]], np.uint8)).save(folder / "one.png")
    code = _cli(weights, folder, "-o", tmp_path / "out")
    err = capsys.readouterr().err
    assert code == 1
    for name, words in [("empty.png", "empty"), ("text.jpg", "not a readable image"), ("cut.png", "truncated"),
                        ("bomb.png", "too large")]:
        line = next((l for l in err.splitlines() if name in l), "")
        assert words in line, (name, err)
        assert not (tmp_path / "out" / name).exists()
    for p in good + [folder / "one.png"]:
        assert (tmp_path / "out" / p.name).is_file()
    assert "4 failed or skipped" in err


def test_cli_missing_input_and_checkpoint_with_code(weights, tmp_path, capsys):
    assert _cli(weights, tmp_path / "nope.png", "-o", tmp_path / "out") == 1
    assert "no such file" in capsys.readouterr().err


def test_python_dash_m_runs(tmp_path):
    out = subprocess.run([sys.executable, "-m", "lowlight", "enhance", "--help"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 0 and "--recursive" in out.stdout


def test_exif_orientation_and_palette(weights, enhancer, tmp_path):
    """A phone photo stored sideways with an EXIF 'rotate 90' tag comes out upright; a
    palette PNG comes out as RGB of the same size."""
    low = darken(synthetic_photo(30, 40, seed=5), 0.05)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    (tmp_path / "in").mkdir()
    Image.fromarray(low).save(tmp_path / "in" / "phone.jpg", exif=exif, quality=95)
    Image.fromarray(low).quantize(64).save(tmp_path / "in" / "pal.png")
    assert _cli(weights, tmp_path / "in", "-o", tmp_path / "out") == 0
    upright = Image.open(tmp_path / "out" / "phone.jpg")
    assert upright.size == (30, 40)  # width and height swapped by the orientation tag
    pal = Image.open(tmp_path / "out" / "pal.png")
    assert pal.mode == "RGB" and pal.size == (40, 30)
    api = enhance(Image.open(tmp_path / "in" / "pal.png"), enhancer=enhancer)
    assert np.array_equal(np.asarray(pal), np.asarray(api))


SHIPPED = Path(__file__).resolve().parents[1] / "lowlight" / "weights"


@pytest.mark.skipif(not (SHIPPED / "model.pt").exists(), reason="no shipped weights in this checkout")
def test_shipped_weights_are_small_self_describing_and_work():
    from lowlight.models.checkpoint import read_checkpoint

    files = [SHIPPED / "model.pt", SHIPPED / "quantiles.ubj"]
    assert sum(f.stat().st_size for f in files) < 10 * 1024 * 1024
    ckpt = read_checkpoint(SHIPPED / "model.pt")
    assert ckpt["model"] and isinstance(ckpt["model_args"], dict) and ckpt["params"]["train"]
    assert ckpt["params"]["histmap"] and ckpt["inputs"] in ("low", "mapped", "low+mapped")
    low = darken(synthetic_photo(48, 64, seed=9), 0.04)
    out = enhance(low)  # the shipped default
    assert out.shape == low.shape and out.mean() > low.mean() + 20


def test_package_level_enhance_stays_callable(enhancer):
    """`lowlight.enhance(...)` is the advertised API: importing the inference module must not
    replace it (a submodule of the same name would, after the first call)."""
    import lowlight

    low = darken(synthetic_photo(24, 32, seed=3), 0.05)
    first = lowlight.enhance(low, enhancer=enhancer)
    assert callable(lowlight.enhance)
    assert np.array_equal(lowlight.enhance(low, enhancer=enhancer), first)


class _Strided(torch.nn.Module):
    """A stand-in network that needs sides divisible by 16 (as a 4-level U-Net) and records what it is given."""

    size_multiple = 16

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[int, int]] = []

    def forward(self, x):
        assert x.shape[-2] % 16 == 0 and x.shape[-1] % 16 == 0
        self.seen.append(tuple(x.shape[-2:]))
        return x[:, :3]


@pytest.mark.fault
@pytest.mark.parametrize("shape", [(1, 4096), (4096, 1), (3, 1300), (17, 240)])
def test_extreme_shapes_are_tiled_on_their_padded_size(shape):
    """A 1 x 1,048,576 strip is under the tile limit, but the network sees it padded to 16 rows:
    whether to tile is decided on the padded size, so no run exceeds the bound."""
    from enhance_stub import StubQuantiles

    net = _Strided()
    limit = shape[0] * shape[1]  # the strip itself is just within it; its padded size is not
    enhancer = Enhancer(StubQuantiles(), net, "low", tile_pixels=limit, tile=64, overlap=16)
    low = np.random.default_rng(0).integers(0, 60, (*shape, 3), dtype=np.uint8)
    out = enhancer(low)
    assert out.shape == low.shape
    assert max(h * w for h, w in net.seen) <= max(limit, 64 * 64), net.seen


def test_a_read_only_array_enhances_without_a_warning(enhancer):
    """np.asarray(PIL image) is read-only; torch warns on those unless the enhancer copies them."""
    import warnings

    low = darken(synthetic_photo(300, 420, seed=7), 0.05)
    low.setflags(write=False)
    tiled = Enhancer(enhancer.quantile_model, enhancer.network, enhancer.inputs, enhancer.histmap,
                     tile_pixels=100 * 100, tile=160, overlap=48)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tiled(low).shape == low.shape and enhancer(low).shape == low.shape
