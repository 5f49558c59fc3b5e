"""Grids of named runs (recadapt.experiments): reuse of a finished run under the same config,
set-aside of one under another, resume of a stopped one, --only, --resume and the results
rows, the shared argument parser, and `recadapt experiment GRID.yaml` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from recadapt import experiments
from recadapt.cli import app
from recadapt.config import validate_config
from recadapt.errors import ConfigError
from recadapt.experiments import (
    Experiment,
    Results,
    Run,
    experiment_parser,
    grid_from_mapping,
    load_grid,
    same_config,
    train_into,
)

REPO = Path(__file__).resolve().parents[1]


def _raw(source: Path, **train) -> dict:
    return {"data": {"source": str(source), "max_seq_len": 10},
            "model": {"name": "sasrec", "hidden_size": 16},
            "train": {"epochs": 2, "batch_size": 32, "lr": 0.01, "num_threads": 1, **train},
            "eval": {"ks": [5, 10]}}


@pytest.fixture
def trainings(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, bool]]:
    """Every train_run call the experiment makes: (lr, resume); the real loop still runs."""
    from recadapt.train import loop

    calls: list[tuple[float, bool]] = []
    real = loop.train_run

    def spy(config, run_dir, **kwargs):
        calls.append((config.train.lr, kwargs.get("resume", False)))
        return real(config, run_dir, **kwargs)

    monkeypatch.setattr(loop, "train_run", spy)
    return calls


def test_a_finished_run_is_reused_and_one_of_another_config_set_aside(
        cyclic_csv: Path, tmp_path: Path, trainings, capsys) -> None:
    folder = tmp_path / "runs" / "sasrec"
    train_into(_raw(cyclic_csv), folder)
    first = (folder / "metrics.json").read_text()
    assert trainings == [(0.01, False)]
    train_into(_raw(cyclic_csv), folder)  # same config: nothing trains
    assert trainings == [(0.01, False)] and (folder / "metrics.json").read_text() == first
    assert "reusing the finished run" in capsys.readouterr().out
    # the stored config lacks a field added since (with its default): still the same run
    stored = yaml.safe_load((folder / "config.yaml").read_text())
    del stored["train"]["patience"]
    (folder / "config.yaml").write_text(yaml.safe_dump(stored))
    assert same_config(folder, _raw(cyclic_csv))
    train_into(_raw(cyclic_csv, lr=0.02), folder)  # another lr: the old run is moved aside
    assert trainings[-1] == (0.02, False)
    assert "moved to sasrec.replaced-1" in capsys.readouterr().out
    aside = folder.with_name("sasrec.replaced-1")
    assert (aside / "metrics.json").read_text() == first
    assert validate_config(yaml.safe_load((folder / "config.yaml").read_text())).train.lr == 0.02
    assert not same_config(folder, _raw(cyclic_csv)) and not same_config(tmp_path, _raw(
        cyclic_csv))  # a folder without a run is another config too


def test_a_stopped_run_resumes_from_its_last_epoch(cyclic_csv: Path, tmp_path: Path,
                                                   trainings) -> None:
    from recadapt.train.loop import train_run

    raw = _raw(cyclic_csv, epochs=3, patience=5)
    folder = tmp_path / "run"

    def interrupt(epoch: int, record: dict) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(experiments.resolved_config(raw), folder, progress=False,
                  on_epoch_end=interrupt)
    first_epoch = json.loads((folder / "history.json").read_text())
    assert len(first_epoch) == 1 and not (folder / "metrics.json").exists()
    trainings.clear()
    train_into(raw, folder)
    assert trainings == [(0.01, True)]
    history = json.loads((folder / "history.json").read_text())
    assert len(history) == 3 and history[0] == first_epoch[0]  # epoch 1 was not trained again


def test_rows_only_resume_and_needs(cyclic_csv: Path, tmp_path: Path, trainings,
                                    capsys) -> None:
    results = tmp_path / "results" / "bench.json"
    base = Run("base run", _raw(cyclic_csv, lr=0.03), {"dataset": "cyclic"})
    runs = [Run("sasrec", _raw(cyclic_csv), {"dataset": "cyclic", "setting": "s1",
                                             "section": "main"}, needs=(base,)),
            Run("gru4rec", {**_raw(cyclic_csv), "model": {"name": "gru4rec"}},
                {"dataset": "cyclic", "method": "GRU4Rec", "setting": "s1"}, keep=False)]
    experiment = Experiment(Results(results), tmp_path / "runs", only=["sasrec"],
                            columns=["HR@10"])
    rows = experiment.run_all(runs)
    assert [r["method"] for r in rows] == ["sasrec"]
    assert [lr for lr, _ in trainings] == [0.03, 0.01]  # the needed run first
    assert (tmp_path / "runs" / "base_run" / "metrics.json").is_file()
    row = json.loads(results.read_text())[0]
    assert list(row)[:4] == ["dataset", "method", "setting", "section"]
    assert {"HR@5", "NDCG@10", "valid", "epochs", "seconds_per_epoch", "trainable_params",
            "curve"} <= set(row)
    assert len(row["curve"]) == 2 and "NDCG@10" in row["curve"][0]
    assert capsys.readouterr().out.strip().splitlines()[-1].split()[:3] == ["cyclic", "sasrec",
                                                                          "s1"]
    # every run now; --resume keeps the recorded row, the temporary run leaves no folder
    trainings.clear()
    experiment = Experiment(Results(results), tmp_path / "runs", resume=True)
    experiment.run_all(runs)
    assert [lr for lr, _ in trainings] == [0.01]  # GRU4Rec only (its lr: the base's)
    assert not (tmp_path / "runs" / "gru4rec").exists()
    assert "kept from an earlier run: sasrec" in capsys.readouterr().err
    assert [r["method"] for r in json.loads(results.read_text())] == ["sasrec", "GRU4Rec"]
    # another setting: the row is replaced (same identity), not added; the run is reused
    trainings.clear()
    again = Run("sasrec", _raw(cyclic_csv), {"dataset": "cyclic", "setting": "s2"})
    Experiment(Results(results), tmp_path / "runs", resume=True).run(again)
    assert trainings == []
    assert [(r["method"], r["setting"]) for r in json.loads(results.read_text())] == [
        ("GRU4Rec", "s1"), ("sasrec", "s2")]


def test_results_keys_annotate_and_fresh_files(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    seen: list[int] = []
    results = Results(path, key=("method",), annotate=lambda rows: seen.append(len(rows)),
                      written=lambda p: seen.append(-1))
    results.record({"dataset": "a", "method": "m", "setting": "s"})
    results.record({"dataset": "b", "method": "m", "setting": "t"})
    assert json.loads(path.read_text()) == [{"dataset": "b", "method": "m", "setting": "t"}]
    assert seen == [1, -1, 1, -1]
    assert Results(path).find({"dataset": "b", "method": "m", "setting": "t"})
    assert not Results(path).find({"dataset": "b", "method": "m", "setting": "other"})
    assert Results(path, keep=False).rows == []
    path.write_text('{"not": "a list"}')
    with pytest.raises(Exception, match="JSON list of result rows"):
        Results(path)


def test_the_shared_parser_takes_the_common_options_and_a_benchmark_s_own() -> None:
    parser = experiment_parser("bench", omit=["runs_dir"])
    parser.add_argument("--sections", nargs="+", default=["a"])
    args = parser.parse_args(["--quick", "--resume", "--only", "x y", "z", "--threads", "2"])
    assert (args.quick, args.resume, args.only, args.threads, args.sections) == (
        True, True, ["x y", "z"], 2, ["a"])
    assert not hasattr(args, "runs_dir")
    assert experiment_parser("b").parse_args(["--runs-dir", "d"]).runs_dir == "d"
    with pytest.raises(ValueError, match="unknown options"):
        experiment_parser("b", omit=["nope"])


def _grid(source: Path) -> dict:
    return {"base": _raw(source),
            "runs": [{"name": "sasrec", "overrides": ["train.lr=0.02"]},
                     {"name": "popularity", "overrides": {"model": {"name": "popularity"}},
                      "method": "Popularity"}]}


@pytest.mark.parametrize(("data", "message"), [
    ([1, 2], "grid: the top level must be a mapping"),
    ({"runs": []}, "grid: runs must be a non-empty list"),
    ({"runs": {"name": "a"}}, "grid: runs must be a non-empty list"),
    ({"runz": []}, "grid: unknown key 'runz'"),
    ({"runs": ["a"]}, "grid: runs[0] must be a mapping"),
    ({"runs": [{"overrides": []}]}, "grid: runs[0] has no name"),
    ({"runs": [{"name": "a"}, {"name": "a"}]},
     "grid: runs[1] (a): duplicate name (runs[0] has it already)"),
    ({"runs": [{"name": "a", "lr": 1}]}, "grid: runs[0] (a): unknown key 'lr'"),
    ({"runs": [{"name": "a", "overrides": "train.lr=1"}]},
     "grid: runs[0] (a): overrides must be a list"),
    ({"runs": [{"name": "a", "overrides": ["train.lrr=1"]}]},
     "grid: runs[0] (a): unknown key 'train.lrr'"),
    ({"runs": [{"name": "a", "overrides": {"model.hidden_sise": 3}}]},
     "grid: runs[0] (a): unknown key 'model.hidden_sise'"),
    ({"base": "missing.yaml", "runs": [{"name": "a"}]},
     "grid: base config missing.yaml not found"),
])
def test_bad_grids_fail_in_one_line_naming_the_entry(data, message) -> None:
    with pytest.raises(ConfigError) as err:
        grid_from_mapping(data)
    text = str(err.value)
    assert text.startswith(message) and "\n" not in text, text


def test_a_grid_reads_overrides_both_ways_and_the_example_grid_is_valid(
        cyclic_csv: Path, tmp_path: Path) -> None:
    grid = grid_from_mapping(_grid(cyclic_csv))
    sasrec, popularity = grid.runs
    assert sasrec.config["train"]["lr"] == 0.02 and sasrec.fields["setting"] == "train.lr=0.02"
    assert popularity.config["model"]["name"] == "popularity"
    assert popularity.fields == {"method": "Popularity", "setting": "model.name=popularity"}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(_raw(cyclic_csv)))
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump({"base": "base.yaml",
                                                        "runs": [{"name": "a"}]}))
    assert load_grid(tmp_path / "grid.yaml").runs[0].fields["setting"] == "base config"
    example = load_grid(REPO / "configs" / "experiments" / "sequence_models.yaml")
    assert [r.name for r in example.runs] == ["popularity", "sasrec", "gru4rec"]
    assert example.runs[2].config["train"]["lr"] == 0.003


def test_recadapt_experiment_end_to_end(cyclic_csv: Path, tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(_grid(cyclic_csv)))
    runs = tmp_path / "runs"
    runner = CliRunner()
    result = runner.invoke(app, ["experiment", str(grid), "--runs-dir", str(runs), "--quiet",
                                 "--only", "sasrec"])
    assert result.exit_code == 0, result.output
    rows = json.loads((runs / "results.json").read_text())
    assert [r["method"] for r in rows] == ["sasrec"] and rows[0]["dataset"] == "cyclic"
    table = result.output.split("dataset")[1]
    assert "HR@5" in table and "seconds_per_epoch" in table and "sasrec" in table
    assert (runs / "report.html").is_file() and not (runs / "popularity").exists()
    report = tmp_path / "report.md"
    result = runner.invoke(app, ["experiment", str(grid), "--runs-dir", str(runs), "--quiet",
                                 "--results", str(tmp_path / "all.json"), "--report",
                                 str(report)])
    assert result.exit_code == 0, result.output
    assert "reusing the finished run" in result.output
    assert [r["method"] for r in json.loads((tmp_path / "all.json").read_text())] == [
        "sasrec", "Popularity"]
    assert "Popularity" in result.output and "2 runs" in result.output
    assert "popularity" in report.read_text()
    # errors: one line, naming the entry or the option
    for args, fragment in (([str(tmp_path / "none.yaml")], "grid file"),
                           ([str(grid), "--only", "nope"], "--only: no run named 'nope'")):
        result = runner.invoke(app, ["experiment", *args, "--runs-dir", str(runs)])
        assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
        assert result.output.startswith("error: ") and fragment in result.output
    grid.write_text(yaml.safe_dump({"runs": [{"name": "a"}, {"name": "a"}]}))
    result = runner.invoke(app, ["experiment", str(grid)])
    assert result.exit_code == 1 and "runs[1] (a): duplicate name" in result.output
    assert runner.invoke(app, ["experiment", "--help"]).exit_code == 0
