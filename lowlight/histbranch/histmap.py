"""Histogram mapping: turn 21 predicted percentiles into a target histogram and map the
dark image onto it with an exact CDF-matching lookup table (the first half of the
learned histogram-mapping method; the quantile model in :mod:`lowlight.histbranch.quantiles`
predicts the percentiles).

Target histogram, per channel, on the 256 levels:

* ``method='interp'`` (default): the quantile function interpolated linearly (hence
  monotonically) between the 21 percentiles, i.e. 5 % of the mass spread uniformly
  between consecutive percentiles; its CDF is computed exactly per level.
* ``method='kde'``: a Gaussian kernel density estimate over the 21 percentile values.
  ``bandwidth`` is the kernel's standard deviation in 8-bit levels. ``scipy.stats.gaussian_kde``
  reads its ``bw_method`` scalar as a *factor* of the sample's standard deviation
  (kernel std = factor * std(sample, ddof=1)), so the equivalent factor is
  ``bandwidth / std(sample, ddof=1)`` (:func:`kde_factor`). Passing the width itself as
  ``bw_method`` was one defect of the published version: with percentiles spread over
  ~60 levels a "6" became a kernel 360 levels wide. The density is evaluated here in
  closed form on the 256 level centres (a vectorised Gaussian sum, equal to scipy's,
  see the tests), which also works when all percentiles coincide (scipy cannot).
  ``kde_weights='trapezoid'`` gives the 0th and 100th percentiles half weight: with
  equal weights each extreme carries 1/21 of the mass although almost no pixel is there.

Mapping: each input level ``v`` holds the pixels ranked in the band ``(F(v-1), F(v)]`` of
the image's own CDF. The lookup table sends ``v`` to the *mean* of the target quantile
function over that band (the least-squares monotone transport between the two discrete
distributions). Mapping an image onto its own histogram is the identity, and mapping
onto a target reproduces the target's CDF to within one source level's mass. Classic
histogram matching (the target level at the band's upper end) biases every band upward.

``space='luminance'`` maps BT.601 luma and scales R, G, B by the luma gain, keeping the
chroma ratios; its target percentiles are the luma-weighted sum of the channel
percentiles (exact when the three channels are comonotone). On LOL it keeps the dark
shots' colour casts and amplifies their chroma noise.

Contrast limit (``max_slope``, on by default at 1.5): each table's log-log slope is capped
and its mean level kept (:mod:`lowlight.histbranch.contrast_limit`), so a narrow histogram
peak such as a clear sky is not stretched into blotches.

The measured choices (interp vs kde, weights, lookup, rgb vs luminance) are in the README,
"Histogram-branch choices"; each run's figures in ``metrics/histmap.json``.
"""

from __future__ import annotations

import numpy as np

from lowlight.config import HistmapConfig
from lowlight.histbranch.contrast_limit import limit_contrast
from lowlight.histbranch.histogram import LEVELS, LUMA_WEIGHTS, pil_view

__all__ = [
    "percentile_weights",
    "kde_factor",
    "kde_density",
    "kde_pdf",
    "interp_pdf",
    "target_pdf",
    "match_lut",
    "limit_contrast",
    "map_to_histogram",
    "map_image",
]

_LEVEL_VALUES = np.arange(LEVELS, dtype=np.float64)


# --------------------------------------------------------------------------- target histograms


def percentile_weights(k: int, kind: str = "trapezoid") -> np.ndarray:
    """Weights of ``k`` evenly spaced percentiles (0..100) as KDE samples; they sum to 1.

    ``equal``: 1/k each, which puts 1/21 of the mass on the 0th and on the 100th
    percentile, whose true share is ~0 (they are the extremes). ``trapezoid``: the ends
    get half weight, i.e. each of the 20 gaps between percentiles carries its 5 % split
    between its two ends: the trapezoid rule for the quantile function.
    """
    if k < 2:
        raise ValueError("need at least two percentiles")
    if kind == "equal":
        return np.full(k, 1.0 / k)
    if kind == "trapezoid":
        w = np.full(k, 1.0 / (k - 1))
        w[[0, -1]] *= 0.5
        return w
    raise ValueError(f"unknown percentile weighting {kind!r}; use 'trapezoid' or 'equal'")


def kde_factor(sample: np.ndarray, bandwidth: float, weights: np.ndarray | None = None) -> float:
    """The ``bw_method`` scalar that makes ``scipy.stats.gaussian_kde(sample, bw_method=...,
    weights=weights)`` use a Gaussian kernel of standard deviation ``bandwidth`` (in the
    sample's units, here 8-bit levels).

    scipy's kernel covariance is ``factor**2 * cov(sample)`` where ``cov`` is the unbiased
    (weighted) variance ``sum w (x - mean)^2 / (1 - sum w^2)`` with the weights normalised
    to sum 1 (``ddof=1`` when unweighted), so ``factor = bandwidth / sqrt(cov)``.
    """
    sample = np.asarray(sample, dtype=np.float64).ravel()
    if sample.size < 2:
        raise ValueError("a KDE factor needs at least two sample values")
    w = np.full(sample.size, 1.0 / sample.size) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    mean = w @ sample
    var = (w @ (sample - mean) ** 2) / (1.0 - w @ w)
    if var <= 1e-12 * (1.0 + mean * mean):  # zero up to rounding
        raise ValueError("all sample values are equal: scipy's gaussian_kde has no factor for a zero spread")
    return float(bandwidth) / float(np.sqrt(var))


def kde_density(samples: np.ndarray, bandwidth: float, points: np.ndarray = _LEVEL_VALUES,
                weights: np.ndarray | None = None) -> np.ndarray:
    """Gaussian KDE with kernel std ``bandwidth`` evaluated at ``points``: ``(..., len(points))``.

    ``samples``: ``(..., K)``, each row one sample (``weights``: ``(K,)``, default equal).
    This is the density ``scipy.stats.gaussian_kde(row, bw_method=kde_factor(row, bandwidth,
    weights), weights=weights)`` evaluates (tested), computed as one vectorised Gaussian sum.
    """
    samples = np.asarray(samples, dtype=np.float64)
    k = samples.shape[-1]
    w = np.full(k, 1.0 / k) if weights is None else np.asarray(weights, np.float64) / np.sum(weights)
    z = (np.asarray(points, dtype=np.float64)[:, None] - samples[..., None, :]) / bandwidth
    return (np.exp(-0.5 * z * z) @ w) / (bandwidth * np.sqrt(2.0 * np.pi))


def kde_pdf(percentiles: np.ndarray, bandwidth: float, weights: str = "trapezoid") -> np.ndarray:
    """Target histogram (sums to 1 over 256 levels) from a KDE of the percentile values.

    The density is read at the level centres; mass that the kernels put outside [0, 255]
    is dropped by the normalisation (reflecting it back at the ends measured worse on LOL).
    """
    q = np.asarray(percentiles, dtype=np.float64)
    dens = kde_density(q, bandwidth, weights=percentile_weights(q.shape[-1], weights))
    return dens / dens.sum(axis=-1, keepdims=True)


def interp_pdf(percentiles: np.ndarray) -> np.ndarray:
    """Target histogram whose quantile function is linear between consecutive percentiles.

    Each of the ``K-1`` segments holds ``1/(K-1)`` of the mass, spread uniformly over
    ``[Q_k, Q_k+1]``; level ``v`` receives the mass in ``[v-0.5, v+0.5)``. A zero-width
    segment (repeated percentiles, e.g. a saturated image) is a point mass at ``Q_k``.
    """
    q = np.asarray(percentiles, dtype=np.float64)
    lo, hi = q[..., :-1, None], q[..., 1:, None]  # (..., K-1, 1)
    edges = np.arange(LEVELS + 1, dtype=np.float64) - 0.5
    edges[0], edges[-1] = -np.inf, np.inf  # levels 0 and 255 take everything beyond them
    width = hi - lo
    safe = np.where(width > 0, width, 1.0)
    frac = np.where(width > 0, np.clip((edges - lo) / safe, 0.0, 1.0), (edges >= lo).astype(np.float64))
    cdf = frac.mean(axis=-2)  # (..., 257): CDF at the level edges
    return np.diff(cdf, axis=-1)


def target_pdf(percentiles: np.ndarray, cfg: HistmapConfig) -> np.ndarray:
    """Target histogram(s) from percentiles ``(..., K)`` according to ``cfg.method``."""
    # sorted and clipped so that any input (a hand-made or foreign prediction) is a valid
    # quantile function; the quantile model's outputs already are
    q = np.clip(np.sort(np.asarray(percentiles, dtype=np.float64), axis=-1), 0.0, 255.0)
    if cfg.method == "kde":
        return kde_pdf(q, cfg.bandwidth, cfg.kde_weights)
    if cfg.method == "interp":
        return interp_pdf(q)
    raise ValueError(f"unknown histmap method {cfg.method!r}")


# --------------------------------------------------------------------------- CDF matching


def match_lut(counts: np.ndarray, pdf: np.ndarray) -> np.ndarray:
    """Float lookup table(s) ``(..., 256)`` mapping source levels onto a target histogram.

    ``counts``: source level counts ``(..., 256)``; ``pdf``: target histogram ``(..., 256)``.
    Level ``v`` (source CDF band ``(F(v-1), F(v)]``) goes to the mean of the target's
    quantile function over that band: ``(G(F(v)) - G(F(v-1))) / (F(v) - F(v-1))`` with
    ``G(p) = integral_0^p Q(s) ds``, which for a histogram is piecewise linear in ``p``.
    Unused levels get ``Q(F(v))`` so the table stays non-decreasing.
    """
    counts = np.asarray(counts, dtype=np.float64)
    pdf = np.clip(np.asarray(pdf, dtype=np.float64), 0.0, None)
    n = counts.sum(axis=-1, keepdims=True)
    f_hi = np.cumsum(counts, axis=-1) / np.maximum(n, 1.0)
    f_hi[..., -1] = 1.0
    f_lo = np.concatenate([np.zeros_like(f_hi[..., :1]), f_hi[..., :-1]], axis=-1)

    pt = pdf / pdf.sum(axis=-1, keepdims=True)
    ft = np.cumsum(pt, axis=-1)
    ft[..., -1] = 1.0
    ct = np.cumsum(pt * _LEVEL_VALUES, axis=-1)  # G at the target's own CDF steps
    ft0 = np.concatenate([np.zeros_like(ft[..., :1]), ft], axis=-1)  # F before level u
    ct0 = np.concatenate([np.zeros_like(ct[..., :1]), ct], axis=-1)

    rows_t, shape = ft.reshape(-1, LEVELS), f_hi.shape

    def integral(p):
        # first target level whose CDF reaches p, then G is linear inside that level
        rows_p = p.reshape(-1, LEVELS)
        u = np.stack([np.searchsorted(t, r, side="left") for t, r in zip(rows_t, rows_p)]).reshape(shape)
        u = np.minimum(u, LEVELS - 1)
        f_before = np.take_along_axis(ft0, u, axis=-1)
        g_before = np.take_along_axis(ct0, u, axis=-1)
        return g_before + (p - f_before) * u, u

    g_hi, u_hi = integral(f_hi)
    g_lo, _ = integral(f_lo)
    width = f_hi - f_lo
    used = width > 0
    lut = np.where(used, (g_hi - g_lo) / np.where(used, width, 1.0), u_hi)
    return np.clip(lut, 0.0, 255.0)


def _lut_u8(lut: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(lut), 0, 255).astype(np.uint8)


def _check_inputs(low: np.ndarray, percentiles: np.ndarray) -> np.ndarray:
    if not isinstance(low, np.ndarray) or low.dtype != np.uint8 or low.ndim != 3 or low.shape[2] != 3:
        desc = f"{low.dtype} {low.shape}" if isinstance(low, np.ndarray) else type(low).__name__
        raise ValueError(f"map_image expects a uint8 H x W x 3 RGB image, got {desc}")
    q = np.asarray(percentiles, dtype=np.float64)
    whole = q.ndim == 2 and q.shape[0] == 3
    local = q.ndim == 4 and q.shape[0] == q.shape[1] and q.shape[2] == 3
    if not (whole or local) or q.shape[-1] < 2:
        raise ValueError(f"map_image expects percentiles of shape (3, K) or per cell (G, G, 3, K), got {q.shape}")
    if not np.all(np.isfinite(q)):
        raise ValueError("map_image got non-finite percentiles")
    return q


def map_to_histogram(low: np.ndarray, pdf: np.ndarray, max_slope: float = 0.0) -> np.ndarray:
    """Map each channel of ``low`` (uint8 H x W x 3) onto the target histograms ``pdf`` (3, 256),
    the tables' contrast limited by ``max_slope`` (:func:`limit_contrast`; 0 = exact matching)."""
    # Pillow's histogram and per-band lookup table (C, no copies; see histogram.pil_view)
    pil = pil_view(low)
    counts = np.asarray(pil.histogram(), dtype=np.float64).reshape(3, LEVELS)
    luts = _lut_u8(limit_contrast(match_lut(counts, pdf), counts, max_slope))
    out = np.asarray(pil.point(luts.ravel().tolist()))
    # np.asarray of a Pillow image is read-only; callers own their result. Adopting
    # Pillow's buffer when numpy allows it avoids a copy.
    try:
        out.setflags(write=True)
    except ValueError:
        out = out.copy()
    return out


def map_image(low: np.ndarray, percentiles: np.ndarray, cfg: HistmapConfig) -> np.ndarray:
    """Map ``low`` (uint8 H x W x 3) onto the histogram described by ``percentiles`` (3, K), or
    each cell of a grid onto its own for per-cell percentiles (G, G, 3, K) (local exposure)."""
    q = _check_inputs(low, percentiles)
    if q.ndim == 4:
        return _map_local(low, q, cfg)
    if cfg.space == "rgb":
        return map_to_histogram(low, target_pdf(q, cfg), cfg.max_slope)
    if cfg.space == "luminance":
        return _map_luminance(low, q, cfg)
    raise ValueError(f"unknown histmap space {cfg.space!r}")


def _map_local(low: np.ndarray, q: np.ndarray, cfg: HistmapConfig) -> np.ndarray:
    """Each cell of the grid onto its own predicted histogram, the tables blended bilinearly
    between cell centres (:mod:`lowlight.histbranch.regions`)."""
    from lowlight.histbranch.regions import blend_tables, region_counts

    if cfg.space != "rgb":
        raise ValueError(f"per-cell percentiles map in histmap.space 'rgb' only, not {cfg.space!r}")
    counts = region_counts(low, q.shape[0])
    luts = limit_contrast(match_lut(counts, target_pdf(q, cfg)), counts, cfg.max_slope)
    return blend_tables(low, luts)


def _map_luminance(low: np.ndarray, q: np.ndarray, cfg: HistmapConfig) -> np.ndarray:
    pil = pil_view(low)
    yq = pil.convert("L")  # 8-bit BT.601 luma (Pillow, in C) for the histogram and the table
    counts = np.asarray(yq.histogram(), dtype=np.float64)
    lut = limit_contrast(match_lut(counts, target_pdf(LUMA_WEIGHTS @ q, cfg)), counts, cfg.max_slope)
    rgb = low.astype(np.float32)
    y = rgb @ LUMA_WEIGHTS.astype(np.float32)
    y_new = np.take(lut.astype(np.float32), np.asarray(yq))
    # scale R, G, B by the luma gain (chroma ratios kept); a black pixel becomes grey
    dark = y < 0.5
    rgb *= (y_new / np.where(dark, 1.0, y))[..., None]
    rgb[dark] = y_new[dark, None]
    np.rint(rgb, out=rgb)
    np.clip(rgb, 0, 255, out=rgb)
    return rgb.astype(np.uint8)
