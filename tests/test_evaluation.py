"""The evaluator against hand-computed values, a direct SSIM implementation and published LOL figures."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lowlight.errors import DataError
from lowlight.evaluation.folders import evaluate_dirs
from lowlight.evaluation.scores import (PSNR_CAP, gt_mean, natural_key, psnr, score_images,
                                 score_pair, ssim, summarize)

from conftest import darken, lol_root, synthetic_photo


# --------------------------------------------------------------------------- PSNR


def test_psnr_of_a_constant_offset_is_known():
    ref = np.random.default_rng(0).integers(0, 200, (8, 9, 3), dtype=np.uint8)
    # every value off by 10 -> MSE 100 -> 10 log10(255^2 / 100)
    assert psnr(ref + 10, ref) == pytest.approx(28.130803608679102, abs=1e-12)


def test_psnr_of_one_wrong_value():
    ref = np.zeros((4, 4, 3), np.uint8)
    pred = ref.copy()
    pred[1, 2, 0] = 255
    # MSE = 255^2 / 48 -> PSNR = 10 log10(48)
    assert psnr(pred, ref) == pytest.approx(10 * math.log10(48), abs=1e-12)
    assert psnr(ref, pred) == psnr(pred, ref)


def test_psnr_uses_signed_differences():
    # a uint8 subtraction would wrap 0 - 255 to 1 and report a near-perfect score
    ref = np.full((2, 2, 3), 255, np.uint8)
    pred = np.zeros_like(ref)
    assert psnr(pred, ref) == pytest.approx(0.0, abs=1e-12)


def test_identical_images_give_the_cap():
    img = synthetic_photo(16, 16)
    assert psnr(img, img) == PSNR_CAP


def test_dataset_psnr_is_mean_of_per_image_values_not_pooled():
    ref = np.full((12, 12, 3), 100, np.uint8)
    preds = {"a": ref + 1, "b": ref + 16}  # per image: MSE 1 and 256
    df = score_images(preds, {"a": ref, "b": ref}, workers=2)
    per_image = [10 * math.log10(255**2 / 1), 10 * math.log10(255**2 / 256)]
    pooled = 10 * math.log10(255**2 / ((1 + 256) / 2))
    assert summarize(df)["psnr"] == pytest.approx(np.mean(per_image), abs=1e-9)
    assert abs(summarize(df)["psnr"] - pooled) > 5  # the two definitions really differ here


# --------------------------------------------------------------------------- SSIM


def _ssim_direct(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. 2004, written out: 11x11 Gaussian (sigma 1.5) weighted moments over every
    window that lies inside the image, population (co)variances, mean over windows and channels."""
    r = np.arange(-5, 6)
    g = np.exp(-(r**2) / (2 * 1.5**2))
    w = np.outer(g, g)
    w /= w.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    out = []
    for c in range(3):
        px = np.lib.stride_tricks.sliding_window_view(x[..., c].astype(np.float64), (11, 11))
        py = np.lib.stride_tricks.sliding_window_view(y[..., c].astype(np.float64), (11, 11))
        mx, my = (px * w).sum((-1, -2)), (py * w).sum((-1, -2))
        vx = (px**2 * w).sum((-1, -2)) - mx**2
        vy = (py**2 * w).sum((-1, -2)) - my**2
        cxy = (px * py * w).sum((-1, -2)) - mx * my
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        out.append(s.mean())
    return float(np.mean(out))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ssim_matches_the_formula_written_out(seed):
    ref = synthetic_photo(17, 23, seed=seed)
    pred = darken(ref, factor=0.3, seed=seed)
    expected = _ssim_direct(pred, ref)
    assert 0.0 < expected < 0.99
    assert ssim(pred, ref) == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("shape", [(11, 11), (17, 23), (40, 31)])
def test_ssim_equals_scikit_image(shape):
    from skimage.metrics import structural_similarity

    ref = synthetic_photo(*shape, seed=4)
    pred = darken(ref, factor=0.2, seed=4)
    for p in (pred, gt_mean(pred, ref)):
        want = structural_similarity(p, ref, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=255, channel_axis=-1)
        assert ssim(p, ref) == pytest.approx(want, abs=1e-10)
    s = score_pair(pred, ref)
    assert s["ssim"] == ssim(pred, ref) and s["ssim_gt_mean"] == ssim(gt_mean(pred, ref), ref)


def test_ssim_of_identical_images_is_one_and_of_noise_is_low():
    ref = synthetic_photo(32, 32)
    noise = np.random.default_rng(0).integers(0, 256, ref.shape, dtype=np.uint8)
    assert ssim(ref, ref) == pytest.approx(1.0)
    assert ssim(noise, ref) < 0.2


def test_ssim_refuses_images_smaller_than_the_window():
    img = np.zeros((10, 40, 3), np.uint8)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(img, img)


# --------------------------------------------------------------------------- inputs


@pytest.mark.parametrize("fn", [psnr, ssim, gt_mean, score_pair])
def test_inputs_are_checked(fn):
    ref = synthetic_photo(16, 16)
    with pytest.raises(TypeError, match="uint8"):
        fn(ref.astype(np.float32), ref)
    with pytest.raises(ValueError, match="H x W x 3"):
        fn(ref[..., 0], ref[..., 0])
    with pytest.raises(ValueError, match="differ in size"):
        fn(ref[:, :15], ref)


# --------------------------------------------------------------------------- GT-mean


def _grey(img):
    return float((img.astype(np.float64) @ [0.299, 0.587, 0.114]).mean())


def test_gt_mean_scales_to_the_reference_grey_mean():
    ref = synthetic_photo(24, 32, seed=3)
    pred = darken(ref, factor=0.1)
    out = gt_mean(pred, ref)
    assert out.dtype == np.uint8 and out.shape == ref.shape
    assert _grey(pred) < 0.5 * _grey(ref)
    assert _grey(out) == pytest.approx(_grey(ref), abs=1.0)  # rounding and clipping only
    s = score_pair(pred, ref)
    assert s["psnr_gt_mean"] > s["psnr"] + 3


def test_gt_mean_by_hand():
    pred = np.full((3, 3, 3), 50, np.uint8)
    pred[0, 0] = [200, 200, 200]  # grey mean (8*50 + 200) / 9 = 66.67; scale 100 / 66.67 = 1.5
    ref = np.full((3, 3, 3), 100, np.uint8)
    out = gt_mean(pred, ref)
    assert out[1, 1].tolist() == [75, 75, 75]
    assert out[0, 0].tolist() == [255, 255, 255]  # 300 clipped


def test_gt_mean_leaves_matching_and_black_predictions_alone():
    ref = synthetic_photo(16, 16)
    assert np.array_equal(gt_mean(ref, ref), ref)
    black = np.zeros_like(ref)
    assert np.array_equal(gt_mean(black, ref), black)
    assert score_pair(black, ref)["psnr_gt_mean"] == score_pair(black, ref)["psnr"]


def test_score_pair_keys():
    ref = synthetic_photo(16, 16)
    assert set(score_pair(ref, ref)) == {"psnr", "ssim", "psnr_gt_mean", "ssim_gt_mean"}


# --------------------------------------------------------------------------- pairing


def test_score_images_names_every_unpaired_or_mismatched_image():
    a = synthetic_photo(16, 16)
    preds = {"1": a, "2": a, "extra": a}
    refs = {"1": a, "2": a[:, :12], "missing": a}
    with pytest.raises(DataError) as err:
        score_images(preds, refs)
    msg = str(err.value)
    assert "extra: prediction has no reference" in msg
    assert "missing: reference has no prediction" in msg
    assert "2: prediction and reference differ in size" in msg
    assert len(err.value.problems) == 3


def test_score_images_orders_stems_naturally_and_threads_do_not_change_results():
    refs = {str(i): synthetic_photo(16, 20, seed=i) for i in (10, 2, 1)}
    preds = {k: darken(v, seed=int(k)) for k, v in refs.items()}
    one = score_images(preds, refs, workers=1)
    two = score_images(preds, refs, workers=3)
    assert one["stem"].tolist() == ["1", "2", "10"]
    assert one.equals(two)
    assert sorted(["b10", "b2", "a"], key=natural_key) == ["a", "b2", "b10"]


def _save(folder: Path, name: str, img: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(folder / name)


def test_evaluate_dirs_pairs_by_stem_across_formats(tmp_path):
    refs = {f"{i}": synthetic_photo(20, 24, seed=i) for i in range(3)}
    preds = {k: darken(v, seed=int(k)) for k, v in refs.items()}
    for (k, p), fmt in zip(preds.items(), ["png", "bmp", "tif"]):  # lossless formats
        _save(tmp_path / "pred", f"{k}.{fmt}", p)
        _save(tmp_path / "ref", f"{k}.png", refs[k])
    (tmp_path / "pred" / "notes.txt").write_text("not an image, ignored")
    df, summary = evaluate_dirs(tmp_path / "pred", tmp_path / "ref", workers=2)
    expected = score_images(preds, refs, workers=1)
    assert df.equals(expected)
    assert summary == summarize(expected)
    assert summary["n_images"] == 3


def test_evaluate_dirs_errors_name_the_files(tmp_path):
    a = synthetic_photo(20, 24)
    _save(tmp_path / "pred", "1.png", a)
    _save(tmp_path / "pred", "2.png", a)
    _save(tmp_path / "pred", "extra.png", a)
    _save(tmp_path / "pred", "bad.png", a)
    _save(tmp_path / "ref", "1.png", a)
    _save(tmp_path / "ref", "2.png", a[:, :20])
    _save(tmp_path / "ref", "missing.jpg", a)
    _save(tmp_path / "ref", "bad.png", a)
    (tmp_path / "pred" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError) as err:
        evaluate_dirs(tmp_path / "pred", tmp_path / "ref")
    msg = str(err.value)
    assert f"{tmp_path / 'pred' / 'extra.png'}: prediction has no reference" in msg
    assert f"{tmp_path / 'ref' / 'missing.jpg'}: reference has no prediction" in msg
    assert f"{tmp_path / 'pred' / '2.png'}: size 24x20 differs from its reference" in msg
    assert f"{tmp_path / 'pred' / 'bad.png'}: not a readable image" in msg
    assert len(err.value.problems) == 4


def test_evaluate_dirs_refuses_ambiguous_stems_and_missing_folders(tmp_path):
    a = synthetic_photo(20, 24)
    _save(tmp_path / "pred", "1.png", a)
    _save(tmp_path / "pred", "1.bmp", a)
    _save(tmp_path / "ref", "1.png", a)
    with pytest.raises(DataError, match="ambiguous"):
        evaluate_dirs(tmp_path / "pred", tmp_path / "ref")
    with pytest.raises(DataError, match="reference folder does not exist"):
        evaluate_dirs(tmp_path / "pred", tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no prediction images"):
        evaluate_dirs(tmp_path / "empty", tmp_path / "ref")


@pytest.mark.fault
def test_images_smaller_than_the_ssim_window_are_one_line_naming_the_file(tmp_path, capsys):
    from lowlight.cli.main import main

    small, fine = synthetic_photo(8, 30, seed=1), synthetic_photo(20, 24, seed=2)
    for folder in ("pred", "ref"):
        _save(tmp_path / folder, "tiny.png", small)
        _save(tmp_path / folder, "ok.png", fine)
    with pytest.raises(DataError) as err:
        evaluate_dirs(tmp_path / "pred", tmp_path / "ref")
    assert err.value.problems == [f"{tmp_path / 'pred' / 'tiny.png'}: 30x8 pixels; SSIM needs images at least "
                                  "11x11 pixels (its window), so this image cannot be scored"]
    with pytest.raises(DataError, match="tiny: 30x8 pixels"):
        score_images({"tiny": small}, {"tiny": small})
    assert main(["evaluate", str(tmp_path / "pred"), str(tmp_path / "ref")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "tiny.png" in lines[0] and "11x11" in lines[0], lines


def test_evaluate_dirs_refuses_non_rgb_files(tmp_path):
    a = synthetic_photo(20, 24)
    _save(tmp_path / "pred", "1.png", a[..., 0])  # greyscale: never silently converted
    _save(tmp_path / "ref", "1.png", a)
    with pytest.raises(Exception, match="grayscale"):
        evaluate_dirs(tmp_path / "pred", tmp_path / "ref")


# --------------------------------------------------------------------------- published figures

LOL = lol_root()
needs_lol = pytest.mark.skipif(LOL is None, reason="shared LOL copy not found")


def _lol_high_dir(tmp_path: Path, split: str = "our485") -> Path:
    """The references of a LOL split with repeated files resolved.

    The shared copy keeps the 86 repeated high images as links to the first copy;
    where the checkout stored a link as a small text file naming its target, a real
    symbolic link to that target is made here (every other file is linked as is).
    """
    src = LOL / split / "high"
    out = tmp_path / f"{split}_high"
    out.mkdir()
    for f in src.iterdir():
        target = f.resolve()
        if target.stat().st_size < 256:
            target = (f.parent / f.read_text().strip()).resolve()
        os.symlink(target, out / f.name)
    return out


def _lol_pair(stem: str) -> tuple[np.ndarray, np.ndarray]:
    from lowlight.imageio import read_rgb

    high = LOL / "our485" / "high" / f"{stem}.webp"
    if high.stat().st_size < 256:
        high = high.parent / high.read_text().strip()
    return read_rgb(LOL / "our485" / "low" / f"{stem}.webp"), read_rgb(high)


@pytest.mark.lol
@needs_lol
@pytest.mark.parametrize("stem, want_psnr, want_ssim", [("2", 8.3746, 0.2862), ("6", 5.9445, 0.1536)])
def test_lol_single_pairs_match_reference_figures(stem, want_psnr, want_ssim):
    low, high = _lol_pair(stem)
    assert psnr(low, high) == pytest.approx(want_psnr, abs=5e-5)
    assert ssim(low, high) == pytest.approx(want_ssim, abs=5e-5)


@pytest.mark.slow
@pytest.mark.lol
@needs_lol
def test_lol_our485_unprocessed_matches_reference_figures(tmp_path):
    """All 485 pairs (about 1-2 minutes on 2 cores): 7.742 dB, SSIM 0.1806, GT-mean 17.94 dB."""
    df, s = evaluate_dirs(LOL / "our485" / "low", _lol_high_dir(tmp_path))
    assert s["n_images"] == 485
    assert s["psnr"] == pytest.approx(7.742, abs=5e-4)
    assert s["ssim"] == pytest.approx(0.1806, abs=5e-5)
    assert s["psnr_gt_mean"] == pytest.approx(17.94, abs=5e-3)


@pytest.mark.lol
@pytest.mark.skipif(LOL is None or not (LOL / "eval15" / "low").is_dir(), reason="LOL eval15 not in the shared copy")
def test_lol_eval15_unprocessed_matches_the_literature(tmp_path):
    _, s = evaluate_dirs(LOL / "eval15" / "low", _lol_high_dir(tmp_path, "eval15"))
    assert s["n_images"] == 15
    assert s["psnr"] == pytest.approx(7.77, abs=5e-3)


def test_blur_without_scipy_is_scipys():
    """The plain install has no scipy: its NumPy blur gives scipy's sums (SSIM to 1e-10)."""
    from scipy.ndimage import correlate1d

    from lowlight.evaluation import scores

    rng = np.random.default_rng(0)
    for shape in [(3, 40, 56), (3, 4, 3), (3, 1, 1)]:
        x = rng.random(shape) * 255
        want = correlate1d(correlate1d(x, scores._TAPS, axis=-1, mode="reflect"), scores._TAPS, axis=-2,
                           mode="reflect")
        np.testing.assert_allclose(scores._correlate_reflect(scores._correlate_reflect(x, -1), -2), want, atol=1e-10)
