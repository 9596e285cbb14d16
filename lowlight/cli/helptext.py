"""Docstrings as command-line help: reST markup shown as plain words."""

from __future__ import annotations

import re

__all__ = ["plain"]


def plain(doc: str) -> str:
    """A docstring as help text: reST markup (``code``, :mod:`x`) shown as plain words."""
    doc = re.sub(r":\w+:`~?([^`]+)`", r"\1", doc)
    return doc.replace("``", "")
