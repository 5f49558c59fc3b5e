"""Report sections fed by hand-made run folders: method analyses (CROSSAN, MOMEF, RecLoRA,
A-LLMRec), unfinished runs, broken files (one-line errors naming the file) and the dataset
card of synthetic or absent data."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from recadapt.cli import app
from recadapt.errors import RecAdaptError
from recadapt.report.build import write_report
from recadapt.report.plots import gate_heatmap

METRICS = {"valid": {"NDCG@10": 0.25}, "test": {"NDCG@10": 0.3125, "HR@10": 0.5},
           "protocol": "full", "dataset": "x"}
CROSSAN_GATES = {"towers": ["text", "image"], "columns": ["H", "text", "image"],
                 "values": np.full((2, 3, 3), 1 / 3).round(6).tolist()}
FUSION = {"mode": "momef", "top_k": 1, "mean_weight": {"text": 0.7, "image": 0.3},
          "chosen_share": {"text": 0.8, "image": 0.2}}
MUTUAL_INFORMATION = {"estimator": "KSG", "items": 40, "pairs": {"text|image": 0.4321},
                      "mean": 0.4321}
RECLORA_GATES = {"kind": "reclora_meta_lora_gates", "num_meta": 2, "users": ["u1", "u2"],
                 "samples": [3, 1], "gates": [[0.9, 0.1], [0.2, 0.8]], "mean": [0.725, 0.275],
                 "argmax_share": [0.75, 0.25]}
GENERATIONS = [{"user": 0, "history": ["Heat", "Casino"], "favourite_genres": "crime <b>"}]


def report_of(*runs, tmp_path, **options) -> str:
    out = write_report(list(runs), tmp_path / "report.html", **options)
    return out.read_text(encoding="utf-8")


def decoded_images(html: str) -> list[Image.Image]:
    images = []
    for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html):
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        image.load()
        images.append(image)
    return images


def test_method_analyses_are_plotted(tmp_path, run_writer):
    crossan = run_writer(tmp_path / "crossan", metrics=METRICS, gates_json=CROSSAN_GATES,
                         fusion_weights_json=FUSION, mutual_information_json=MUTUAL_INFORMATION)
    reclora = run_writer(tmp_path / "reclora", metrics=METRICS, gates_json=RECLORA_GATES)
    allmrec = run_writer(tmp_path / "allmrec", metrics=METRICS, generations_json=GENERATIONS)
    html = report_of(crossan, reclora, allmrec, tmp_path=tmp_path)
    assert 'alt="CROSSAN gate heatmap"' in html and 'alt="expert usage"' in html
    assert 'alt="mutual information"' in html and "0.4321" in html
    assert 'alt="RecLoRA gates"' in html and "0.7250" in html  # mean weight of LoRA 1
    assert "Heat; Casino" in html and "crime &lt;b&gt;" in html  # generations, escaped
    assert len(decoded_images(html)) == 4


def test_unfinished_run_is_reported_as_unfinished(tmp_path, run_writer):
    done = run_writer(tmp_path / "done", metrics=METRICS)
    running = run_writer(tmp_path / "running", metrics=None, history_json=[
        {"epoch": 1, "loss": 2.0, "valid": {"NDCG@10": 0.1}},
        {"epoch": 2, "loss": 1.5, "valid": {"NDCG@10": 0.2}}])
    html = report_of(done, running, tmp_path=tmp_path)
    assert "unfinished (no metrics.json)" in html
    assert "Unfinished (no metrics.json yet): running." in html
    assert 'alt="training loss and validation NDCG@10 per epoch"' in html  # partial curves


@pytest.mark.parametrize(("name", "content", "fragment"), [
    ("metrics.json", "{not json", "metrics.json: not valid JSON"),
    ("metrics.json", "[1, 2]", "metrics.json: expected a JSON object, got array"),
    ("metrics.json", '{"valid": {}}', "metrics.json: no 'test' section"),
    ("history.json", '{"epoch": 1}', "history.json: expected a JSON array, got object"),
    ("gates.json", '{"towers": ["a"], "values": [1, 2]}', "gates.json: unexpected layout"),
    ("ranks.json", '{"users": []}', "ranks.json: expected 'protocol', 'users' and 'ranks'"),
    ("config.yaml", "data: [unclosed", "config.yaml: not valid YAML"),
])
def test_broken_files_are_one_line_errors_naming_the_file(tmp_path, run_writer, name, content,
                                                         fragment):
    run = run_writer(tmp_path / "run", metrics=METRICS)
    (run / name).write_text(content, encoding="utf-8")
    with pytest.raises(RecAdaptError, match=re.escape(fragment)):
        write_report([run], tmp_path / "report.html")
    result = CliRunner().invoke(app, ["report", str(run), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 1
    assert result.output.strip().startswith("error: ") and fragment in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "r.html").exists()


def test_not_a_run_directory_and_bad_output(tmp_path, run_writer):
    run = run_writer(tmp_path / "run", metrics=METRICS)
    with pytest.raises(RecAdaptError, match=r"config\.yaml is missing"):
        write_report([tmp_path], tmp_path / "report.html")
    with pytest.raises(RecAdaptError, match=r"end it in \.html or \.md"):
        write_report([run], tmp_path / "report.pdf")
    with pytest.raises(RecAdaptError, match="--format must be html or md"):
        write_report([run], tmp_path / "report.html", fmt="pdf")
    with pytest.raises(RecAdaptError, match=r"--baseline .* is not one of the run"):
        write_report([run], tmp_path / "report.html", baseline=tmp_path)


def test_dataset_card_says_when_the_data_is_absent(tmp_path, run_writer):
    run = run_writer(tmp_path / "run", metrics=METRICS)
    html = report_of(run, tmp_path=tmp_path)
    assert f"not read: {tmp_path / 'run' / 'absent-data'} is not on this machine" in html


def test_dataset_card_labels_synthetic_data(tmp_path, run_writer):
    data = tmp_path / "synth"
    data.mkdir()
    pairs = ["user,item,timestamp"] + [f"{u},{i},{10 * u + i}" for u in range(1, 6)
                                       for i in range(1, 5)]
    (data / "synth_pairs.csv").write_text("\n".join(pairs) + "\n", encoding="utf-8")
    (data / "synth_meta.json").write_text(json.dumps({
        "synthetic": True, "name": "synth", "generator": "recadapt data synth", "seed": 7,
        "description": "SYNTHETIC data generated by recadapt for this test."}), encoding="utf-8")
    run = run_writer(tmp_path / "run", metrics=METRICS,
                     config={"data": {"source": str(data)}, "model": {"name": "sasrec"}})
    html = report_of(run, tmp_path=tmp_path)
    assert "SYNTHETIC DATA: synth was generated (recadapt data synth, seed 7)" in html
    assert "SYNTHETIC data generated by recadapt for this test." in html
    assert re.search(r"<td>synthetic</td><td>yes</td>", html)
    assert re.search(r"<td>interactions</td><td[^>]*>20</td>", html)


def test_gate_heatmap_still_writes_a_png(tmp_path):
    path = gate_heatmap(np.asarray(CROSSAN_GATES["values"]), ["text", "image"],
                        tmp_path / "gates.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 100
    assert [p.name for p in tmp_path.iterdir()] == ["gates.png"]  # no temporary file left
