"""`recadapt cache info`: a readable table, JSON, and one-line errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from recadapt.cache import build_cache
from recadapt.cli import app

runner = CliRunner()


def test_cache_info_table_and_json(fake_encoder, texts, tmp_path):
    cache = build_cache(fake_encoder(), texts, [0, 2], tmp_path, dtype="fp32", shard_items=10,
                        progress=False)
    result = runner.invoke(app, ["cache", "info", str(cache.path)])
    assert result.exit_code == 0, result.output
    assert "items     23" in result.output
    assert "layers    2: 0, 2" in result.output
    assert f"{cache.nbytes:,} bytes" in result.output
    assert "fake:hash" in result.output

    result = runner.invoke(app, ["cache", "info", str(cache.path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["items"] == 23 and data["layers"] == [0, 2] and data["bytes"] == cache.nbytes


def test_cache_info_on_a_non_cache_folder_is_one_line(tmp_path):
    result = runner.invoke(app, ["cache", "info", str(tmp_path)])
    assert result.exit_code == 1
    text = result.output.strip()
    assert len(text.splitlines()) == 1 and text.startswith("error: ")
    assert "not a recadapt cache" in text and "Traceback" not in text
