"""``recadapt report`` on runs trained through the pipeline: the numbers shown are the runs'
own, the p-values are the paired t-test's, the images decode, and the file is self-contained."""

from __future__ import annotations

import base64
import io
import json
import re
from html import unescape

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from recadapt.cli import app
from recadapt.data.inspect import describe
from recadapt.data.readers import read_dataset
from recadapt.eval.significance import paired_t_test
from recadapt.eval.significance_runs import per_user_metric
from recadapt.report.build import write_report


@pytest.fixture(scope="module")
def html_report(trained_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    result = CliRunner().invoke(app, ["report", *map(str, trained_runs), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert str(out) in result.output
    return out.read_text(encoding="utf-8")


def table(html: str, ident: str) -> list[list[str]]:
    """The rows of the table with id ``ident`` as lists of cell texts (header first)."""
    body = re.search(rf'<table id="{ident}">(.*?)</table>', html, re.S)
    assert body, f"no table {ident}"
    return [[unescape(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)]


def test_metrics_table_shows_each_runs_test_metrics(trained_runs, html_report):
    rows = table(html_report, "metrics")
    header, by_run = rows[0], {row[0]: row for row in rows[1:]}
    assert set(by_run) == {"sasrec", "gru4rec"}
    for run in trained_runs:
        metrics = json.loads((run / "metrics.json").read_text())["test"]
        for name, value in metrics.items():
            assert by_run[run.name][header.index(name)] == f"{value:.4f}"


def test_p_values_are_the_paired_t_test_on_the_same_ranks(trained_runs, html_report):
    sasrec, gru4rec = trained_runs
    rows = table(html_report, "significance")
    header = rows[0]
    found = {row[header.index("metric")]: row for row in rows[1:]}
    assert set(found) == {"HR@5", "NDCG@5", "HR@10", "NDCG@10"}
    ranks = {run: np.asarray(json.loads((run / "ranks.json").read_text())["ranks"])
             for run in trained_runs}
    for metric, row in found.items():
        assert row[:2] == ["gru4rec", "sasrec"]  # each run against the first
        expected = paired_t_test(per_user_metric(ranks[gru4rec], metric),
                                 per_user_metric(ranks[sasrec], metric))
        p_cell = row[header.index("p-value")]
        assert float(p_cell) == pytest.approx(expected["p_value"], rel=1e-2, abs=1e-4)
        assert float(row[header.index("mean diff")]) == pytest.approx(expected["mean_diff"],
                                                                      abs=1e-4)
        assert int(row[header.index("users")]) == expected["n"]
        assert row[-1] == ("yes" if expected["p_value"] < 0.05 else "no")


def test_images_are_embedded_pngs_that_decode(html_report):
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html_report)
    assert len(images) >= 2  # learning curves and efficiency bars
    for data in images:
        with Image.open(io.BytesIO(base64.b64decode(data))) as image:
            image.load()
            assert image.width > 200 and image.height > 100


def test_the_file_is_self_contained(html_report):
    assert "<script" not in html_report
    assert not re.search(r'(src|href)="(https?:)?//', html_report)


def test_efficiency_config_diff_and_dataset_card(trained_runs, html_report):
    sasrec, _ = trained_runs
    efficiency = json.loads((sasrec / "efficiency.json").read_text())
    rows = table(html_report, "efficiency")
    row = next(r for r in rows if r[0] == "sasrec")
    assert row[rows[0].index("trainable parameters")] == f"{efficiency['trainable_params']:,}"
    diff = {r[0]: r[1:] for r in table(html_report, "config-diff")[1:]}
    assert diff["model.name"] == ["sasrec", "gru4rec"]
    assert "train.lr" not in diff  # equal keys are only in the full configs
    assert "<details>" in html_report and "num_heads" in html_report
    source = yaml.safe_load((sasrec / "config.yaml").read_text())["data"]["source"]
    users = describe(read_dataset(source))["users"]
    assert re.search(rf"<td>users</td><td[^>]*>{users}</td>", html_report)


def test_markdown_report_has_the_same_tables(trained_runs, tmp_path):
    out = write_report(list(trained_runs), tmp_path / "report.md", read_data=False)
    text = out.read_text(encoding="utf-8")
    value = json.loads((trained_runs[0] / "metrics.json").read_text())["test"]["NDCG@10"]
    assert re.search(rf"^\| sasrec \|.*\| {value:.4f} \|", text, re.M)
    assert "| gru4rec | sasrec | NDCG@10 |" in text
    assert "![training loss and validation NDCG@10 per epoch](data:image/png;base64," in text
    assert "not read (--no-data)" in text


def test_baseline_and_format_options(trained_runs, tmp_path):
    sasrec, gru4rec = trained_runs
    out = tmp_path / "report.txt"
    result = CliRunner().invoke(app, ["report", str(sasrec), str(gru4rec), "--out", str(out),
                                      "--format", "md", "--baseline", str(gru4rec),
                                      "--no-data"])
    assert result.exit_code == 0, result.output
    assert "| sasrec | gru4rec | NDCG@10 |" in out.read_text(encoding="utf-8")
