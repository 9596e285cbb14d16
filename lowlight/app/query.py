"""The settings a page request carries, ``strength``, ``exposure`` and ``shadows``, checked as ``lowlight enhance``
checks its flags; a bad one is a ValueError of one line that names the query parameter."""

from __future__ import annotations

from collections.abc import Callable

from lowlight.app.jobs import one_line

__all__ = ["parse_strength", "parse_exposure", "parse_shadows"]


def _parse(text: str, check: Callable, name: str):
    try:
        value = float(text)
    except ValueError:
        value = text  # the check refuses it with the usual message
    try:
        return check(value)
    except ValueError as exc:
        message = one_line(str(exc)).replace(f"--{name} ", f"{name} ", 1)
        raise ValueError(message.replace("leave it out for auto", "auto (or leave it out)")) from None


def parse_strength(text: str | None) -> float:
    """``strength``: 1 when left out or empty, else a number from 0 to STRENGTH_MAX."""
    from lowlight.inference.enhancer import check_strength

    return 1.0 if text is None or text == "" else _parse(text, check_strength, "strength")


def parse_exposure(text: str | None) -> float:
    """``exposure``: 0 stops when left out or empty, else a number from -EXPOSURE_MAX to EXPOSURE_MAX."""
    from lowlight.inference.enhancer import check_exposure

    return 0.0 if text is None or text == "" else _parse(text, check_exposure, "exposure")


def parse_shadows(text: str | None) -> float | None:
    """``shadows``: None for auto (left out, empty or ``auto``), else a number from 0 to SHADOWS_MAX."""
    from lowlight.inference.enhancer import check_shadows

    return None if text is None or text in ("", "auto") else _parse(text, check_shadows, "shadows")
