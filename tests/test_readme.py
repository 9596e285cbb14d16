"""The README stays a front door, and its figures stay those the pipeline wrote.

The demo table is copied from ``metrics/eval_table.md`` (written by the evaluate stage and
committed with ``dvc.lock``); the stage names from ``dvc.yaml``; links point at files that exist.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _block(text: str, name: str) -> list[str]:
    found = re.search(rf"<!-- {name}:start -->\n(.*?)<!-- {name}:end -->", text, re.S)
    assert found, f"README.md: no <!-- {name}:start --> ... <!-- {name}:end --> block"
    return [line for line in found.group(1).splitlines() if line.strip()]


def test_readme_is_a_front_door():
    lines = README.splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move detail to docs/"
    head = "\n".join(lines[:60])
    assert "make repro" in head and "make test" in head  # the two commands, early


def test_readme_demo_table_is_the_evaluate_stage_table():
    table = [line for line in (REPO / "metrics" / "eval_table.md").read_text().splitlines() if line.startswith("|")]
    assert _block(README, "demo-table") == table, ("README.md's demo table differs from metrics/eval_table.md: "
                                                    "copy the table the evaluate stage wrote")


def test_readme_names_every_stage_of_dvc_yaml():
    stages = list(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
    diagram = README[README.index("## How the pipeline fits together"):]
    for stage in stages:
        assert f"`{stage}`" in diagram and stage in diagram.split("```")[1], f"README.md: stage {stage} missing"
    table_rows = re.findall(r"^\| `(\w+)` \|", diagram, re.M)
    assert table_rows == stages, "README.md: the stage table should list dvc.yaml's stages, in order"


def test_readme_and_docs_links_exist():
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" in target:
                continue
            assert (doc.parent / target).exists(), f"{doc.relative_to(REPO)}: link to {target}, which does not exist"
