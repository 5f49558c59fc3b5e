"""data.format: alpaca from the command line: TALLRec trained and evaluated end to end on the
example folder (a tiny random Llama, one epoch), evaluate --data, ATFLRec text only, like-rate,
and the one-line refusals (RecLoRA, ATFLRec's audio modes, a bad file)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from recadapt.cli import app

runner = CliRunner()
FAST = ["train.epochs=1", "train.batch_size=8", "train.num_threads=1", "--quiet"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    text = result.output.strip()
    assert "Traceback" not in text and len(text.splitlines()) == 1, text
    assert text.startswith("error: ")
    for fragment in fragments:
        assert fragment in text, text


@pytest.fixture(scope="module")
def tallrec_run(tmp_path_factory, alpaca_folder, tiny_llm):
    out = tmp_path_factory.mktemp("alpaca-cli") / "tallrec"
    result = invoke("train", f"data.source={alpaca_folder}", "data.task=ctr",
                    "model.name=tallrec", f"model.llm={tiny_llm}", *FAST, "--out", out)
    assert result.exit_code == 0, result.output
    return out


def test_tallrec_trains_and_evaluates_on_the_alpaca_folder(tallrec_run):
    metrics = json.loads((tallrec_run / "metrics.json").read_text())
    for part in ("valid", "test"):
        assert set(metrics[part]) == {"AUC", "LogLoss"}
        assert 0 <= metrics[part]["AUC"] <= 1
    assert metrics["dataset"] == "alpaca"
    predictions = json.loads((tallrec_run / "predictions.json").read_text())
    assert len(predictions["probs"]) == len(predictions["labels"]) == 12  # every test record
    config = (tallrec_run / "config.yaml").read_text()
    assert "prompt_format: alpaca" in config and "train_on_inputs: true" in config


def test_evaluate_data_writes_auc_logloss_accuracy(tallrec_run, alpaca_folder):
    result = invoke("evaluate", tallrec_run, "--data", alpaca_folder / "test.json")
    assert result.exit_code == 0, result.output
    output = json.loads(result.stdout)
    assert set(output["metrics"]) == {"AUC", "LogLoss", "Accuracy"}
    assert output["records"] == 12 and output["positive_rate"] == 0.5
    assert json.loads((tallrec_run / "eval_data_test.json").read_text()) == output
    # the test file is the run's own test part: the same AUC and LogLoss
    test = json.loads((tallrec_run / "metrics.json").read_text())["test"]
    assert output["metrics"]["AUC"] == pytest.approx(test["AUC"])
    assert output["metrics"]["LogLoss"] == pytest.approx(test["LogLoss"], abs=1e-6)


def test_evaluate_data_refuses_what_it_cannot_score(tallrec_run, alpaca_folder, tmp_path):
    one_line_error(invoke("evaluate", tallrec_run, "--data", alpaca_folder), "is not a file")
    same = tmp_path / "yes.json"
    same.write_text(json.dumps([{"instruction": "i", "input": "x", "output": "Yes."}] * 3))
    one_line_error(invoke("evaluate", tallrec_run, "--data", same), "AUC needs both answers")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"instruction": "i", "input": "x", "output": "Perhaps"}]))
    one_line_error(invoke("evaluate", tallrec_run, "--data", bad), "bad.json: record index 0",
                   "neither 'Yes' nor 'No'")


def test_a_bad_file_is_one_line_on_train(tmp_path):
    bad = tmp_path / "records.json"
    bad.write_text(json.dumps([{"instruction": "i", "input": "x", "output": "Yes"},
                               {"instruction": "i", "output": "No"}]))
    one_line_error(invoke("train", f"data.source={bad}", "data.task=ctr", "model.name=like-rate",
                          "--out", tmp_path / "run"),
                   "records.json: record index 1 has no 'input' key")
    assert not (tmp_path / "run").exists()


def test_reclora_refuses_alpaca_records(alpaca_folder, tmp_path):
    one_line_error(invoke("train", f"data.source={alpaca_folder}", "data.task=ctr",
                          "model.name=reclora", "--out", tmp_path / "run"),
                   "model.name: reclora", "user and item ids")
    assert not (tmp_path / "run").exists()  # refused before its CTR model trains


def test_atflrec_runs_text_only(alpaca_folder, tmp_path):
    one_line_error(invoke("train", f"data.source={alpaca_folder}", "data.task=ctr",
                          "model.name=atflrec", "--out", tmp_path / "dual"),
                   "model.lora_mode: dual", "model.lora_mode=text")
    out = tmp_path / "text"
    result = invoke("train", f"data.source={alpaca_folder}", "data.task=ctr",
                    "model.name=atflrec", "model.lora_mode=text", "model.max_length=128",
                    *FAST, "--out", out)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["test"]) == {"AUC", "LogLoss"}
    result = invoke("evaluate", out, "--data", alpaca_folder / "valid.json")
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)["metrics"]) == {"AUC", "LogLoss", "Accuracy"}


def test_like_rate_on_one_file(alpaca_folder, tmp_path):
    out = tmp_path / "like-rate"
    result = invoke("train", f"data.source={alpaca_folder / 'train.json'}", "data.task=ctr",
                    "model.name=like-rate", "--quiet", "--out", out)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["AUC"] == 0.5  # no histories: every record scores the prior
    result = invoke("evaluate", out, "--data", alpaca_folder / "test.json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metrics"]["Accuracy"] == 0.5
