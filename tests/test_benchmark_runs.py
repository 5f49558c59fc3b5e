"""The benchmarks build their grids on recadapt.experiments: prerequisite runs train only for
the rows that need them, RecLoRA rows need the CTR-model run their config names, and the
figures plot what the rows hold. (Reuse, set-aside and resume: tests/test_experiments.py.)"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

from recadapt.config import dump_config
from recadapt.experiments import Experiment, Results

REPO = Path(__file__).resolve().parents[1]


def _load(monkeypatch: pytest.MonkeyPatch, name: str):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location(f"bench_{name}",
                                                  REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, f"bench_{name}", module)  # dataclasses look it up
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def bench(monkeypatch: pytest.MonkeyPatch):
    yield _load(monkeypatch, "a_llmrec")
    sys.modules.pop("common", None)


@pytest.fixture()
def reclora_bench(monkeypatch: pytest.MonkeyPatch):
    yield _load(monkeypatch, "reclora")
    sys.modules.pop("common", None)


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


def test_a_reclora_row_needs_the_kept_ctr_model_its_config_names(
        reclora_bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data" / "ml-100k").mkdir(parents=True)
    monkeypatch.setenv("RECADAPT_SHARED_DATA", str(tmp_path / "data"))
    args = argparse.Namespace(
        work_dir=str(tmp_path / "work"), runs_dir=None, quick=True, long_history=60,
        prompt_history=10, pool=100, llm="smollm2-135m", eval_samples=16, llm_samples=16,
        num_meta=4, id_epochs=1, llm_epochs=1, llm_lr=1e-3, threads=1, bert_epochs=1,
        bert_lr=5e-5, bert_budget_minutes=0.3, crm_models=["gru4rec-ctr"])
    runs = {run.method: run for run in reclora_bench.Configs(args, "ml-100k").runs(["table2"])}
    reclora, sim = runs["reclora K=16"], runs["sim (= RecLoRA's CRM)"]
    (crm,) = reclora.needs
    assert reclora.config["model"]["crm"]["run"] == str(tmp_path / "work" / crm.folder)
    assert not reclora.keep and sim.keep and sim.folder == crm.folder  # Table 2's SIM is it
    assert sim.config == crm.config and reclora.fields["crm_run"] == crm.folder
    assert runs["deepfm"].fields["family"] == "ID" and reclora.fields["family"] == "LM"


def test_a_llmrec_prerequisites_train_only_for_the_rows_that_need_them(
        bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--only LLM-Only`` trains that row alone; A-LLMRec trains the CF model, then stage 1
    (which reads the CF run), then itself; a finished prerequisite is not trained again."""
    from recadapt.train import loop

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

    monkeypatch.setattr(loop, "train_run", fake_train_run)
    (tmp_path / "data" / "ml-100k").mkdir(parents=True)
    monkeypatch.setenv("RECADAPT_SHARED_DATA", str(tmp_path / "data"))
    args = argparse.Namespace(quick=False, resume=True, only=["LLM-Only"], sections=["overall"],
                              max_users=10, threads=1, history_len=None, llm_epochs=1,
                              llm_lr=1e-3, llm_budget_minutes=None, stage1_lr=1e-3,
                              stage1_budget_minutes=None, ks=[64])
    results = Results(tmp_path / "r.json", key=("method", "dataset", "section"))

    def experiment() -> Experiment:
        return Experiment(results, tmp_path / "work", only=args.only, resume=True,
                          collect=lambda run, folder: run.row_fields())

    bench.run_dataset(bench.Rows(experiment(), False), "ml-100k", args)
    assert trained == ["overall_LLM-Only"]
    args.only = ["A-LLMRec", "MLP-LLM"]
    bench.run_dataset(bench.Rows(experiment(), False), "ml-100k", args)
    assert trained[1:] == ["cf_sasrec", "stage1", "overall_A-LLMRec", "overall_MLP-LLM"]
    assert (tmp_path / "work" / "ml-100k" / "cf_sasrec" / "metrics.json").is_file()
    bench.run_dataset(bench.Rows(experiment(), False), "ml-100k", args)  # rows recorded
    assert len(trained) == 5 and len(results.rows) == 3
    assert [r["section"] for r in results.rows] == ["overall"] * 3
