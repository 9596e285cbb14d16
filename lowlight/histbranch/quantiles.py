"""The quantile model: predict the well-lit image's 21 percentiles per channel from the
dark image, with gradient-boosted trees (XGBoost).

This is the regression half of the learned histogram-mapping method (the other half,
:mod:`lowlight.histbranch.histmap`, maps the dark image onto the predicted percentiles). One
published version trained XGBoost with squared error and called it quantile
regression; here the objective is an explicit choice: ``squared_error`` (regression of
the percentile *values*, which is what the mapping's PSNR rewards) or ``quantile``
(XGBoost's pinball loss ``reg:quantileerror`` at ``quantile_alpha``, i.e. a conditional
median for 0.5).

Rows are (image, channel) pairs, features :mod:`lowlight.histbranch.quantile_features`'. The file is checked by :mod:`lowlight.histbranch.quantile_file` before XGBoost reads it;
out-of-fold predictions for training are :mod:`lowlight.histbranch.cross_fit`'s.

Targets are the well-lit channel's percentiles, fitted in the form ``quantiles.target``
says (:mod:`lowlight.histbranch.quantile_targets`: values, increments, or the residual over
the dark channel's own percentiles); outputs are monotone and inside [0, 255] by construction.

Strategies: ``one_output_per_tree`` and ``multi_output_tree`` are XGBoost's own
multi-target modes; ``per_percentile`` trains one single-target booster per percentile
(needed for ``reg:quantileerror``, which XGBoost does not support multi-target) and merges
them into one multi-target booster, so every strategy saves as one XGBoost ``.ubj`` file
and predicts in one call. The file carries this module's settings in a booster attribute
(JSON), never a pickle.

Measured choices: the README, "Histogram-branch choices"; each run's figures: ``metrics/quantiles.json``.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from lowlight.atomic import atomic_path
from lowlight.config import QuantilesConfig, from_dict, to_dict
from lowlight.errors import DataError
from lowlight.histbranch.histogram import percentile_levels
from lowlight.histbranch.quantile_features import feature_names, features, image_features, own_percentiles, targets
from lowlight.histbranch.quantile_targets import decode, encode
from lowlight.histbranch.xgboost_import import xgboost_module as _xgb
from lowlight.histbranch.quantile_file import MAX_MODEL_BYTES, model_problem, parse_model

__all__ = [
    "FORMAT",
    "feature_names",
    "image_features",
    "features",
    "targets",
    "QuantileModel",
]

FORMAT = "lowlight.quantiles/1"  # a file format name: stays as saved files carry it
_ATTR = "lowlight_quantiles"
_OBJECTIVES = {"squared_error": "reg:squarederror", "quantile": "reg:quantileerror"}


# --------------------------------------------------------------------------- target space


# --------------------------------------------------------------------------- the model


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


def _settings(raw, path: Path, header: str) -> tuple[QuantilesConfig, int]:
    """The settings :meth:`QuantileModel.save` embedded (the booster attribute's JSON)."""
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
        percentile_levels(step)  # a whole number that divides 100
        feature_names(cfg, step)
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError([f"{path}: unusable lowlight settings in the model ({str(exc)[:200]})"], header) from exc
    return cfg, step


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
        y = targets(highs, self.step, self.cfg.regions)
        return self.fit_arrays(x, y, seed=seed, threads=threads)

    def fit_arrays(self, x: np.ndarray, y: np.ndarray, seed: int = 0, threads: int = 0) -> "QuantileModel":
        """Train on precomputed features ``(N, 3, F)`` and target percentiles ``(N, 3, K)``."""
        xgb = _xgb()
        cfg = self.cfg
        x2 = x.reshape(-1, x.shape[-1])
        own = own_percentiles(x2, cfg, y.shape[-1]) if cfg.target == "residual" else None
        t2 = encode(y.reshape(-1, y.shape[-1]).astype(np.float64), cfg.target, own)
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
        """Percentiles ``(..., 3, K)`` from feature rows ``(..., 3, F)`` (per cell for ``cfg.regions > 1``)."""
        if self.booster is None:
            raise RuntimeError("the quantile model is not fitted")
        raw = self.booster.inplace_predict(x.reshape(-1, x.shape[-1]))
        raw = np.asarray(raw).reshape(*x.shape[:-1], -1)
        own = own_percentiles(x, self.cfg, raw.shape[-1]) if self.cfg.target == "residual" else None
        return decode(raw, self.cfg.target, own)

    def predict(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Predicted percentiles ``(N, 3, K)`` of the well-lit versions of ``images``; per cell,
        ``(N, G, G, 3, K)``, for ``cfg.regions = G > 1``."""
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
    def load(cls, path: str | Path, trusted_sha256: frozenset[str] = frozenset()) -> "QuantileModel":
        """Read a model written by :meth:`save`; a missing, corrupt or foreign file is a
        :class:`~lowlight.errors.DataError` naming the file. A file whose SHA-256 is in
        ``trusted_sha256`` (the package's own: lowlight.inference.shipped) is handed to XGBoost
        without the structural check, which parses it in Python (0.2 s of start-up)."""
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
            trusted = hashlib.sha256(data).hexdigest() in trusted_sha256
            model = None if trusted else parse_model(data)
        except OSError as exc:
            raise DataError([f"{path}: cannot read ({exc.strerror or exc})"], header) from exc
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and json's errors are ValueErrors
            raise DataError([f"{path}: not a readable XGBoost model ({str(exc)[:200]})"], header) from exc
        if model is not None:
            learner = model.get("learner")
            attrs = learner.get("attributes") if isinstance(learner, dict) else None
            cfg, step = _settings(attrs.get(_ATTR) if isinstance(attrs, dict) else None, path, header)
            problem = model_problem(model, len(feature_names(cfg, step)), len(percentile_levels(step)))
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
        if model is None:
            cfg, step = _settings(booster.attr(_ATTR), path, header)
        booster.set_param({"nthread": 1})
        return cls(cfg, step, booster)
