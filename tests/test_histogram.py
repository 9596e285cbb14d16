"""Percentile extraction and histogram helpers (lowlight.histbranch.histogram)."""

from __future__ import annotations

import numpy as np
import pytest

from lowlight.histbranch.histogram import (bin_edges, channel_counts, luma, luma_counts, luma_u8, normalized_histograms,
                                percentile_levels, percentiles, percentiles_from_counts, pil_view)


def _images():
    rng = np.random.default_rng(0)
    yield rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    yield (rng.random((17, 23, 3)) ** 4 * 255).astype(np.uint8)  # dark, skewed, odd sizes
    yield np.zeros((5, 7, 3), np.uint8)
    yield np.full((3, 3, 3), 255, np.uint8)
    yield rng.integers(0, 256, (1, 1, 3), dtype=np.uint8)
    yield rng.integers(0, 256, (2, 1, 3), dtype=np.uint8)  # two pixels: interpolation everywhere


@pytest.mark.parametrize("step", [5, 10, 25, 1])
def test_percentiles_equal_numpy_percentile(step):
    imgs = list(_images())
    got = percentiles(imgs, step=step)
    q = np.arange(0, 101, step)
    for img, p in zip(imgs, got):
        ref = np.percentile(img.reshape(-1, 3).astype(np.float64), q, axis=0).T  # (3, K)
        np.testing.assert_allclose(p, ref, rtol=0, atol=1e-9)
    assert got.shape == (len(imgs), 3, len(q))


def test_percentiles_from_counts_batched_and_empty():
    rng = np.random.default_rng(1)
    values = rng.integers(0, 256, (4, 1000))
    counts = np.stack([np.bincount(v, minlength=256) for v in values])
    q = np.arange(0, 101, 5)
    np.testing.assert_allclose(percentiles_from_counts(counts, q), np.percentile(values, q, axis=1).T, atol=1e-9)
    with pytest.raises(ValueError, match="empty"):
        percentiles_from_counts(np.zeros(256), q)


def test_percentile_levels():
    assert percentile_levels(5).tolist() == list(range(0, 101, 5))
    for bad in (3, 0, 7):
        with pytest.raises(ValueError, match="divides 100"):
            percentile_levels(bad)


def test_channel_counts_match_bincount():
    img = next(_images())
    counts = channel_counts(img)
    for c in range(3):
        assert counts[c].tolist() == np.bincount(img[..., c].ravel(), minlength=256).tolist()
    assert np.asarray(pil_view(img).histogram()).reshape(3, 256).tolist() == counts.tolist()


def test_bad_images_are_refused():
    with pytest.raises(ValueError, match="uint8"):
        percentiles([np.zeros((4, 4, 3), np.float32)])
    with pytest.raises(ValueError, match="image 1"):
        percentiles([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8)])
    with pytest.raises(ValueError, match="no pixels"):
        channel_counts(np.zeros((0, 4, 3), np.uint8))


def test_luma_u8_is_bt601_within_rounding():
    img = next(_images())
    assert np.abs(luma_u8(img).astype(float) - luma(img)).max() <= 0.5 + 1e-6
    assert luma_counts(img).sum() == img.shape[0] * img.shape[1]


@pytest.mark.parametrize("bins,gamma", [(64, 1.0), (64, 2.0), (256, 2.0), (8, 3.0), (200, 1.5), (256, 4.0)])
def test_bin_edges_cover_all_levels_once(bins, gamma):
    e = bin_edges(bins, gamma)
    assert len(e) == bins + 1 and e[0] == 0 and e[-1] == 256
    assert np.all(np.diff(e) >= 1)
    if gamma > 1 and bins < 128:  # finer at the dark end
        assert e[1] - e[0] < e[-1] - e[-2]


def test_normalized_histograms_sum_to_one_and_rebin():
    img = next(_images())
    counts = channel_counts(img)
    h = normalized_histograms(counts, 16, 2.0)
    np.testing.assert_allclose(h.sum(axis=-1), 1.0)
    e = bin_edges(16, 2.0)
    first = counts[:, e[0]:e[1]].sum(axis=1) / counts.sum(axis=1)
    np.testing.assert_allclose(h[:, 0], first)
