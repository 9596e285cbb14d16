"""The model registry: names -> constructors (filled by the model modules, see lowlight.models)."""


from __future__ import annotations

import inspect
import typing
from typing import Any, Callable

from torch import nn

from lowlight.config import ConfigError
from lowlight.errors import short_repr

__all__ = ["ModelError", "register_model", "list_models", "model_class", "model_arguments", "build_model",
           "count_parameters"]


class ModelError(ConfigError):
    """An unknown model name or constructor argument (a params mistake, reported in one line)."""


_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_CLASSES: dict[str, type[nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``fn`` under its own name; its return annotation must be the model class."""
    name = fn.__name__
    if name in _REGISTRY:
        raise RuntimeError(f"model {name!r} is registered twice ({_REGISTRY[name].__module__} and {fn.__module__})")
    cls = typing.get_type_hints(fn).get("return")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise RuntimeError(f"{fn.__module__}.{name}: annotate the return type with the model class")
    _REGISTRY[name] = fn
    _CLASSES[name] = cls
    return fn


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def model_class(name: str) -> type[nn.Module]:
    _check_name(name)
    return _CLASSES[name]


def model_arguments(name: str) -> list[str]:
    """Constructor arguments that ``build_model(name, ...)`` accepts."""
    params = inspect.signature(model_class(name).__init__).parameters
    return [p for p in params if p != "self"]


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate a registered model; unknown names and arguments fail with the allowed ones listed.

    The returned module carries ``model_name`` and ``model_args`` (the keyword
    arguments given here), which is what a checkpoint needs to rebuild it.
    """
    _check_name(name)
    allowed = model_arguments(name)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ModelError(f"model {name!r} has no argument{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}")
    try:
        model = _REGISTRY[name](**kwargs)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"model {name!r} with arguments {short_repr(kwargs)}: {short_repr(str(exc), 200)}") from exc
    model.model_name = name
    model.model_args = dict(kwargs)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _check_name(name: str) -> None:
    if name not in _REGISTRY:
        raise ModelError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
