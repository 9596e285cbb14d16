"""Typed, validated configuration: the one place where ``params.yaml`` is read.

Every section of ``params.yaml`` maps to a frozen dataclass below. Loading checks
each key against the dataclass: an unknown key, a value of the wrong type or one
out of range stops with a :class:`ConfigError` that names the key (``train.lr``)
and what is allowed. Library code receives these objects, never the raw dict.

A field's constraints live in its metadata (see :func:`param`), so the dataclass
is the single source of truth for names, types, defaults and ranges.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml

__all__ = [
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
]


class ConfigError(ValueError):
    """A params file or mapping that does not fit the typed config."""


def param(default: Any = dataclasses.MISSING, *, ge=None, gt=None, le=None, lt=None,
          default_factory: Any = dataclasses.MISSING, help: str = "") -> Any:
    """A dataclass field with numeric bounds checked at load time."""
    meta = {"ge": ge, "gt": gt, "le": le, "lt": lt, "help": help}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class BaseConfig:
    seed: int = param(42, ge=0, help="seed for every random generator")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    experiment: str = "lowlight"
    threads: int = param(0, ge=0, help="CPU threads for torch/xgboost; 0 = library default")


@dataclass(frozen=True)
class DegradeConfig:
    """Physically based low-light model (see lowlight.degrade)."""

    exposure_min: float = param(1 / 40, gt=0, le=1, help="smallest exposure factor")
    exposure_max: float = param(1 / 8, gt=0, le=1, help="largest exposure factor")
    full_well: float = param(1500.0, gt=0, help="photo-electrons at white before the exposure cut")
    read_noise: float = param(0.002, ge=0, le=0.5, help="read-noise std in linear light (white = 1)")
    color_cast: float = param(0.08, ge=0, lt=1, help="max relative per-channel gain deviation")

    def __post_init__(self):
        if self.exposure_min > self.exposure_max:
            raise ConfigError(
                f"data.degrade.exposure_min ({self.exposure_min}) must be <= "
                f"data.degrade.exposure_max ({self.exposure_max})")


@dataclass(frozen=True)
class DataConfig:
    source: Literal["demo", "clean_folder", "lol"] = "demo"
    path: str = param("", help="folder for clean_folder / lol; ignored for demo")
    val_fraction: float = param(0.2, gt=0, lt=1)
    test_fraction: float = param(0.2, ge=0, lt=1, help="synthetic sources; lol uses eval15")
    max_size: int = param(384, ge=0, help="resize clean photos so the longest side is at most this; 0 = keep")
    pairs_per_image: int = param(3, ge=1, help="darkened versions of each clean photo")
    degrade: DegradeConfig = param(default_factory=DegradeConfig)

    def __post_init__(self):
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError("data.val_fraction + data.test_fraction must be < 1")
        if self.source in ("clean_folder", "lol") and not self.path:
            raise ConfigError(f"data.path must name a folder when data.source is {self.source!r}")


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
    target: Literal["values", "increments"] = "values"
    objective: Literal["squared_error", "quantile"] = "squared_error"
    quantile_alpha: float = param(0.5, gt=0, lt=1, help="pinball-loss quantile for objective=quantile")
    strategy: Literal["multi_output_tree", "one_output_per_tree", "per_percentile"] = "one_output_per_tree"
    n_estimators: int = param(400, ge=1)
    max_depth: int = param(3, ge=1, le=16)
    learning_rate: float = param(0.03, gt=0, le=1)
    subsample: float = param(0.7, gt=0, le=1)
    colsample_bytree: float = param(0.8, gt=0, le=1)
    min_child_weight: float = param(20.0, ge=0, help="hessian per leaf; = rows per leaf for squared error")
    reg_lambda: float = param(1.0, ge=0)
    max_bin: int = param(64, ge=2, le=1024, help="XGBoost histogram bins per feature")
    examples: int = param(6, ge=0, help="validation images in the prediction plot")

    def __post_init__(self):
        if self.objective == "quantile" and self.strategy != "per_percentile":
            raise ConfigError("quantiles.objective 'quantile' needs quantiles.strategy 'per_percentile' "
                              "(XGBoost's reg:quantileerror is single-target)")


@dataclass(frozen=True)
class HistmapConfig:
    method: Literal["kde", "interp"] = "interp"
    bandwidth: float = param(6.0, gt=0, help="KDE kernel std in 8-bit levels")
    kde_weights: Literal["trapezoid", "equal"] = "trapezoid"
    space: Literal["rgb", "luminance"] = "rgb"


@dataclass(frozen=True)
class TrainConfig:
    model: str = "unet"
    model_args: dict = param(default_factory=dict, help="constructor arguments of the model")
    inputs: Literal["low", "mapped", "low+mapped"] = "low+mapped"
    loss: Literal["mse_mae", "psnr_l1", "l1_ssim"] = "l1_ssim"
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
    time_budget_min: float = param(0.0, ge=0, help="stop after this many minutes of training steps "
                                                    "(validation not counted); 0 = no limit")
    steps_per_epoch: int = param(0, ge=0, help="batches per epoch; 0 = one pass over the crops")
    examples: int = param(4, ge=0, help="validation images in the sample grid")


@dataclass(frozen=True)
class EvaluateConfig:
    examples: int = param(4, ge=0, help="images in the comparison grid")
    gamma_mean: float = param(0.45, gt=0, lt=1, help="target mean brightness of the gamma baseline")
    clahe_clip: float = param(0.01, gt=0, le=1)
    shipped: bool = param(True, help="also score the weights shipped in the package (trained on LOL) as 'shipped'")


@dataclass(frozen=True)
class Params:
    base: BaseConfig = param(default_factory=BaseConfig)
    data: DataConfig = param(default_factory=DataConfig)
    eda: EdaConfig = param(default_factory=EdaConfig)
    quantiles: QuantilesConfig = param(default_factory=QuantilesConfig)
    histmap: HistmapConfig = param(default_factory=HistmapConfig)
    train: TrainConfig = param(default_factory=TrainConfig)
    evaluate: EvaluateConfig = param(default_factory=EvaluateConfig)


# --------------------------------------------------------------------------- loading


def _type_name(tp) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _check_value(key: str, value: Any, tp, meta: Mapping[str, Any]) -> Any:
    origin = typing.get_origin(tp)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not allowed; use one of {', '.join(map(repr, allowed))}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping of {tp.__name__} keys, got {type(value).__name__}")
        return from_dict(tp, value, prefix=key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
    elif tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
    elif tp is dict:
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    else:  # pragma: no cover - a field type this loader does not know is a bug here
        raise TypeError(f"{key}: unsupported field type {tp!r}")
    bounds = [("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
              ("le", lambda v, b: v <= b, "<="), ("lt", lambda v, b: v < b, "<")]
    for name, ok, sym in bounds:
        bound = meta.get(name)
        if bound is not None and not ok(value, bound):
            raise ConfigError(f"{key}: {value!r} is out of range; it must be {sym} {bound}")
    return value


def from_dict(cls, raw: Mapping[str, Any] | None, prefix: str = ""):
    """Build dataclass ``cls`` from ``raw``, checking every key, type and bound."""
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{prefix or 'params'}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(where + str(k) for k in unknown)}; "
            f"allowed keys{' in ' + prefix if prefix else ''}: {', '.join(fields)}")
    kwargs = {}
    for name, value in raw.items():
        key = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _check_value(key, value, hints[name], fields[name].metadata)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:  # from a __post_init__ check
        raise ConfigError(f"{prefix or 'params'}: {exc}") from exc


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a whole params file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read params file ({exc.strerror or exc})") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return from_dict(Params, raw or {})
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


def flatten(obj, prefix: str = "") -> dict[str, Any]:
    """``{"train.lr": 0.002, ...}``: the shape MLflow params and DVC's ``-S`` use."""
    data = to_dict(obj) if dataclasses.is_dataclass(obj) else obj
    out: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, full))
        else:
            out[full] = value
    return out
