"""Every YAML run config shipped in configs/ validates (keys, types, model section), and every
paper config (configs/papers/<paper>/<table>.yaml) keeps its header convention: the paper, the
table it reproduces, the benchmark command that runs the whole table, the `recadapt train` line
that runs its headline row, and `# Row NAME: overrides` lines that each give a valid config."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from recadapt.config import load_config

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "configs"
# configs/prompts/ holds prompt templates (PromptBuilder), configs/experiments/ grids of runs
# (`recadapt experiment`, tested in tests/test_experiments.py), not run configs
CONFIGS = sorted(p for p in CONFIG_DIR.rglob("*.yaml")
                 if p.relative_to(CONFIG_DIR).parts[0] not in ("prompts", "experiments"))
PAPER_CONFIGS = sorted((CONFIG_DIR / "papers").rglob("*.yaml"))
PAPERS = ("iisan_versa", "crossan", "a_llmrec", "reclora", "atflrec")


def _id(path: Path) -> str:
    return str(path.relative_to(CONFIG_DIR))


def _header(path: Path) -> list[str]:
    """The leading comment lines of the file, '# ' stripped."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].strip())
    return lines


def _field(header: list[str], key: str) -> str | None:
    return next((line[len(key) + 1:].strip() for line in header if line.startswith(key + ":")),
                None)


@pytest.mark.parametrize("path", CONFIGS, ids=[_id(p) for p in CONFIGS])
def test_shipped_config_is_valid(path):
    config = load_config(path)
    assert config.model["name"]


def test_there_are_configs():
    assert CONFIGS
    assert {p.parent.name for p in PAPER_CONFIGS} == set(PAPERS)


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=[_id(p) for p in PAPER_CONFIGS])
def test_paper_config_header(path):
    header = _header(path)
    assert header, f"{_id(path)}: no header comment"
    assert _field(header, "Paper"), "header names no paper ('# Paper: ...')"
    table = _field(header, "Table")
    assert table and re.search(r"\b(Table|Figure)\s+[0-9IVX]+", table), \
        "header names no table or figure ('# Table: Table III ...')"
    command = _field(header, "Command")
    assert command, "header gives no benchmark command ('# Command: ...')"
    script = re.search(r"python (?:benchmarks/)?(\w+\.py)", command)
    assert script and (REPO / "benchmarks" / script.group(1)).is_file(), \
        f"the command names no existing benchmark script: {command}"
    run = _field(header, "Run")
    assert run and run.startswith(f"recadapt train {path.relative_to(REPO).as_posix()} "), \
        "header's '# Run:' line does not train this file"


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=[_id(p) for p in PAPER_CONFIGS])
def test_paper_config_rows_are_valid_overrides(path):
    """Each '# Row NAME: key=value ...' line is a set of overrides that gives a valid config."""
    rows = [re.match(r"Row (.+?): (.+)$", line) for line in _header(path)]
    for row in filter(None, rows):
        try:
            load_config(path, shlex.split(row.group(2)))
        except Exception as err:  # name the row in the failure
            pytest.fail(f"row {row.group(1)!r}: {err}")
