"""The package's layers point one way: every internal import goes to a lower layer.

The order is written once, here (``LAYERS``, lowest first); docs/architecture.md draws it.
A module may import its own package and any lower layer; modules that share a rank do not
import each other. Imports under ``TYPE_CHECKING`` and inside
functions count too: a dependency is a dependency wherever the statement stands.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "recadapt"

#: lowest first; a name is a top-level module or subpackage of recadapt. ``eval`` sits below
#: ``train`` (the loop validates every epoch) and ``report`` below ``train`` (every run writes
#: its analyses and figures when it ends); ``serve`` loads trained runs.
LAYERS: list[tuple[str, ...]] = [
    ("__init__", "errors", "io"),
    ("config", "distributed", "progress"),
    ("media",),
    ("data",),
    ("encoders",),
    ("cache",),
    ("nn",),
    ("models",),
    ("eval",),
    ("report",),
    ("train",),
    ("serve",),
    ("experiments",),
    ("quickstart",),
    ("cli",),
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
#: the rank-0 modules are a foundation every layer shares (errors, atomic writes, the version)
SHARED = set(LAYERS[0])


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_module(name: str) -> bool:
    return (PACKAGE / f"{name}.py").is_file() or (PACKAGE / name).is_dir()


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every ``recadapt`` module that ``path`` imports, with its line number."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    here = list(rel.parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [target]
            if target == "recadapt":  # `from recadapt import cache` names a subpackage
                names = [f"recadapt.{a.name}" for a in node.names if _is_module(a.name)] or names
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found += [(name, node.lineno) for name in names if name.split(".")[0] == "recadapt"]
    return found


def upstream_imports() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        source = _unit(".".join(rel.parts))
        if source not in RANK:
            problems.append(f"{rel}: {source!r} has no place in LAYERS")
            continue
        for target, line in _imports(path):
            unit = _unit(target)
            if unit == source or unit in SHARED:
                continue
            if unit not in RANK:
                problems.append(f"{rel}:{line}: imports {target}, which has no place in LAYERS")
            elif RANK[unit] >= RANK[source]:
                problems.append(f"{rel}:{line}: {source} imports {target} ({unit} is not below)")
    return problems


def test_every_import_points_to_a_lower_layer():
    problems = upstream_imports()
    assert not problems, "\n".join(problems)


def test_importing_the_config_imports_no_model():
    code = ("import sys, recadapt.config; "
            "print(sorted(m for m in sys.modules if m.startswith('recadapt.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    loaded = eval(out)  # a list of module names printed above
    assert not [m for m in loaded if m.startswith(("recadapt.models", "recadapt.train"))], loaded
