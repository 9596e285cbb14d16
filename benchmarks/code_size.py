"""The largest modules and functions of the package and the stage scripts, against the house limits.

A module over about 300 lines or a function over about 60 (or with more than about 6
parameters) usually hides a design that a newcomer cannot read in one sitting. This prints
the largest of each and exits 1 when anything passes the hard limits given by the flags.

    python benchmarks/code_size.py [--top 8] [--module-lines 300] [--function-lines 60] [--params 6]
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sizes(paths):
    modules, functions = [], []
    for f in paths:
        src = f.read_text()
        modules.append((src.count("\n"), str(f.relative_to(ROOT))))
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                n_params = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) - (a.args[:1] != [] and a.args[0].arg in ("self", "cls"))
                functions.append((node.end_lineno - node.lineno + 1, n_params, f"{f.relative_to(ROOT)}:{node.lineno} {node.name}"))
    return sorted(modules, reverse=True), sorted(functions, reverse=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--module-lines", type=int, default=300)
    ap.add_argument("--function-lines", type=int, default=60)
    ap.add_argument("--params", type=int, default=6)
    args = ap.parse_args(argv)
    paths = sorted((ROOT / "lowlight").rglob("*.py")) + sorted((ROOT / "stages").glob("*.py"))
    modules, functions = sizes(paths)
    print("largest modules (lines):")
    for n, name in modules[: args.top]:
        print(f"  {n:5d}  {name}{'   <- over ' + str(args.module_lines) if n > args.module_lines else ''}")
    print("largest functions (lines, parameters):")
    for n, p, name in functions[: args.top]:
        print(f"  {n:5d} {p:3d}  {name}{'   <- over ' + str(args.function_lines) if n > args.function_lines else ''}")
    wide = sorted(((p, n, name) for n, p, name in functions if p > args.params), reverse=True)
    print(f"functions with more than {args.params} parameters: {len(wide)}")
    for p, n, name in wide[: args.top]:
        print(f"  {p:3d}  {name}")
    over = [m for m in modules if m[0] > args.module_lines] + [f for f in functions if f[0] > args.function_lines]
    print(f"{len(over)} over the limits")
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
