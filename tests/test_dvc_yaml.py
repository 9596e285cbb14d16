"""dvc.yaml stays honest: each stage depends on its script and on every `lowlight`
module the script imports (directly or through other modules), so `dvc repro`
reruns a stage exactly when its code changes; every params section it reads exists."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from lowlight.config import Params

from conftest import REPO

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _module_file(name: str) -> Path | None:
    parts = name.split(".")
    base = REPO.joinpath(*parts)
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    pkg = ".".join(path.relative_to(REPO).with_suffix("").parts)
    if path.name != "__init__.py":
        pkg = pkg.rsplit(".", 1)[0]
    else:
        pkg = pkg.rsplit(".", 1)[0] if pkg.endswith("__init__") else pkg
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found |= {f"{mod}.{a.name}" for a in node.names}
    return {m for m in found if m == "lowlight" or m.startswith("lowlight.")}


# The package's __init__ only holds lazy attribute hooks (`lowlight.enhance()`), which no
# stage goes through: following them would make every stage depend on everything.
NOT_FOLLOWED = {REPO / "lowlight" / "__init__.py"}


def _with_packages(mod: str) -> list[str]:
    """``lowlight.data.prepare`` runs ``lowlight/data/__init__.py`` first: a module and the packages above it."""
    parts = mod.split(".")
    return [".".join(parts[:k]) for k in range(2, len(parts) + 1)]


# files a module runs by path rather than by import: MLflow executes the pyfunc model's code file
RUN_BY_PATH = {REPO / "lowlight" / "inference" / "pyfunc.py": [REPO / "lowlight" / "inference" / "pyfunc_model.py"]}


def closure(script: Path) -> set[Path]:
    todo, seen = [script], set()
    while todo:
        f = todo.pop()
        for extra in RUN_BY_PATH.get(f, []):
            if extra not in seen:
                seen.add(extra)
                todo.append(extra)
        for mod in _imports(f):
            for name in _with_packages(mod):
                mf = _module_file(name)
                if mf and mf not in seen and mf not in NOT_FOLLOWED:
                    seen.add(mf)
                    todo.append(mf)
    return seen


@pytest.mark.parametrize("stage", sorted(DVC))
def test_stage_deps_cover_its_code(stage):
    spec = DVC[stage]
    script = REPO / spec["cmd"].split()[1]
    deps = [REPO / d for d in spec["deps"]]
    assert script in deps, f"{stage}: its script {script.name} is not a dep"

    def covered(f: Path) -> bool:
        return any(f == d or d in f.parents for d in deps)

    missing = sorted(str(f.relative_to(REPO)) for f in closure(script) if not covered(f))
    assert not missing, f"{stage}: add these to its deps in dvc.yaml: {missing}"


@pytest.mark.parametrize("stage", sorted(DVC))
def test_stage_deps_are_only_its_code(stage):
    """No extra code deps: editing a module a stage does not run must not rerun it."""
    spec = DVC[stage]
    code = closure(REPO / spec["cmd"].split()[1])
    extra = [d for d in spec["deps"] if d.startswith("lowlight/") and not d.startswith("lowlight/weights/")
             and not any(f == REPO / d or REPO / d in f.parents for f in code)]
    assert not extra, f"{stage}: runs none of these, drop them from its deps in dvc.yaml: {extra}"


@pytest.mark.parametrize("stage", sorted(DVC))
def test_stage_params_exist(stage):
    sections = {f for f in Params.__dataclass_fields__}
    for p in DVC[stage].get("params", []):
        key = p if isinstance(p, str) else next(iter(p))
        assert key.split(".")[0] in sections, f"{stage}: unknown params key {key}"


@pytest.mark.parametrize("stage", sorted(DVC))
def test_stage_scripts_import_their_own_checkout(stage, tmp_path):
    """`dvc exp run --temp` and queued experiments run in a copy of the repo; with the package
    installed in editable mode, a plain `import lowlight` would run the workspace's code instead."""
    import shutil
    import subprocess
    import sys

    copy = tmp_path / "copy"
    shutil.copytree(REPO / "stages", copy / "stages")
    shutil.copytree(REPO / "lowlight", copy / "lowlight", ignore=shutil.ignore_patterns("weights", "__pycache__"))
    init = copy / "lowlight" / "__init__.py"
    init.write_text(init.read_text() + "\nprint('lowlight from', __file__)\n")
    proc = subprocess.run([sys.executable, str(copy / "stages" / f"{stage}.py"), "--help"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"lowlight from {copy / 'lowlight' / '__init__.py'}" in proc.stdout
