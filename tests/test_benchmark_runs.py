"""The benchmarks never reuse a kept run trained under another config."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from recadapt.config import dump_config, validate_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def bench(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("bench_a_llmrec",
                                                  REPO / "benchmarks" / "a_llmrec.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_a_llmrec", module)  # dataclasses look it up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("common", None)


def _raw(lr: float) -> dict:
    return {"data": {"source": "somewhere"}, "model": {"name": "sasrec"},
            "train": {"lr": lr, "epochs": 1}}


def test_a_kept_run_is_reused_only_under_the_same_config(bench, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    trained: list[float] = []

    def fake_train_run(config, run_dir: Path, **_: object) -> None:
        run_dir.mkdir(parents=True)
        (run_dir / "config.yaml").write_text(dump_config(config), encoding="utf-8")
        (run_dir / "metrics.json").write_text("{}", encoding="utf-8")
        trained.append(config.train.lr)

    monkeypatch.setattr(bench, "train_run", fake_train_run)
    args = argparse.Namespace(work_dir=str(tmp_path), quick=False, resume=False)
    runner = bench.Runner(args, "unused")
    folder = runner.train(_raw(1e-3), "d", "cf sasrec")
    assert trained == [1e-3]
    assert runner.train(_raw(1e-3), "d", "cf sasrec") == folder and trained == [1e-3]
    # another lr: the old run moves aside (kept), a new one is trained in its place
    assert runner.train(_raw(1e-4), "d", "cf sasrec") == folder and trained == [1e-3, 1e-4]
    aside = folder.with_name(folder.name + ".replaced-1")
    assert validate_config(yaml.safe_load((aside / "config.yaml").read_text())).train.lr == 1e-3
    assert sys.modules["common"].same_config(folder / "config.yaml", validate_config(_raw(1e-4)))


@pytest.fixture()
def reclora_bench(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("bench_reclora", REPO / "benchmarks" /
                                                  "reclora.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_reclora", module)  # dataclasses look it up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("common", None)


def test_a_kept_crm_survives_fields_added_since_but_not_a_changed_config(
        reclora_bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """RecLoRA's CRM is reused when its stored config lacks a field that has since been added
    with its default (the comparison is of validated configs, not of YAML text)."""
    trained: list[float] = []

    def fake_run_config(raw: dict, *, keep_dir: Path, **_: object) -> dict:
        trained.append(raw["train"]["lr"])
        return {"trained": True}

    monkeypatch.setattr(reclora_bench, "run_config", fake_run_config)
    folder = tmp_path / "crm"
    folder.mkdir()
    stored = yaml.safe_load(dump_config(validate_config(_raw(1e-3))))
    del stored["train"]["patience"]  # as if written before the field existed
    (folder / "config.yaml").write_text(yaml.safe_dump(stored), encoding="utf-8")
    (folder / "metrics.json").write_text('{"test": {"AUC": 0.7}, "valid": {"AUC": 0.6}}',
                                         encoding="utf-8")
    (folder / "efficiency.json").write_text('{"epochs": 3}', encoding="utf-8")
    row = reclora_bench.kept_run(folder, _raw(1e-3), "d", "sim", "s")
    assert trained == [] and row["AUC"] == 0.7 and row["epochs"] == 3
    assert reclora_bench.kept_run(folder, _raw(1e-4), "d", "sim", "s") == {"trained": True}
    assert trained == [1e-4]


def test_figure_4_plots_auc_against_the_number_of_meta_loras(
        reclora_bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recadapt.report import plots

    saved: list = []
    monkeypatch.setattr(plots, "save_png", lambda fig, path: saved.append(fig) or path)
    rows = [{"section": "nm", "method": f"reclora N_m={n} K=256", "AUC": auc}
            for n, auc in ((4, 0.73), (1, 0.51), (2, 0.72))]
    rows.append({"section": "table2", "method": "reclora K=256", "AUC": 0.9})
    reclora_bench.plot_sweep(rows, tmp_path / "nm.png", "d", "nm")
    (line,) = saved[0].axes[0].lines
    assert line.get_xydata().tolist() == [[1, 0.51], [2, 0.72], [4, 0.73]]


def test_a_llmrec_prerequisites_train_only_for_the_rows_that_need_them(
        bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--only LLM-Only`` trains that row alone; A-LLMRec trains the CF model, then stage 1
    (which reads the CF run), then itself; a finished prerequisite is not trained again."""
    trained: list[str] = []

    def fake_train_run(config, run_dir: Path, **_: object) -> None:
        model = yaml.safe_load(dump_config(config))["model"]
        for field in ("cf", "stage1"):  # a prerequisite is trained before its user
            given = (model.get(field) or {}).get("run")
            assert not given or (Path(given) / "metrics.json").is_file()
        run_dir.mkdir(parents=True)
        (run_dir / "config.yaml").write_text(dump_config(config), encoding="utf-8")
        (run_dir / "metrics.json").write_text("{}", encoding="utf-8")
        trained.append(run_dir.name)

    monkeypatch.setattr(bench, "train_run", fake_train_run)
    monkeypatch.setattr(bench, "collect", lambda run_dir: {})
    monkeypatch.setattr(bench, "write_results", lambda name, rows: None)
    (tmp_path / "data" / "ml-100k").mkdir(parents=True)
    monkeypatch.setenv("RECADAPT_SHARED_DATA", str(tmp_path / "data"))
    args = argparse.Namespace(work_dir=str(tmp_path / "work"), quick=False, resume=False,
                              only=["LLM-Only"], sections=["overall"], max_users=10,
                              threads=1, history_len=None, llm_epochs=1, llm_lr=1e-3,
                              llm_budget_minutes=None, stage1_lr=1e-3,
                              stage1_budget_minutes=None, ks=[64])
    runner = bench.Runner(args, "unused")
    bench.run_dataset(runner, "ml-100k", args)
    assert trained == ["overall_LLM-Only"]
    args.only = ["A-LLMRec", "MLP-LLM"]
    bench.run_dataset(runner, "ml-100k", args)
    assert trained[1:] == ["cf_sasrec", "stage1", "overall_A-LLMRec", "overall_MLP-LLM"]
    bench.run_dataset(runner, "ml-100k", args)  # the rows are recorded: nothing trains again
    assert len(trained) == 5 and len(runner.rows) == 3


def test_run_config_resumes_a_stopped_run_only_under_the_same_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import common

    calls: list[tuple[float, bool]] = []

    result = SimpleNamespace(metrics={"test": {"HR@10": 0.5}, "valid": {"HR@10": 0.4}},
                             efficiency={}, history=[])

    def fake_train_run(config, run_dir: Path, *, resume: bool, **_: object) -> SimpleNamespace:
        calls.append((config.train.lr, resume))
        if not resume:
            assert not run_dir.exists()  # a restart starts from an empty folder
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(dump_config(config), encoding="utf-8")
        (run_dir / "checkpoints" / "last.safetensors").write_bytes(b"state")
        return result

    monkeypatch.setattr(common, "train_run", fake_train_run)
    keep = tmp_path / "run"
    row = common.run_config(_raw(1e-3), dataset="d", method="m", setting="s", keep_dir=keep,
                            resume=True)
    assert row["HR@10"] == 0.5 and calls == [(1e-3, False)]
    common.run_config(_raw(1e-3), dataset="d", method="m", setting="s", keep_dir=keep,
                      resume=True)
    assert calls[-1] == (1e-3, True)  # same config: continues
    common.run_config(_raw(1e-4), dataset="d", method="m", setting="s", keep_dir=keep,
                      resume=True)
    assert calls[-1] == (1e-4, False)  # another config: trained again, not resumed
    aside = keep.with_name("run.replaced-1")  # ... and the old run is kept, not deleted
    assert validate_config(yaml.safe_load((aside / "config.yaml").read_text())).train.lr == 1e-3
    common.run_config(_raw(1e-4), dataset="d", method="m", setting="s", keep_dir=keep)
    assert calls[-1] == (1e-4, False)  # without resume: always from scratch
    sys.modules.pop("common", None)
