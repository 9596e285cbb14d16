"""Every name a benchmark script (or a stage script) imports from the package exists there.

The benchmarks read the shared datasets and take minutes, so the suite does not run them; a
name moved inside the package (a function given a module of its own) would otherwise break one
unnoticed until someone reruns it. The imports are read with ``ast``, inside functions too."""

from __future__ import annotations

import ast
import importlib

import pytest

from conftest import REPO

SCRIPTS = sorted([*(REPO / "benchmarks").glob("*.py"), *(REPO / "stages").glob("*.py")])


def _package_imports(path) -> list[tuple[int, str, str]]:
    """(line, module, name) for each ``from lowlight... import name`` in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "lowlight":
            found += [(node.lineno, node.module, alias.name) for alias in node.names]
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_package_name_a_script_imports_exists(script):
    missing = []
    for line, module, name in _package_imports(script):
        mod = importlib.import_module(module)
        if not hasattr(mod, name):
            try:  # `from lowlight.data import degrade`: a submodule
                importlib.import_module(f"{module}.{name}")
            except ModuleNotFoundError:
                missing.append(f"{script.relative_to(REPO)}:{line}: {module} has no {name}")
    assert not missing, "\n".join(missing)


def test_the_check_sees_a_missing_name(tmp_path):
    script = tmp_path / "bench.py"
    script.write_text("def main():\n    from lowlight.srgb import darken\n")
    assert _package_imports(script) == [(2, "lowlight.srgb", "darken")]
    assert not hasattr(importlib.import_module("lowlight.srgb"), "darken")
