"""Frozen dataclasses from untrusted mappings: the checking behind ``lowlight.config``.

:func:`param` puts a field's bounds and help in its metadata; :func:`from_dict`
checks every key, type and bound of a mapping against a dataclass and names the
key in its :class:`ConfigError` (``train.lr``); :func:`read_yaml` reads a small
YAML file without aliases or duplicate keys. Nothing here knows ``params.yaml``'s
sections: those are in :mod:`lowlight.config`.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Any, Literal

import yaml

from lowlight.errors import UserError, short_repr

__all__ = ["ConfigError", "param", "from_dict", "to_dict", "flatten", "read_yaml", "MAX_PARAMS_BYTES"]


class ConfigError(UserError, ValueError):
    """A params file or mapping that does not fit the typed config."""


def param(default: Any = dataclasses.MISSING, *, ge=None, gt=None, le=None, lt=None,
          default_factory: Any = dataclasses.MISSING, help: str = "") -> Any:
    """A dataclass field with numeric bounds checked at load time."""
    meta = {"ge": ge, "gt": gt, "le": le, "lt": lt, "help": help}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


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


def read_yaml(path: Path) -> Any:
    """The YAML file at ``path`` as plain data; every way it can be unreadable is one :class:`ConfigError`."""
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
    return raw


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
