"""docs/benchmark_results.md is exactly what benchmarks/tables.py renders from the results."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _tables():
    spec = importlib.util.spec_from_file_location("bench_tables", REPO / "benchmarks" /
                                                  "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generated_results_page_matches_the_results_files() -> None:
    doc = REPO / "docs" / "benchmark_results.md"
    assert doc.read_text(encoding="utf-8") == _tables().render(), \
        "docs/benchmark_results.md is stale: run `python benchmarks/tables.py`"


def test_rows_render_every_scalar_in_order_and_skip_quick_files(tmp_path: Path) -> None:
    rows = [{"dataset": "d", "method": "m|x", "setting": "s", "epochs": 3, "HR@10": 0.12345,
             "valid": {"HR@10": 0.2}, "trainable_params": 123456, "zeta": True},
            {"dataset": "d", "method": "n", "setting": "s", "HR@10": None, "AUC": 0.5}]
    (tmp_path / "mine.json").write_text(json.dumps(rows))
    (tmp_path / "mine_quick.json").write_text(json.dumps(rows))
    text = _tables().render(tmp_path)
    assert text.count("## ") == 1 and "## mine" in text
    lines = [line for line in text.splitlines() if line.startswith("|")]
    assert lines[0] == "| dataset | method | setting | HR@10 | AUC | epochs | trainable_params " \
                       "| zeta |"
    assert lines[2] == "| d | m\\|x | s | 0.1235 |  | 3 | 123,456 | yes |"
    assert lines[3] == "| d | n | s |  | 0.5000 |  |  |  |"
