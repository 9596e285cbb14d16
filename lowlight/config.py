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
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml

from .errors import UserError, short_repr

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


class ConfigError(UserError, ValueError):
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
    seed: int = param(42, ge=0, lt=2**32, help="seed for every random generator (numpy, torch and xgboost "
                                                "take 32 bits)")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    experiment: str = "lowlight"
    threads: int = param(0, ge=0, help="CPU threads for torch/xgboost; 0 = library default")

    def __post_init__(self):
        if isinstance(self.experiment, str) and not self.experiment.strip():
            raise ConfigError("base.experiment: empty; MLflow needs an experiment name (e.g. lowlight)")


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
    extra_clean_path: str = param("", help="folder of clean photos darkened into extra train pairs (any "
                                           "data.source); empty = off")
    extra_pairs_per_image: int = param(2, ge=1, help="darkened versions of each extra clean photo")
    extra_clean_holdout: int = param(20, ge=0, help="extra clean photos never trained on (smallest "
                                                    "sha256 of the file name; listed in heldout.txt)")
    identity_fraction: float = param(0.0, ge=0, le=1, help="identity pairs (high as low) added to train, "
                                                           "as a fraction of the train pairs")
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


@dataclass(frozen=True)
class TrainConfig:
    model: str = "unet"
    model_args: dict = param(default_factory=dict, help="constructor arguments of the model")
    init: str = param("none", help="none | shipped | a checkpoint path: start from those weights (same model "
                                   "and arguments)")
    inputs: Literal["low", "mapped", "low+mapped"] = "low+mapped"
    loss: Literal["mse_mae", "psnr_l1", "l1_ssim"] = "l1_ssim"
    color_weight: float = param(0.0, ge=0, help="weight of an L1 term on each image's channel means (global "
                                                "brightness and colour), added to train.loss; 0 = off")
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


MAX_PARAMS_BYTES = 64 * 2**10  # params.yaml is 3 KB; pure-Python YAML reads 64 KiB of the worst kind in < 1 s
MAX_PARAMS_DEPTH = 32  # params.yaml nests 3 levels; deeper nesting would exhaust PyYAML's recursion

def _short_name(name: str) -> str:
    return name if len(name) <= 40 else name[:37] + "..."


class _ParamsLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases and duplicate keys, and with bounded nesting.

    Aliases are refused because a few hundred bytes of them (``b: [*a, *a, ...]``)
    expand to gigabytes; duplicate keys because YAML takes the last one silently while
    DVC refuses the file.
    """

    _depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConfigError(f"line {event.start_mark.line + 1}: *{_short_name(event.anchor)} is a YAML alias; "
                              "params files may not use aliases (&anchor / *alias): write the value out")
        self._depth += 1
        try:
            if self._depth > MAX_PARAMS_DEPTH:
                mark = self.peek_event().start_mark
                raise ConfigError(f"line {mark.line + 1}: nested deeper than {MAX_PARAMS_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key; the base class reports it
                    continue
                if duplicate:
                    raise ConfigError(f"line {key_node.start_mark.line + 1}: duplicate key {short_repr(key)}; YAML "
                                      "would take the last one silently and DVC refuses the file: keep one")
        return super().construct_mapping(node, deep=deep)


def _check_value(key: str, value: Any, tp, meta: Mapping[str, Any]) -> Any:
    origin = typing.get_origin(tp)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{key}: {short_repr(value)} is not allowed; use one of {', '.join(map(repr, allowed))}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping of {tp.__name__} keys, got {type(value).__name__}")
        return from_dict(tp, value, prefix=key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {short_repr(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {short_repr(value)}")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {short_repr(value)}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {short_repr(value)}")
    elif tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {short_repr(value)}")
    elif tp is dict:
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {short_repr(value)}")
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise ConfigError(f"{key}: key {short_repr(bad[0])} is not a name; keys of {key} are argument names")
        return dict(value)
    else:  # pragma: no cover - a field type this loader does not know is a bug here
        raise TypeError(f"{key}: unsupported field type {tp!r}")
    bounds = [("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
              ("le", lambda v, b: v <= b, "<="), ("lt", lambda v, b: v < b, "<")]
    for name, ok, sym in bounds:
        bound = meta.get(name)
        if bound is not None and not ok(value, bound):
            raise ConfigError(f"{key}: {short_repr(value)} is out of range; it must be {sym} {bound}")
    return value


def from_dict(cls, raw: Mapping[str, Any] | None, prefix: str = ""):
    """Build dataclass ``cls`` from ``raw``, checking every key, type and bound."""
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{prefix or 'params'}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    where = f"{prefix}." if prefix else ""
    bad = [k for k in raw if not isinstance(k, str)]
    if bad:  # YAML reads `1:` as an int and `null:` as None
        raise ConfigError(f"{prefix or 'params'}: key {short_repr(bad[0])} is not a name; allowed keys"
                          f"{' in ' + prefix if prefix else ''}: {', '.join(fields)}")
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        names = [where + _short_name(k) for k in unknown[:5]]
        names += [f"and {len(unknown) - 5} more"] if len(unknown) > 5 else []
        raise ConfigError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(names)}; "
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
    """Read and validate a whole params file (at most ``MAX_PARAMS_BYTES``, no YAML aliases or duplicate keys)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PARAMS_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read params file ({exc.strerror or exc})") from exc
    if len(data) > MAX_PARAMS_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_PARAMS_BYTES // 2**10} KiB; a params file is a few KB "
                          "(is it the right file?)")
    try:
        raw = yaml.load(data.decode("utf-8"), Loader=_ParamsLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:  # PyYAML's message spans lines (it quotes the text); keep one
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML: {where}{problem[:120]}") from None
    except ValueError as exc:  # from PyYAML's constructors: int() or a date out of range
        what = "an integer of more than 4300 digits" if "digits" in str(exc) else str(exc)[:100]
        raise ConfigError(f"{path}: unreadable value in the YAML ({what})") from None
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
