"""The quantile model: predict the well-lit image's 21 percentiles per channel from the
dark image, with gradient-boosted trees (XGBoost).

This is the regression half of the learned histogram-mapping method (the other half,
:mod:`lowlight.histmap`, maps the dark image onto the predicted percentiles). One
published version trained XGBoost with squared error and called it quantile
regression; here the objective is an explicit choice: ``squared_error`` (regression of
the percentile *values*, which is what the mapping's PSNR rewards) or ``quantile``
(XGBoost's pinball loss ``reg:quantileerror`` at ``quantile_alpha``, i.e. a conditional
median for 0.5).

Rows are (image, channel) pairs. Features (see :func:`feature_names`):

* the channel's normalised histogram (``bins`` bins, narrow at the dark end for
  ``bin_gamma > 1``), its 21 percentiles, a channel one-hot, its mean and std;
* the image's other channels (means, stds, percentiles) and its luma percentiles;
* ``texture``: mean absolute horizontal/vertical luma differences and Immerkaer's
  noise estimate, raw and relative to the mean luma. Shot and read noise relative to
  the signal say how short the exposure was, which the histogram alone cannot;
* ``grid``: mean luma on a ``grid x grid`` layout, raw and relative to the image mean
  (where the light falls says something about how the scene would look lit).

Targets are the well-lit channel's percentiles. Outputs are monotone non-decreasing
along the percentile axis and inside [0, 255] *by construction*: for ``target=values``
the raw predictions are sorted and clipped; for ``target=increments`` the model predicts
the 0th percentile and the 20 gaps, negative gaps are cut to zero, the gaps are summed
and the result clipped.

Strategies: ``one_output_per_tree`` and ``multi_output_tree`` are XGBoost's own
multi-target modes; ``per_percentile`` trains one single-target booster per percentile
(needed for ``reg:quantileerror``, which XGBoost does not support multi-target) and merges
them into one multi-target booster, so every strategy saves as one XGBoost ``.ubj`` file
and predicts in one call. The file carries this module's settings in a booster attribute
(JSON), never a pickle.

Measured on LOL (prepare stage's split: 388 train / 97 val pairs; val MAE in 8-bit levels,
then val PSNR of the interp mapping): default (one_output_per_tree, squared error, values,
texture + grid) 18.33 / 20.25 dB; per_percentile 18.30 / 20.26 (same algorithm, twice the
fit time); multi_output_tree 19.19 / 19.87; pinball loss (alpha 0.5, per_percentile)
18.60 / 19.94; increments 19.96 / 19.81; without texture and grid features 19.43 / 19.87.
Squared error wins on PSNR because the mapping's squared error is, to first order, the
squared error of the predicted quantile function. The tree settings (depth 3, 20 rows per
leaf, 400 rounds at 0.03, subsample 0.7) come from grouped 5-fold cross-validation on all
485 pairs (mean PSNR 19.89 dB against 19.81 for depth 4 / 1 row per leaf / 300 at 0.05).
The references' brightness is the hard part: the dark shot's own brightness barely
predicts it (see lowlight.eda), and errors of 20-50 levels in the mid percentiles remain.
"""

from __future__ import annotations

import json
import os
import struct
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from .atomic import atomic_path, write_json
from .config import QuantilesConfig, from_dict, to_dict
from .errors import DataError
from .histogram import LEVELS, normalized_histograms, percentile_levels, percentiles_from_counts, pil_view

__all__ = [
    "FORMAT",
    "feature_names",
    "image_features",
    "features",
    "targets",
    "QuantileModel",
    "train_quantile_model",
    "cross_fit",
    "write_predictions",
    "read_predictions",
]

FORMAT = "lowlight.quantiles/1"
_ATTR = "lowlight_quantiles"
_OBJECTIVES = {"squared_error": "reg:squarederror", "quantile": "reg:quantileerror"}


# --------------------------------------------------------------------------- features


def feature_names(cfg: QuantilesConfig, step: int = 5) -> list[str]:
    """Column names of :func:`image_features` rows, in order."""
    q = [f"{int(p):03d}" for p in percentile_levels(step)]
    names = [f"hist{i:03d}" for i in range(cfg.bins)]
    names += [f"p{p}" for p in q] + ["is_r", "is_g", "is_b", "mean", "std"]
    names += ["mean_r", "mean_g", "mean_b", "std_r", "std_g", "std_b"]
    names += [f"other{j}_p{p}" for j in (1, 2) for p in q]
    names += [f"luma_p{p}" for p in q]
    if cfg.texture:
        names += ["grad_x", "grad_y", "noise", "grad_x_rel", "grad_y_rel", "noise_rel"]
    if cfg.grid:
        cells = [f"{r}{c}" for r in range(cfg.grid) for c in range(cfg.grid)]
        names += [f"grid{rc}" for rc in cells] + [f"grid_rel{rc}" for rc in cells]
    return names


def _texture(y: np.ndarray) -> np.ndarray:
    """Mean |dx|, |dy| and Immerkaer's (1996) noise sigma of an 8-bit luma plane."""
    yi = y.astype(np.int16)
    h, w = yi.shape
    gx = float(np.abs(np.diff(yi, axis=1)).mean()) if w > 1 else 0.0
    gy = float(np.abs(np.diff(yi, axis=0)).mean()) if h > 1 else 0.0
    if h < 3 or w < 3:
        return np.array([gx, gy, 0.0])
    # the 3x3 mask [[1,-2,1],[-2,4,-2],[1,-2,1]] is the outer product of [1,-2,1]: two passes
    d2x = yi[:, :-2] - 2 * yi[:, 1:-1] + yi[:, 2:]
    d2 = d2x[:-2] - 2 * d2x[1:-1] + d2x[2:]
    sigma = np.sqrt(np.pi / 2) / 6.0 * float(np.abs(d2).mean())
    return np.array([gx, gy, sigma])


def _grid_means(y: np.ndarray, grid: int) -> np.ndarray:
    """Mean of ``y`` over a ``grid x grid`` layout of near-equal blocks (any image size)."""
    h, w = y.shape
    if h < grid or w < grid:  # tiny images: repeat pixels so every block is non-empty
        y = np.repeat(np.repeat(y, -(-grid // h), axis=0), -(-grid // w), axis=1)
        h, w = y.shape
    rows = (np.arange(grid) * h) // grid
    cols = (np.arange(grid) * w) // grid
    sums = np.add.reduceat(np.add.reduceat(y, rows, axis=0, dtype=np.float64), cols, axis=1)
    sizes = np.outer(np.diff(np.append(rows, h)), np.diff(np.append(cols, w)))
    return (sums / sizes).ravel()


def image_features(img: np.ndarray, cfg: QuantilesConfig, step: int = 5) -> np.ndarray:
    """Feature rows of one uint8 RGB image: ``(3, n_features)`` float32, one row per channel."""
    q = percentile_levels(step)
    pil = pil_view(img)
    counts = np.asarray(pil.histogram(), dtype=np.float64).reshape(3, LEVELS)
    luma = pil.convert("L")  # BT.601 in C, rounded to 8 bits
    y_counts = np.asarray(luma.histogram(), dtype=np.float64)
    n = counts[0].sum()
    levels = np.arange(LEVELS, dtype=np.float64)
    mean = counts @ levels / n
    std = np.sqrt(np.maximum(counts @ levels**2 / n - mean**2, 0.0))
    pct = percentiles_from_counts(counts, q)
    y_pct = percentiles_from_counts(y_counts, q)
    hist = normalized_histograms(counts, cfg.bins, cfg.bin_gamma)

    shared = [mean, std]
    extra = []
    if cfg.texture or cfg.grid:
        y = np.asarray(luma)
        y_mean = float(y_counts @ levels / n)
    if cfg.texture:
        tex = _texture(y)
        extra.append(np.concatenate([tex, tex / (y_mean + 1.0)]))
    if cfg.grid:
        g = _grid_means(y, cfg.grid)
        extra.append(np.concatenate([g, g / (y_mean + 1.0)]))
    rows = []
    for c in range(3):
        onehot = np.eye(3)[c]
        others = pct[[(c + 1) % 3, (c + 2) % 3]].ravel()
        rows.append(np.concatenate([hist[c], pct[c], onehot, [mean[c], std[c]], *shared, others, y_pct, *extra]))
    return np.asarray(rows, dtype=np.float32)


def features(images: Sequence[np.ndarray], cfg: QuantilesConfig, step: int = 5) -> np.ndarray:
    """Feature rows of many images: ``(N, 3, n_features)`` float32."""
    if len(images) == 0:
        return np.zeros((0, 3, len(feature_names(cfg, step))), dtype=np.float32)
    return np.stack([image_features(img, cfg, step) for img in images])


def targets(highs: Sequence[np.ndarray], step: int = 5) -> np.ndarray:
    """The well-lit images' percentiles: ``(N, 3, K)``."""
    from .histogram import percentiles

    return percentiles(highs, step)


# --------------------------------------------------------------------------- target space


def _encode(y: np.ndarray, kind: str) -> np.ndarray:
    if kind == "values":
        return y
    return np.concatenate([y[..., :1], np.diff(y, axis=-1)], axis=-1)


def _decode(t: np.ndarray, kind: str) -> np.ndarray:
    """Raw model outputs -> percentiles, monotone and inside [0, 255] whatever the model says."""
    t = np.asarray(t, dtype=np.float64)
    if kind == "values":
        y = np.sort(t, axis=-1)
    else:
        y = np.cumsum(np.concatenate([t[..., :1], np.clip(t[..., 1:], 0.0, None)], axis=-1), axis=-1)
    return np.clip(y, 0.0, 255.0)


# --------------------------------------------------------------------------- the model


def _xgb():
    # XGBoost's OpenMP threads spin while waiting for each other. On a machine whose cores
    # are busy with other work that spinning is ruinous: fitting the default model on LOL
    # with 2 threads took 90 s instead of 13 s. Passive waiting costs nothing measurable on
    # an idle machine. libgomp reads this once, when XGBoost's library loads; a value the
    # user set is kept.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import xgboost

    return xgboost


def _merge_single_target(boosters: list, base_scores: list[float]) -> "object":
    """One multi-target booster (one tree per target per round) from K single-target ones.

    XGBoost's ``one_output_per_tree`` model is exactly this layout: trees of round r are
    ``[target 0, ..., target K-1]`` with ``tree_info`` naming the target, and a vector
    ``base_score``. The result predicts what the K boosters predict (tested).
    """
    xgb = _xgb()
    models = [json.loads(b.save_raw("json")) for b in boosters]
    k = len(models)
    per = [m["learner"]["gradient_booster"]["model"]["trees"] for m in models]
    rounds = len(per[0])
    if any(len(t) != rounds for t in per):
        raise ValueError("per-percentile boosters must have the same number of rounds to merge")
    merged = models[0]
    gb = merged["learner"]["gradient_booster"]["model"]
    trees, info = [], []
    for r in range(rounds):
        for j in range(k):
            tree = dict(per[j][r])
            tree["id"] = len(trees)
            trees.append(tree)
            info.append(j)
    gb["trees"] = trees
    gb["tree_info"] = info
    gb["iteration_indptr"] = [r * k for r in range(rounds + 1)]
    gb["gbtree_model_param"]["num_trees"] = str(len(trees))
    lp = merged["learner"]["learner_model_param"]
    lp["num_target"] = str(k)
    lp["base_score"] = "[" + ",".join(f"{s:.9E}" for s in base_scores) + "]"
    # prediction is the identity transform for both objectives; XGBoost's quantile loss
    # refuses multi-target labels at load, so the merged booster is tagged squared error.
    # The real objective is kept in the lowlight attribute.
    merged["learner"]["objective"] = {"name": "reg:squarederror", "reg_loss_param": {"scale_pos_weight": "1"}}
    out = xgb.Booster()
    out.load_model(bytearray(json.dumps(merged).encode()))
    return out


def _base_score(booster) -> float:
    cfg = json.loads(booster.save_config())
    raw = cfg["learner"]["learner_model_param"]["base_score"]
    return float(json.loads(raw)[0]) if raw.startswith("[") else float(raw)


MAX_MODEL_BYTES = 256 * 2**20  # the shipped model is 9 MB; a file past this is refused before it is read
# UBJSON's number markers and their big-endian layouts
_UBJ_NUMBERS = dict(zip(b"iUIlLdD", (">b", ">B", ">h", ">i", ">q", ">f", ">d")))
_UBJ_STRUCTS = {m: struct.Struct(f) for m, f in _UBJ_NUMBERS.items()}
_UBJ_DTYPES = {m: np.dtype(f) for m, f in _UBJ_NUMBERS.items()}
_UBJ_LENGTHS = {m: s for m, s in _UBJ_STRUCTS.items() if m not in b"dD"}


def _read_ubjson(data: bytes, max_depth: int = 32):
    """Decode the UBJSON that XGBoost writes (``.ubj``), numeric arrays as numpy arrays.

    The model is read and checked here, before XGBoost sees it, because a crafted
    multi-output tree crashes XGBoost already when it dumps the model (``save_raw``).
    Strict where XGBoost's writer is: no duplicate keys, no typed containers of
    non-numbers, no nesting past ``max_depth``; anything else raises ValueError.
    """
    end = len(data)

    def length(pos):
        st = _UBJ_LENGTHS.get(data[pos])
        if st is None:
            raise ValueError(f"expected a length at byte {pos}")
        n = st.unpack_from(data, pos + 1)[0]
        if n < 0 or n > end:
            raise ValueError(f"bad length {n} at byte {pos}")
        return n, pos + 1 + st.size

    def header(pos, depth):
        if depth > max_depth:
            raise ValueError(f"nested deeper than {max_depth} levels")
        kind = count = None
        if data[pos] == 0x24:  # '$': typed container
            kind, pos = data[pos + 1], pos + 2
            if kind not in _UBJ_DTYPES or data[pos] != 0x23:
                raise ValueError(f"typed container of {chr(kind)!r} at byte {pos}")
        if data[pos] == 0x23:  # '#': counted container
            count, pos = length(pos + 1)
        return kind, count, pos

    def text(pos):
        n, pos = length(pos)
        if pos + n > end:
            raise ValueError(f"truncated string at byte {pos}")
        return data[pos:pos + n].decode("utf-8"), pos + n

    def value(pos, depth):
        marker, pos = data[pos], pos + 1
        if marker == 0x7B:  # '{'
            return obj(pos, depth + 1)
        if marker == 0x5B:  # '['
            return array(pos, depth + 1)
        if marker == 0x53:  # 'S'
            return text(pos)
        if marker in b"TFZ":
            return {0x54: True, 0x46: False, 0x5A: None}[marker], pos
        st = _UBJ_STRUCTS.get(marker)
        if st is None:
            raise ValueError(f"unknown marker {chr(marker)!r} at byte {pos - 1}")
        return st.unpack_from(data, pos)[0], pos + st.size

    def array(pos, depth):
        kind, count, pos = header(pos, depth)
        if kind is not None:
            dtype = _UBJ_DTYPES[kind]
            return np.frombuffer(data, dtype, count=count, offset=pos), pos + count * dtype.itemsize
        out = []
        while (len(out) < count) if count is not None else data[pos] != 0x5D:  # ']'
            item, pos = value(pos, depth)
            out.append(item)
        return out, pos + (count is None)

    def obj(pos, depth):
        kind, count, pos = header(pos, depth)
        if kind is not None:
            raise ValueError(f"typed object at byte {pos}")
        out = {}
        while (len(out) < count) if count is not None else data[pos] != 0x7D:  # '}'
            key, pos = text(pos)
            if key in out:
                raise ValueError(f"duplicate key {key[:40]!r}")
            out[key], pos = value(pos, depth)
        return out, pos + (count is None)

    try:
        out, pos = value(0, 0)
    except (IndexError, struct.error) as exc:
        raise ValueError(f"truncated or malformed UBJSON ({exc})") from None
    if pos != end:
        raise ValueError(f"{end - pos} bytes after the end of the model")
    return out


def _no_duplicates(pairs):
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate keys in a JSON object")
    return out


def _parse_model(data: bytes) -> dict:
    """XGBoost's JSON or UBJSON model as a dict (ValueError if it is neither)."""
    if data[:1] != b"{":
        raise ValueError("neither UBJSON nor JSON")
    if data[1:2] in (b'"', b" ", b"\n", b"\r", b"\t", b"}"):
        model = json.loads(data, object_pairs_hook=_no_duplicates)
    else:
        model = _read_ubjson(data)
    if not isinstance(model, dict):
        raise ValueError("not an XGBoost model")
    return model


def _model_problem(model: dict, n_features: int, n_targets: int) -> str | None:
    """Why the parsed model would be unsafe to predict with, or None.

    XGBoost 3.2 checks some array lengths when it loads a tree but not the indices in them:
    a child index past the end of its tree, one that points back to an earlier node (a
    cycle), a split on a feature the input lacks, a bad parent link, a missing array, a
    ``tree_info`` target past the last one or a multi-output leaf index out of range kill
    the whole process (segfault or abort, no message) when it loads, dumps or predicts.
    XGBoost numbers nodes so that children come after their parent; requiring that rules
    out cycles. The checks are vectorised over all trees (about 0.1 s for the shipped
    8400-tree model, after 0.3 s of reading it).
    """
    try:
        learner = model["learner"]
        lp = learner["learner_model_param"]
        gb = learner["gradient_booster"]
        if gb.get("name") != "gbtree":
            return f"booster type {str(gb.get('name'))[:40]!r}; lowlight writes 'gbtree' models only"
        gbm = gb["model"]
        num_target, num_feature = int(lp["num_target"]), int(lp["num_feature"])
        if num_target != n_targets:
            return f"model predicts {num_target} values per row, its settings ask for {n_targets} percentiles"
        if num_feature != n_features:
            return f"model expects {num_feature} features, these settings make {n_features}"
        base = np.atleast_1d(np.asarray(json.loads(lp["base_score"]), dtype=np.float64))
        if base.ndim != 1 or len(base) not in (1, num_target) or not np.all(np.isfinite(base)):
            return f"base_score must be 1 or {num_target} finite numbers"
        trees = gbm["trees"]
        info = np.asarray(gbm["tree_info"], dtype=np.int64).ravel()
        indptr = np.asarray(gbm["iteration_indptr"], dtype=np.int64).ravel()
        if int(gbm["gbtree_model_param"]["num_trees"]) != len(trees) or len(info) != len(trees):
            return f"num_trees and tree_info do not match the {len(trees)} trees"
        if np.any((info < 0) | (info >= num_target)):
            return f"tree_info must name one of the {num_target} targets for each tree"
        if len(indptr) < 1 or indptr[0] != 0 or indptr[-1] != len(trees) or np.any(np.diff(indptr) < 0):
            return "iteration_indptr does not partition the trees into rounds"
        if any(len(v) for v in gbm.get("cats", {}).values()):
            return "categorical features; lowlight's features are all numeric"
        if not trees:
            return None
        n = np.array([int(t["tree_param"]["num_nodes"]) for t in trees], dtype=np.int64)
        leaf_size = np.array([int(t["tree_param"]["size_leaf_vector"]) for t in trees], dtype=np.int64)
        if np.any(n < 1):
            return f"tree {int(np.argmax(n < 1))} has no nodes"
        multi = leaf_size > 1
        if np.any(multi & (leaf_size != num_target)):
            return f"tree {int(np.argmax(multi & (leaf_size != num_target)))} has leaves of the wrong size"
        ids = np.array([int(t["id"]) for t in trees], dtype=np.int64)
        if np.any(ids != np.arange(len(trees))):
            return f"tree {int(np.argmax(ids != np.arange(len(trees))))} has the wrong id"
        # XGBoost reads every one of these arrays; a missing one crashes its loader
        for name, per_node in (("left_children", 1), ("right_children", 1), ("parents", 1), ("split_indices", 1),
                               ("split_conditions", 1), ("split_type", 1), ("default_left", 1),
                               ("loss_changes", 1), ("sum_hessian", 1), ("base_weights", leaf_size)):
            lens = np.array([len(t[name]) for t in trees], dtype=np.int64)
            if np.any(lens != n * per_node):
                return f"tree {int(np.argmax(lens != n * per_node))}: {name} has the wrong length"
        if any(len(t[k]) for t in trees for k in ("categories", "categories_nodes", "categories_segments",
                                                  "categories_sizes")):
            return "categorical splits; lowlight's features are all numeric"

        def cat(name, dtype=np.int64):
            return np.concatenate([np.asarray(t[name], dtype=dtype).ravel() for t in trees])

        left, right, parent = cat("left_children"), cat("right_children"), cat("parents")
        split, kind, default = cat("split_indices"), cat("split_type"), cat("default_left")
        cond = cat("split_conditions", np.float64)
        weights = {i: np.asarray(trees[i]["leaf_weights"], dtype=np.float64) for i in np.flatnonzero(multi)}
    except (KeyError, IndexError, TypeError, ValueError, OverflowError, AttributeError) as exc:
        return f"unexpected model layout ({type(exc).__name__}: {str(exc)[:80]})"
    tree = np.repeat(np.arange(len(trees)), n)
    start = np.repeat(np.cumsum(n) - n, n)
    node = np.arange(len(tree)) - start
    size = n[tree]
    inner = left != -1
    bad = (left < -1) | (inner & ~((left > node) & (left < size) & (right > node) & (right < size)))
    if np.any(bad):
        at = int(np.argmax(bad))
        return f"tree {tree[at]} node {node[at]} has a child index out of range or not after its node (a cycle)"
    # XGBoost's loader walks the parent links (a bad one crashes it): each node but the root
    # must be the child of exactly one node, and say so
    kids = np.concatenate([left[inner], right[inner]]) + np.tile(start[inner], 2)
    owners = np.tile(node[inner], 2)
    times = np.bincount(kids, minlength=len(tree))
    wrong_parent = np.zeros(len(tree), bool)
    wrong_parent[kids] = parent[kids] != owners
    n_leaves = np.bincount(tree[~inner], minlength=len(trees))
    checks = [
        ((node == 0) & ~np.isin(parent, (-1, 2**31 - 1)), "is a root with a parent"),
        ((node > 0) & (times != 1), "is not the child of exactly one node"),
        (wrong_parent, "names the wrong parent"),
        (inner & ((split < 0) | (split >= n_features)), f"splits on a feature outside 0..{n_features - 1}"),
        ((default != 0) & (default != 1), "has a default direction other than 0 or 1"),
        (inner & (kind != 0), "has a categorical split"),
        (~inner & ~multi[tree] & ~np.isfinite(cond), "has a leaf value that is not finite"),
        (~inner & multi[tree] & ((right < 0) | (right >= n_leaves[tree])), "has a leaf index out of range"),
    ]
    for bad, what in checks:
        if np.any(bad):
            at = int(np.argmax(bad))
            return f"tree {tree[at]} node {node[at]} {what}"
    for i, w in weights.items():
        if w.shape != (n_leaves[i] * leaf_size[i],) or not np.all(np.isfinite(w)):
            return f"tree {i} has leaf weights of the wrong size or not finite"
    return None


class QuantileModel:
    """XGBoost regressor from a dark image to its well-lit version's percentiles.

    ``predict`` returns ``(N, 3, K)`` values (K = 21 for the default 5-percentile step),
    non-decreasing along the last axis and inside [0, 255] by construction (see the
    module docstring for how each ``target`` mode guarantees it).
    """

    def __init__(self, cfg: QuantilesConfig | None = None, step: int = 5, booster=None):
        self.cfg = cfg or QuantilesConfig()
        self.step = step
        self.levels = percentile_levels(step)
        self.booster = booster
        self.fit_seconds: float | None = None

    # -- training

    def _params(self, seed: int, threads: int) -> dict:
        cfg = self.cfg
        params = {
            "tree_method": "hist",
            "objective": _OBJECTIVES[cfg.objective],
            "max_depth": cfg.max_depth,
            "eta": cfg.learning_rate,
            "subsample": cfg.subsample,
            "colsample_bytree": cfg.colsample_bytree,
            "min_child_weight": cfg.min_child_weight,
            "lambda": cfg.reg_lambda,
            "max_bin": cfg.max_bin,
            "seed": seed,
            "nthread": threads if threads > 0 else -1,  # 0: XGBoost's default (all cores)
            "verbosity": 1,
        }
        if cfg.objective == "quantile":
            params["quantile_alpha"] = cfg.quantile_alpha
        return params

    def fit(self, lows: Sequence[np.ndarray], highs: Sequence[np.ndarray], seed: int = 0,
            threads: int = 0) -> "QuantileModel":
        """Train on paired uint8 RGB images (features and targets are computed here)."""
        if len(lows) != len(highs):
            raise ValueError(f"{len(lows)} low images but {len(highs)} high images")
        if len(lows) == 0:
            raise ValueError("cannot fit the quantile model on zero images")
        x = features(lows, self.cfg, self.step)
        y = targets(highs, self.step)
        return self.fit_arrays(x, y, seed=seed, threads=threads)

    def fit_arrays(self, x: np.ndarray, y: np.ndarray, seed: int = 0, threads: int = 0) -> "QuantileModel":
        """Train on precomputed features ``(N, 3, F)`` and target percentiles ``(N, 3, K)``."""
        xgb = _xgb()
        cfg = self.cfg
        x2 = x.reshape(-1, x.shape[-1])
        t2 = _encode(y.reshape(-1, y.shape[-1]).astype(np.float64), cfg.target)
        params = self._params(seed, threads)
        t0 = time.perf_counter()
        if cfg.strategy == "per_percentile":
            dtrain = xgb.QuantileDMatrix(x2, max_bin=cfg.max_bin)
            boosters, bases = [], []
            for j in range(t2.shape[1]):
                dtrain.set_label(t2[:, j])
                b = xgb.train(params, dtrain, num_boost_round=cfg.n_estimators)
                boosters.append(b)
                bases.append(_base_score(b))
            self.booster = _merge_single_target(boosters, bases)
        else:
            if cfg.objective == "quantile":  # also refused by QuantilesConfig; kept for direct callers
                raise ValueError("the quantile objective needs strategy 'per_percentile' (XGBoost's "
                                 "reg:quantileerror is single-target)")
            dtrain = xgb.QuantileDMatrix(x2, t2, max_bin=cfg.max_bin)
            self.booster = xgb.train({**params, "multi_strategy": cfg.strategy}, dtrain,
                                     num_boost_round=cfg.n_estimators)
        self.fit_seconds = time.perf_counter() - t0
        self.booster.set_param({"nthread": 1})  # inference on one image: threads only cost
        return self

    # -- inference

    def predict_features(self, x: np.ndarray) -> np.ndarray:
        """Percentiles ``(N, 3, K)`` from feature rows ``(N, 3, F)``."""
        if self.booster is None:
            raise RuntimeError("the quantile model is not fitted")
        n = x.shape[0]
        raw = self.booster.inplace_predict(x.reshape(-1, x.shape[-1]))
        return _decode(np.asarray(raw).reshape(n, 3, -1), self.cfg.target)

    def predict(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Predicted percentiles ``(N, 3, K)`` of the well-lit versions of ``images``."""
        return self.predict_features(features(images, self.cfg, self.step))

    # -- files

    def _meta(self) -> dict:
        return {"format": FORMAT, "config": to_dict(self.cfg), "percentile_step": self.step,
                "percentiles": self.levels.tolist(), "feature_names": feature_names(self.cfg, self.step)}

    def save(self, path: str | Path) -> Path:
        """Write XGBoost's own UBJSON model (``.ubj``) with the settings embedded as JSON."""
        if self.booster is None:
            raise RuntimeError("the quantile model is not fitted")
        path = Path(path)
        if path.suffix not in (".ubj", ".json"):
            raise ValueError(f"{path}: save the quantile model as .ubj (or .json), XGBoost's own formats")
        self.booster.set_attr(**{_ATTR: json.dumps(self._meta())})
        with atomic_path(path) as tmp:
            self.booster.save_model(str(tmp))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "QuantileModel":
        """Read a model written by :meth:`save`; a missing, corrupt or foreign file is a
        :class:`~lowlight.errors.DataError` naming the file."""
        xgb = _xgb()
        path = Path(path)
        header = "cannot load the quantile model"
        if not path.is_file():
            raise DataError([f"{path}: file does not exist (run the quantiles stage)"], header)
        if path.stat().st_size > MAX_MODEL_BYTES:
            raise DataError([f"{path}: {path.stat().st_size / 2**20:.0f} MiB, larger than any quantile model "
                             f"({MAX_MODEL_BYTES // 2**20} MiB at most); is it the right file?"], header)
        try:
            data = path.read_bytes()
            model = _parse_model(data)
        except OSError as exc:
            raise DataError([f"{path}: cannot read ({exc.strerror or exc})"], header) from exc
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and json's errors are ValueErrors
            raise DataError([f"{path}: not a readable XGBoost model ({str(exc)[:200]})"], header) from exc
        learner = model.get("learner")
        attrs = learner.get("attributes") if isinstance(learner, dict) else None
        raw = attrs.get(_ATTR) if isinstance(attrs, dict) else None
        if not isinstance(raw, str):
            raise DataError([f"{path}: an XGBoost model without lowlight's settings (not written by "
                             "QuantileModel.save)"], header)
        try:
            meta = json.loads(raw)
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
                raise ValueError(f"format {str(found)[:40]!r}, expected {FORMAT!r}")
            cfg = from_dict(QuantilesConfig, meta["config"], prefix="quantiles")
            step = meta["percentile_step"]
            if isinstance(step, bool):
                raise ValueError(f"percentile_step {step!r} is not a number")
            n_targets = len(percentile_levels(step))  # a whole number that divides 100
            n_features = len(feature_names(cfg, step))
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError([f"{path}: unusable lowlight settings in the model ({str(exc)[:200]})"], header) from exc
        problem = _model_problem(model, n_features, n_targets)
        if problem is not None:
            raise DataError([f"{path}: damaged or crafted model, refused before XGBoost reads it: {problem}; "
                             "write a fresh one with the quantiles stage (dvc repro quantiles)"], header)
        booster = xgb.Booster()
        try:
            booster.load_model(bytearray(data))  # the bytes checked above, not the file again
        except xgb.core.XGBoostError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
            raise DataError([f"{path}: not a readable XGBoost model ({first[:200]})"], header) from exc
        except UnicodeDecodeError as exc:  # XGBoost's error text can quote the file's bytes
            raise DataError([f"{path}: not a readable XGBoost model"], header) from exc
        booster.set_param({"nthread": 1})
        return cls(cfg, step, booster)


# --------------------------------------------------------------------------- the stage


def _mae_metrics(pred: np.ndarray, true: np.ndarray, levels: np.ndarray, prefix: str) -> dict:
    err = np.abs(pred - true)  # (N, 3, K) in 8-bit levels
    out = {f"{prefix}_mae": float(err.mean())}
    for c, name in enumerate("rgb"):
        out[f"{prefix}_mae_{name}"] = float(err[:, c].mean())
    for k, p in enumerate(levels):
        out[f"{prefix}_mae_p{int(p):03d}"] = float(err[..., k].mean())
    return out


def _plot_examples(stems, pred, true, levels, path: Path, examples: int) -> None:
    from .plotting import plt, save_figure

    n = min(examples, len(stems))
    if n == 0:
        return
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        if i >= n:
            ax.axis("off")
            continue
        for c, colour in enumerate(("tab:red", "tab:green", "tab:blue")):
            ax.plot(levels, true[i, c], color=colour, lw=1.5, label="true" if c == 0 else None)
            ax.plot(levels, pred[i, c], color=colour, lw=1.2, ls="--", label="predicted" if c == 0 else None)
        ax.set_title(f"{stems[i]}  MAE {np.abs(pred[i] - true[i]).mean():.1f}", fontsize=9)
        ax.set_xlabel("percentile")
        ax.set_ylabel("8-bit level")
        ax.set_ylim(0, 255)
        if i == 0:
            ax.legend(fontsize=8)
    fig.suptitle("Validation: predicted (dashed) vs true percentiles of the well-lit image")
    fig.tight_layout()
    save_figure(fig, path)


def _plot_mae(metrics: dict, levels: np.ndarray, path: Path) -> None:
    from .plotting import plt, save_figure

    fig, ax = plt.subplots(figsize=(6, 3.2))
    for split in ("train", "val"):
        vals = [metrics.get(f"{split}_mae_p{int(p):03d}") for p in levels]
        if all(v is not None for v in vals):
            ax.plot(levels, vals, marker="o", ms=3, label=split)
    ax.set_xlabel("percentile")
    ax.set_ylabel("MAE (8-bit levels)")
    ax.legend()
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def cross_fit(x: np.ndarray, y: np.ndarray, groups: Sequence[str], cfg: QuantilesConfig, folds: int,
              seed: int = 0, threads: int = 0) -> np.ndarray:
    """Out-of-fold predictions ``(N, 3, K)``: each image predicted by a model fitted without its group.

    The network trains on images mapped with these, so its inputs carry the mapping errors it
    will meet at test time (a model predicting its own training images is far too good).
    Folds are scikit-learn's ``GroupKFold`` (deterministic): pairs that share a scene stay in
    one fold, as they stay in one split.
    """
    from sklearn.model_selection import GroupKFold

    k = min(folds, len(set(groups)))
    if k < 2:
        raise DataError([f"cross-fitting needs at least 2 groups of training pairs, found {len(set(groups))}; "
                         "set quantiles.cross_fit_folds: 0"], header="cannot cross-fit the quantile model")
    out = np.empty(y.shape, dtype=np.float64)
    for fit_rows, held_out in GroupKFold(n_splits=k).split(x[:, 0, 0], groups=list(groups)):
        fold = QuantileModel(cfg).fit_arrays(x[fit_rows], y[fit_rows], seed=seed, threads=threads)
        out[held_out] = fold.predict_features(x[held_out])
    return out


def write_predictions(path: str | Path, stems: Sequence[str], pred: np.ndarray, levels: np.ndarray) -> None:
    """Percentile predictions as CSV: ``stem, channel, p000 ... p100`` (one row per image and channel)."""
    lines = ["stem,channel," + ",".join(f"p{int(p):03d}" for p in levels)]
    for stem, q in zip(stems, pred):
        for c, name in enumerate("rgb"):
            lines.append(f"{stem},{name}," + ",".join(f"{v:.4f}" for v in q[c]))
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def read_predictions(path: str | Path, levels: int) -> dict[str, np.ndarray]:
    """``{stem: (3, K)}`` from :func:`write_predictions`'s CSV; a malformed file is a DataError naming it."""
    import csv

    path = Path(path)
    out: dict[str, np.ndarray] = {}
    try:
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
        for row in rows[1:]:
            stem, channel, values = row[0], "rgb".index(row[1]), [float(v) for v in row[2:]]
            if len(values) != levels:
                raise ValueError(f"{len(values)} percentiles where {levels} were expected")
            out.setdefault(stem, np.full((3, levels), np.nan))[channel] = values
    except (OSError, ValueError, IndexError) as exc:
        raise DataError([f"{path}: not a percentile-prediction file ({exc})"],
                        header="cannot read the out-of-fold predictions") from exc
    bad = [s for s, q in out.items() if not np.all(np.isfinite(q))]
    if bad:
        raise DataError([f"{path}: incomplete or non-finite rows for {', '.join(bad[:5])}"],
                        header="cannot read the out-of-fold predictions")
    return out


def train_quantile_model(data_root: str | Path, cfg: QuantilesConfig, seed: int, threads: int,
                         model_path: str | Path, metrics_json: str | Path, plots_dir: str | Path,
                         oof_csv: str | Path | None = None) -> dict:
    """Fit on ``train``, score on ``val`` (MAE per percentile in 8-bit levels), save model,
    metrics and plots (``predictions.png``, ``mae.png``); with ``oof_csv`` and
    ``cfg.cross_fit_folds``, also the out-of-fold predictions of the training images."""
    from .pairs import load_pairs, read_groups

    data_root, plots_dir = Path(data_root), Path(plots_dir)
    stems, lows, highs = load_pairs(data_root, "train")
    if not lows:
        raise DataError([f"{data_root / 'train'}: no training pairs (run the prepare stage)"])
    model = QuantileModel(cfg)
    x = features(lows, cfg)
    y = targets(highs)
    model.fit_arrays(x, y, seed=seed, threads=threads)
    model.save(model_path)
    metrics: dict = {"objective": cfg.objective, "strategy": cfg.strategy, "target": cfg.target,
                     "train_images": len(lows), "fit_seconds": model.fit_seconds}
    metrics.update(_mae_metrics(model.predict_features(x), y, model.levels, "train"))
    if oof_csv is not None:
        if cfg.cross_fit_folds:
            groups = read_groups(data_root, "train")
            t0 = time.perf_counter()
            oof = cross_fit(x, y, [groups[s] for s in stems], cfg, cfg.cross_fit_folds, seed, threads)
            metrics["cross_fit_seconds"] = time.perf_counter() - t0
            metrics["train_oof_mae"] = float(np.abs(oof - y).mean())
        else:  # off: the in-sample predictions, so histmap reads one kind of file either way
            oof = model.predict_features(x)
        write_predictions(oof_csv, stems, oof, model.levels)
    val_stems, val_lows, val_highs = load_pairs(data_root, "val")
    metrics["val_images"] = len(val_lows)
    plots_dir.mkdir(parents=True, exist_ok=True)
    if val_lows:
        model.predict(val_lows[:1])  # warm-up: the first call pays XGBoost's setup
        times = []
        for _ in range(5):  # best of 5: a busy machine inflates single timings
            t0 = time.perf_counter()
            model.predict(val_lows[:1])
            times.append(time.perf_counter() - t0)
        metrics["predict_ms_one_image"] = 1000.0 * min(times)
        pred = model.predict(val_lows)
        true = targets(val_highs)
        metrics.update(_mae_metrics(pred, true, model.levels, "val"))
        _plot_examples(val_stems, pred, true, model.levels, plots_dir / "predictions.png", cfg.examples)
    _plot_mae(metrics, model.levels, plots_dir / "mae.png")
    write_json(metrics_json, metrics)
    return metrics
