"""Typed, validated configuration: the one place where ``params.yaml`` is read.

Every section of ``params.yaml`` maps to a frozen dataclass below. Loading checks
each key against the dataclass: an unknown key, a value of the wrong type or one
out of range stops with a :class:`ConfigError` that names the key (``train.lr``)
and what is allowed. Library code receives these objects, never the raw dict.

A field's constraints live in its metadata (see :func:`lowlight.typed_config.param`),
so the dataclass is the single source of truth for names, types, defaults and ranges;
the checking itself is in :mod:`lowlight.typed_config`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lowlight.typed_config import MAX_PARAMS_BYTES, ConfigError, flatten, from_dict, param, read_yaml, to_dict

__all__ = [
    "INPUT_KINDS",
    "LOSS_NAMES",
    "ConfigError",
    "Params",
    "BaseConfig",
    "DegradeConfig",
    "DataConfig",
    "EdaConfig",
    "QuantilesConfig",
    "HistmapConfig",
    "TrainConfig",
    "EvaluateConfig",
    "load_params",
    "from_dict",
    "to_dict",
    "flatten",
    "MAX_PARAMS_BYTES",
]

# The one list of each: what a network can be fed (low, mapped or both stacked: 3 or 6
# channels) and the losses by name (their functions: lowlight.training.losses.LOSSES).
INPUT_KINDS = ("low", "mapped", "low+mapped")
LOSS_NAMES = ("mse_mae", "psnr_l1", "l1_ssim")


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class BaseConfig:
    seed: int = param(42, ge=0, lt=2**32, help="seed for every random generator (numpy, torch and xgboost "
                                                "take 32 bits)")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    experiment: str = "lowlight"
    threads: int = param(0, ge=0, help="CPU threads for torch/xgboost; 0 = library default")
    system_metrics: bool = param(False, help="record CPU, memory and GPU use in the MLflow train run")

    def __post_init__(self):
        if isinstance(self.experiment, str) and not self.experiment.strip():
            raise ConfigError("base.experiment: empty; MLflow needs an experiment name (e.g. lowlight)")


@dataclass(frozen=True)
class DegradeConfig:
    """Physically based low-light model (see lowlight.data.degrade)."""

    exposure_min: float = param(1 / 40, gt=0, le=1, help="smallest exposure factor")
    exposure_max: float = param(1 / 8, gt=0, le=1, help="largest exposure factor")
    full_well: float = param(1500.0, gt=0, help="photo-electrons at white before the exposure cut")
    read_noise: float = param(0.002, ge=0, le=0.5, help="read-noise std in linear light (white = 1)")
    color_cast: float = param(0.08, ge=0, lt=1, help="max relative per-channel gain deviation")
    uneven: float = param(0.0, ge=0, le=1, help="share of darkened versions lit unevenly (lowlight.data.illumination)")
    peak_exposure_max: float = param(1.0, gt=0, le=1, help="uneven light: largest exposure of the brightest point "
                                     "(drawn log-uniformly from exposure_min)")
    light_ratio_max: float = param(30.0, ge=2, le=1000, help="uneven light: largest brightest/darkest ratio in a photo")
    lights_max: int = param(3, ge=1, le=8, help="uneven light: soft light sources, 1 to this many")
    window: float = param(0.4, ge=0, le=1, help="uneven light: chance of a bright window or doorway region")
    vignette_max: float = param(0.5, ge=0, lt=1, help="uneven light: largest fall-off at the corners")
    white_shift: float = param(0.2, ge=0, lt=1, help="uneven light: largest colour-temperature shift of one light")

    def __post_init__(self):
        if self.exposure_min > self.exposure_max:
            raise ConfigError(
                f"data.degrade.exposure_min ({self.exposure_min}) must be <= "
                f"data.degrade.exposure_max ({self.exposure_max})")
        if self.uneven > 0 and self.peak_exposure_max < self.exposure_min:
            raise ConfigError(
                f"data.degrade.peak_exposure_max ({self.peak_exposure_max}) must be >= "
                f"data.degrade.exposure_min ({self.exposure_min})")


@dataclass(frozen=True)
class DataConfig:
    source: Literal["demo", "clean_folder", "lol"] = "demo"
    path: str = param("", help="folder for clean_folder / lol; ignored for demo")
    val_fraction: float = param(0.2, gt=0, lt=1)
    test_fraction: float = param(0.2, ge=0, lt=1, help="synthetic sources; lol uses eval15")
    max_size: int = param(384, ge=0, help="resize clean photos so the longest side is at most this; 0 = keep")
    pairs_per_image: int = param(3, ge=1, help="darkened versions of each clean photo")
    extra_clean_path: str = param("", help="folder of clean photos darkened into extra train pairs (any "
                                           "data.source); empty = off")
    extra_pairs_per_image: int = param(2, ge=1, help="darkened versions of each extra clean photo")
    extra_clean_holdout: int = param(20, ge=0, help="extra clean photos never trained on (smallest "
                                                    "sha256 of the file name; listed in heldout.txt)")
    extra_clean_val: int = param(0, ge=0, help="extra clean photos darkened into the val split instead of train "
                                               "(the next smallest sha256 after the held-out ones)")
    identity_fraction: float = param(0.0, ge=0, le=1, help="identity pairs (high as low) added to train, "
                                                           "as a fraction of the train pairs")
    extra_identity: bool = param(False, help="also every extra clean train photo as an identity pair (well-lit "
                                             "photos of every brightness, not only the primary source's)")
    degrade: DegradeConfig = param(default_factory=DegradeConfig)

    def __post_init__(self):
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError("data.val_fraction + data.test_fraction must be < 1")
        if self.source in ("clean_folder", "lol") and not self.path:
            raise ConfigError(f"data.path must name a folder when data.source is {self.source!r}")
        if (self.extra_clean_path and self.source == "clean_folder"
                and Path(self.extra_clean_path).resolve() == Path(self.path).resolve()):
            # its val/test photos would come back as train pairs
            raise ConfigError("data.extra_clean_path is data.path; use a different folder of photos")
        if self.extra_identity and not self.extra_clean_path:
            raise ConfigError("data.extra_identity: needs data.extra_clean_path (the photos to use as identity "
                              "pairs); set it, or extra_identity false")


@dataclass(frozen=True)
class EdaConfig:
    percentile_step: int = param(5, ge=1, le=50, help="must divide 100 (0 and 100 are always included)")
    examples: int = param(4, ge=0, help="images shown in the histogram plot")
    corr_threshold: float = param(0.6, ge=-1, le=1)

    def __post_init__(self):
        if 100 % self.percentile_step:
            raise ConfigError(f"eda.percentile_step: {self.percentile_step} does not divide 100")


@dataclass(frozen=True)
class QuantilesConfig:
    bins: int = param(64, ge=8, le=256, help="bins of the low channel's histogram feature")
    bin_gamma: float = param(2.0, ge=1, le=4, help="bin edges at 256*t**gamma: >1 = finer at the dark end")
    texture: bool = True  # gradient and noise-level features
    grid: int = param(4, ge=0, le=16, help="mean luma on a grid x grid layout as features; 0 = off")
    regions: int = param(1, ge=1, le=8, help="local exposure: predict the percentiles of each region of a "
                         "regions x regions grid and blend their mappings (lowlight.histbranch.regions); 1 = one "
                         "prediction for the whole photo")
    target: Literal["values", "increments", "residual"] = "residual"
    objective: Literal["squared_error", "quantile"] = "squared_error"
    quantile_alpha: float = param(0.5, gt=0, lt=1, help="pinball-loss quantile for objective=quantile")
    strategy: Literal["multi_output_tree", "one_output_per_tree", "per_percentile"] = "one_output_per_tree"
    n_estimators: int = param(200, ge=1)
    max_depth: int = param(3, ge=1, le=16)
    learning_rate: float = param(0.06, gt=0, le=1)
    subsample: float = param(0.7, gt=0, le=1)
    colsample_bytree: float = param(0.8, gt=0, le=1)
    min_child_weight: float = param(20.0, ge=0, help="hessian per leaf; = rows per leaf for squared error")
    reg_lambda: float = param(1.0, ge=0)
    max_bin: int = param(64, ge=2, le=1024, help="XGBoost histogram bins per feature")
    cross_fit_folds: int = param(5, ge=0, le=20, help="K-fold out-of-fold predictions for the training images, "
                                                      "grouped as the split is (histmap maps train with them); 0 = off")
    examples: int = param(6, ge=0, help="validation images in the prediction plot")
    keep_shipped: bool = param(True, help="also map val with the package's shipped quantile model and keep it "
                                          "instead of the refit one when its val mapping PSNR is higher, dark "
                                          "inputs or well-lit ones (each reference given as its own input)")

    def __post_init__(self):
        if self.cross_fit_folds == 1:
            raise ConfigError("quantiles.cross_fit_folds: 1 fold has no held-out part; use 0 (off) or >= 2")
        if self.objective == "quantile" and self.strategy != "per_percentile":
            raise ConfigError("quantiles.objective 'quantile' needs quantiles.strategy 'per_percentile' "
                              "(XGBoost's reg:quantileerror is single-target)")


@dataclass(frozen=True)
class HistmapConfig:
    method: Literal["kde", "interp"] = "interp"
    bandwidth: float = param(6.0, gt=0, help="KDE kernel std in 8-bit levels")
    kde_weights: Literal["trapezoid", "equal"] = "trapezoid"
    space: Literal["rgb", "luminance"] = "rgb"
    max_slope: float = param(1.5, ge=0, help="contrast limit of the mapping: the table's slope in log-log "
                             "(d log(1+out) / d log(1+in)) is at most this, the channel's mean level kept; "
                             "0 = off (lowlight/histbranch/contrast_limit.py)")


@dataclass(frozen=True)
class TrainConfig:
    model: str = "unet"
    model_args: dict = param(default_factory=dict, help="constructor arguments of the model")
    init: str = param("none", help="none | shipped | a checkpoint path: start from those weights (same model "
                                   "and arguments)")
    inputs: Literal[INPUT_KINDS] = "low+mapped"
    loss: Literal[LOSS_NAMES] = "l1_ssim"
    color_weight: float = param(0.0, ge=0, help="weight of an L1 term on each image's channel means (global "
                                                "brightness and colour), added to train.loss; 0 = off")
    exposure_anchor: float = param(1.0, ge=0, le=1, help="pull the network's output towards the mapped image's "
                                   "brightness: 0 = the network's own, 1 = the mapping's "
                                   "(lowlight/inference/exposure.py); applied in validation and by the enhancer")
    target_exposure: Literal["reference", "mapped"] = param(
        "mapped", help="the training targets' overall brightness: reference = as shot; mapped = each "
        "reference scaled to its mapped image's grey mean, so the network learns everything but the exposure, "
        "which the quantile model decides (lowlight/training/data.py)")
    lr: float = param(2e-3, gt=0, le=1)
    weight_decay: float = param(1e-4, ge=0)
    epochs: int = param(30, ge=1)
    batch_size: int = param(8, ge=1)
    crop_size: int = param(128, ge=8)
    patience: int = param(10, ge=1, help="early stopping: epochs without val improvement")
    plateau_patience: int = param(3, ge=1)
    plateau_factor: float = param(0.5, gt=0, lt=1)
    grad_clip: float = param(1.0, ge=0, help="max grad norm; 0 = off")
    num_workers: int = param(0, ge=0)
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    schedule: Literal["cosine", "plateau"] = param("cosine", help="cosine: one cosine decay over the run "
                                                   "(epochs x steps, or the time budget); plateau: ReduceLROnPlateau")
    min_lr_fraction: float = param(0.02, ge=0, le=1, help="cosine: the last learning rate as a fraction of train.lr")
    ema_decay: float = param(0.999, ge=0, lt=1, help="exponential moving average of the weights, validated and "
                                                      "saved; 0 = off")
    time_budget_min: float = param(0.0, ge=0, help="stop after this many minutes of training steps "
                                                    "(validation not counted); 0 = no limit")
    steps_per_epoch: int = param(0, ge=0, help="batches per epoch; 0 = one pass over the crops")
    examples: int = param(4, ge=0, help="validation images in the sample grid")

    def __post_init__(self):
        if self.inputs == "low":  # no mapped image: nothing to anchor to, nor to take the exposure from
            need = [f"train.{k} ({v!r})" for k, v, off in (("exposure_anchor", self.exposure_anchor, 0.0),
                                                          ("target_exposure", self.target_exposure, "reference"))
                    if v != off]
            if need:
                verb = "need" if len(need) > 1 else "needs"
                raise ConfigError(f"{' and '.join(need)} {verb} the mapped image, but train.inputs is 'low'; use inputs "
                                  "low+mapped or mapped, or exposure_anchor: 0 and target_exposure: reference")


@dataclass(frozen=True)
class EvaluateConfig:
    examples: int = param(4, ge=0, help="images in the comparison grid")
    gamma_mean: float = param(0.45, gt=0, lt=1, help="target mean brightness of the gamma baseline")
    clahe_clip: float = param(0.01, gt=0, le=1)
    shipped: bool = param(True, help="also score the weights shipped in the package (trained on LOL) as 'shipped'")
    register_model: str = param("", help="register the pipeline's pyfunc model under this name in the MLflow "
                                         "Model Registry (the track stage); empty = off")


@dataclass(frozen=True)
class Params:
    base: BaseConfig = param(default_factory=BaseConfig)
    data: DataConfig = param(default_factory=DataConfig)
    eda: EdaConfig = param(default_factory=EdaConfig)
    quantiles: QuantilesConfig = param(default_factory=QuantilesConfig)
    histmap: HistmapConfig = param(default_factory=HistmapConfig)
    train: TrainConfig = param(default_factory=TrainConfig)
    evaluate: EvaluateConfig = param(default_factory=EvaluateConfig)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a whole params file (at most ``MAX_PARAMS_BYTES``, no YAML aliases or duplicate keys)."""
    path = Path(path)
    raw = read_yaml(path)
    try:
        return from_dict(Params, raw or {})
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
