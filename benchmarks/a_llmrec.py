"""A-LLMRec (Kim et al. 2024) against its baselines in one harness, on ML-100K and Amazon
Scientific, with the packaged SmolLM2-135M as the frozen LLM and MiniLM as the sentence encoder.

Protocol (the paper's, labelled as sampled): leave-one-out; each test user's target is ranked
among itself and 19 items the user never interacted with (``eval.protocol: sampled``,
``num_negatives: 19``), the same lists for every model (seeded by user); Hit@1 is the headline
(``sampled_HR@1``), Hit@3/5 and NDCG come from the same pass (candidate log-likelihoods for the
LLM models). LLM scoring costs about a second per user on 2 CPU cores, so every model of a
dataset is evaluated on the same seeded subsample of ``--max-users`` valid and test users (the
setting column says so), and the LLM's stage 2 trains ``--llm-epochs`` epochs (the paper: 5)
or until ``--llm-budget-minutes``.

Sections (``--sections``):

* ``overall`` — Table 1: SASRec, GRU4Rec, MoRec (SASRec over frozen MiniLM features), LLM-Only,
  TALLRec (the Figure 5 prompt + LoRA), MLP-LLM, A-LLMRec, A-LLMRec (SBERT); each row also
  splits its test users by the target's popularity (Table 2: warm = top 35 % of items by
  training interactions, cold = bottom 35 %: ``HR@1_warm`` / ``HR@1_cold``), and carries the
  training and inference times (Table 8: A-LLMRec's stage 2 against TALLRec, side by side in
  one run; ``stage1_seconds`` adds stage 1). Popularity (not in the paper) is the floor.
* ``coldusers`` — Table 3: ``--max-users`` users held out of training, tested on their
  first 3 interactions (neither dataset has users with exactly 3: they are truncated, see
  ``recadapt.data.splits.cold_users``); Popularity again as the floor.
* ``fewshot`` — Table 4: every model trained on K users only (``data.k_shot_users``).
* ``ablations`` — Table 6 (stage 1 without matching / reconstructions / rec loss, frozen
  SBERT) and Table 7 (stage 2 without the user token, without / with random joint embeddings).
* ``crossdomain`` — Table 5: trained on Amazon Industrial, evaluated on Amazon Office
  (``../shared/data/amazon_industrial_office``; A-LLMRec transfers through ``q = f_T(Q)`` of
  the new items with the user token ``F_U(0)``; runs with the ML-100K pass).
* ``backbones`` — Table 9: NextItNet, GRU4Rec and NCF alone and as A-LLMRec's frozen model.

Trained prerequisite runs (the SASRec run, stage 1) are kept under ``--work-dir`` and reused by
the rows that share them (``--resume`` also skips finished rows).

    python benchmarks/a_llmrec.py --quick
    python benchmarks/a_llmrec.py --datasets ml-100k --sections overall
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from common import REPO, format_table, set_aside_if_changed, shared_data, write_results
from recadapt.config import dump_config, validate_config
from recadapt.train.loop import train_run

DATASETS = {
    "ml-100k": {"template": "movies", "stage1": {}},
    "amazon_scientific": {"template": "items",
                          "stage1": {"text_format": "Title: {title}, Description: "
                                                    "{categories}. {brand}"}},
}


def base_config(dataset: str, args: argparse.Namespace, k_shot: int | None = None
                ) -> dict[str, Any]:
    data: dict[str, Any] = {"source": str(shared_data(dataset)), "max_seq_len": 50}
    if k_shot:
        data["k_shot_users"] = k_shot
    return {"data": data,
            "eval": {"protocol": "sampled", "num_negatives": 19, "ks": [1, 3, 5],
                     "max_users": args.max_users, "batch_size": 256},
            "train": {"monitor": "sampled_HR@1", "num_threads": args.threads, "seed": 0}}


def cf_train(args: argparse.Namespace) -> dict[str, Any]:
    return {"epochs": 3 if args.quick else 200, "batch_size": 128, "lr": 1e-3,
            "patience": 10, "eval_every": 1}


def id_model(config: dict[str, Any], name: str, args: argparse.Namespace) -> dict[str, Any]:
    """A conventional model's run: the frozen CF model, its rows alone, or the Popularity floor
    (on the sampled protocol a popular target often wins by itself, e.g. a cold user's 3rd item)."""
    return {**config, "model": {"name": name}, "train": {**config["train"], **cf_train(args)}}


def stage1_train(args: argparse.Namespace) -> dict[str, Any]:
    """The paper: 10 epochs, batch 32 (lr 1e-4 in its Table 11; we use 1e-3, see docs)."""
    train = {"epochs": 1 if args.quick else 10, "batch_size": 32, "lr": args.stage1_lr,
             "patience": 10}
    if args.quick:
        train["time_budget_minutes"] = 0.3  # a few steps: the same code path
    elif args.stage1_budget_minutes:
        train["time_budget_minutes"] = args.stage1_budget_minutes
    return train


def llm_train(args: argparse.Namespace) -> dict[str, Any]:
    """Stage 2 / TALLRec / MLP-LLM: batch 4 (the paper's), Adam."""
    train = {"epochs": 1 if args.quick else args.llm_epochs, "batch_size": 4,
             "lr": args.llm_lr, "patience": 5}
    if args.quick:
        train["time_budget_minutes"] = 0.2
    elif args.llm_budget_minutes:
        train["time_budget_minutes"] = args.llm_budget_minutes
    return train


def llm_model(name: str, dataset: str, args: argparse.Namespace, **extra: Any
              ) -> dict[str, Any]:
    model = {"name": name, "template": DATASETS[dataset]["template"],
             "eval_batch_size": 8}
    if args.quick:
        model.update(history_len=4, max_new_tokens=24)
    elif args.history_len is not None:  # titles in the prompt (the model's default: 10)
        model["history_len"] = args.history_len
    return {**model, **extra}


@dataclass(frozen=True)
class Prerequisite:
    """A kept run some rows build on (the frozen CF model, stage 1), trained only when a row
    that needs it is about to train: its folder is known before it exists, so the rows'
    configs can name it, and ``--only`` / ``--resume`` skip it with the rows."""

    raw: dict[str, Any]
    dataset: str
    key: str
    path: Path
    needs: tuple[Prerequisite, ...] = ()


class Runner:
    """Trains rows into kept run folders (so later rows can reuse them) and collects rows."""

    def __init__(self, args: argparse.Namespace, name: str) -> None:
        self.args, self.name = args, name
        self.work = Path(args.work_dir) / ("quick" if args.quick else "full")
        self.path = REPO / "benchmarks" / "results" / f"{name}.json"
        self.rows: list[dict[str, Any]] = (
            json.loads(self.path.read_text()) if self.path.exists() and args.resume else [])

    def folder(self, dataset: str, key: str) -> Path:
        return self.work / dataset / key.replace(" ", "_").replace("/", "-")

    def prerequisite(self, raw: dict[str, Any], dataset: str, key: str,
                     needs: tuple[Prerequisite, ...] = ()) -> Prerequisite:
        """Declare (do not train) a kept run; ``needs``: the prerequisites it builds on."""
        return Prerequisite(raw, dataset, key, self.folder(dataset, key), needs)

    def ensure(self, *prerequisites: Prerequisite) -> None:
        """Train (or reuse) each prerequisite after those it builds on."""
        for prerequisite in prerequisites:
            self.ensure(*prerequisite.needs)
            self.train(prerequisite.raw, prerequisite.dataset, prerequisite.key)

    def train(self, raw: dict[str, Any], dataset: str, key: str) -> Path:
        """Train (or reuse a finished or resume an interrupted run of the same config);
        returns its folder. A run left there under another config (other lr, history, …)
        is never reused: it is moved aside to ``FOLDER.replaced-N`` (nothing is lost)."""
        run_dir = self.folder(dataset, key)
        config = validate_config(raw)
        set_aside_if_changed(run_dir, config)
        if (run_dir / "metrics.json").is_file():
            return run_dir
        resume = (run_dir / "checkpoints" / "last.safetensors").is_file()
        if run_dir.exists() and not resume:
            shutil.rmtree(run_dir)
        train_run(config, run_dir, resume=resume, progress=sys.stderr.isatty())
        return run_dir

    def row(self, raw: dict[str, Any], dataset: str, method: str, section: str,
            key: str | None = None, reuse: tuple[str, dict[str, Any]] | None = None,
            needs: tuple[Prerequisite, ...] = ()) -> dict[str, Any] | None:
        """One result row: train ``raw`` after the prerequisites it ``needs`` — or, with
        ``reuse`` (a trained row's key and config), evaluate that run's weights again under
        ``raw`` (A-LLMRec (SBERT): the same model with q at inference)."""
        setting = self.setting(raw)
        if not self.pending(dataset, method, section, setting):
            return None
        self.ensure(*needs)
        if reuse is not None:
            source = self.train(reuse[1], dataset, reuse[0])
            run_dir = reevaluate(source, raw, self.folder(dataset, f"{section} {method}"))
        else:
            run_dir = self.train(raw, dataset, key or f"{section} {method}")
        return self.record({"dataset": dataset, "method": method, "setting": setting,
                            "section": section, **collect(run_dir)})

    def pending(self, dataset: str, method: str, section: str, setting: str) -> bool:
        """Whether a row is still to run: selected by ``--only`` and not already in the
        results under the same setting."""
        if self.args.only and method not in self.args.only:
            return False
        return not any(r["method"] == method and r["dataset"] == dataset and
                       r["section"] == section and r["setting"] == setting
                       for r in self.rows)

    def record(self, row: dict[str, Any]) -> dict[str, Any]:
        """Replace the row of the same dataset / method / section, save, print it."""
        self.rows = [r for r in self.rows if not (r["method"] == row["method"] and
                                                  r["dataset"] == row["dataset"] and
                                                  r["section"] == row["section"])] + [row]
        write_results(self.name, self.rows)
        print(format_table([row], COLUMNS).splitlines()[-1], flush=True)
        return row

    def setting(self, raw: dict[str, Any]) -> str:
        eval_cfg = raw["eval"]
        k = raw["data"].get("k_shot_users")
        cold = raw["data"].get("cold_users")
        parts = [f"sampled 1+19, valid/test subsample {eval_cfg['max_users']} users",
                 f"K={k} users" if k else ("cold users (first 3 items)" if cold else
                                           "all users"),
                 f"model {json.dumps(shown_model(raw['model']), sort_keys=True)}",
                 f"train {json.dumps(raw['train'], sort_keys=True)}"]
        return ", ".join(parts) + (" (quick)" if self.args.quick else "")


def shown_model(model: dict[str, Any]) -> dict[str, Any]:
    """The model section as a row's setting shows it: without the prerequisite runs' paths
    (machine-specific; their own settings are the rows they come from)."""
    return {k: v for k, v in model.items() if not k.endswith("_run")}


def reevaluate(source: Path, raw: dict[str, Any], target: Path) -> Path:
    """A copy of the finished run ``source`` whose test metrics come from its weights loaded
    into the model ``raw`` describes (same data and weights, other inference settings)."""
    import time

    import torch

    from recadapt.eval.protocols import evaluate_part
    from recadapt.io import write_json, write_text
    from recadapt.train.checkpoint import load_model_weights
    from recadapt.train.runs import prepare_data, read_run_config
    from recadapt.train.stages import build_with_stages

    trained = read_run_config(source)
    raw = {**raw, "model": {**trained.model, **{k: v for k, v in raw["model"].items()
                                                  if k not in ("stage1", "cf")}}}
    config = validate_config(raw)
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("checkpoints", "stages"))
    prepared = prepare_data(config)
    model = build_with_stages(config, prepared.dataset)
    model.fit_statistics(torch.from_numpy(prepared.split.item_counts()).float())
    load_model_weights(model, source / "model.safetensors")
    results = {}
    for part in ("valid", "test"):
        started = time.perf_counter()
        results[part] = evaluate_part(model, prepared.split, part, config.eval,
                                      config.data.max_seq_len)
        seconds = time.perf_counter() - started
    metrics = json.loads((source / "metrics.json").read_text())
    metrics.update(valid=results["valid"].metrics, test=results["test"].metrics)
    write_json(target / "metrics.json", metrics)
    efficiency = json.loads((source / "efficiency.json").read_text())
    efficiency["test_eval_seconds"] = seconds
    write_json(target / "efficiency.json", efficiency)
    ranks = json.loads((source / "ranks.json").read_text())
    ranks["ranks"] = results["test"].ranks.tolist()
    write_json(target / "ranks.json", ranks)
    write_text(target / "config.yaml", dump_config(config))
    return target


def collect(run_dir: Path) -> dict[str, Any]:
    """metrics.json (test) + efficiency.json + the warm/cold split of the test users, and the
    prerequisite stages' training seconds."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    efficiency = json.loads((run_dir / "efficiency.json").read_text())
    out = {**metrics["test"], "valid": metrics["valid"], **efficiency}
    out.update(warm_cold(run_dir))
    stage1_run = (yaml.safe_load((run_dir / "config.yaml").read_text())["model"].get(
        "stage1") or {}).get("run")
    stage1 = Path(stage1_run or run_dir / "stages" / "stage1") / "efficiency.json"
    if stage1.is_file():
        out["stage1_seconds"] = json.loads(stage1.read_text())["total_train_seconds"]
    generations = run_dir / "generations.json"
    if generations.is_file():
        out["generations"] = json.loads(generations.read_text())[:3]
    users = len(json.loads((run_dir / "ranks.json").read_text())["ranks"])
    out["seconds_per_test_user"] = efficiency["test_eval_seconds"] / max(1, users)
    return out


def warm_cold(run_dir: Path) -> dict[str, Any]:
    """Table 2 from the test ranks: Hit@1 of the users whose target is a warm / cold item."""
    import numpy as np

    from recadapt.data.splits import item_popularity_buckets
    from recadapt.train.runs import prepare_data, read_run_config

    config = read_run_config(run_dir)
    prepared = prepare_data(config)
    split = prepared.split
    warm, cold = item_popularity_buckets(split)
    ranks = np.asarray(json.loads((run_dir / "ranks.json").read_text())["ranks"])
    targets = split.test.targets
    out: dict[str, Any] = {}
    for label, bucket in (("warm", warm), ("cold", cold)):
        chosen = np.isin(targets, bucket)
        out[f"n_{label}"] = int(chosen.sum())
        out[f"HR@1_{label}"] = float((ranks[chosen] == 1).mean()) if chosen.any() else None
    return out


def run_dataset(runner: Runner, dataset: str, args: argparse.Namespace) -> None:
    """Every row of ``args.sections`` on one dataset; a prerequisite run (CF model, stage 1)
    trains only when the first row that needs it is about to train."""
    sections = args.sections
    base = base_config(dataset, args)
    stage1_extra = DATASETS[dataset]["stage1"]

    def cf(config: dict[str, Any], key: str, name: str = "sasrec") -> Prerequisite:
        return runner.prerequisite(id_model(config, name, args), dataset, key)

    def stage1(config: dict[str, Any], key: str, cf_run: Prerequisite, **change: Any
               ) -> Prerequisite:
        model = {"name": "a-llmrec-stage1", "cf": {"run": str(cf_run.path)}, **stage1_extra,
                 **change}
        raw = {**config, "model": model, "train": {**config["train"], **stage1_train(args)}}
        return runner.prerequisite(raw, dataset, key, needs=(cf_run,))

    def llm_rows(config: dict[str, Any]) -> dict[str, Any]:
        return {**config, "train": {**config["train"], **llm_train(args)}}

    # the frozen collaborative model: also the SASRec row of Table 1
    sasrec = cf(base, "cf sasrec")
    main_stage1 = stage1(base, "stage1", sasrec)
    llm = llm_rows(base)

    def a_llmrec(stage1_run: Prerequisite = main_stage1, config: dict[str, Any] = llm,
                 **extra: Any) -> dict[str, Any]:
        return {**config, "model": llm_model("a-llmrec", dataset, args,
                                             stage1={"run": str(stage1_run.path)}, **extra)}

    if "overall" in sections:  # the headline comparison first: rows land as they finish
        runner.row(sasrec.raw, dataset, "SASRec", "overall", key=sasrec.key)
        runner.row(id_model(base, "popularity", args), dataset, "Popularity", "overall")
        runner.row(a_llmrec(), dataset, "A-LLMRec", "overall", needs=(main_stage1,))
        runner.row(a_llmrec(inference_embedding="text"), dataset, "A-LLMRec (SBERT)",
                   "overall", reuse=("overall A-LLMRec", a_llmrec()), needs=(main_stage1,))
        runner.row({**llm, "model": llm_model("tallrec-list", dataset, args)}, dataset,
                   "TALLRec", "overall")
        runner.row({**llm, "model": llm_model("mlp-llm", dataset, args,
                                               cf={"run": str(sasrec.path)})},
                   dataset, "MLP-LLM", "overall", needs=(sasrec,))
        runner.row({**llm, "model": llm_model("llm-only", dataset, args)}, dataset,
                   "LLM-Only", "overall")
        gru4rec = cf(base, "overall GRU4Rec", "gru4rec")
        runner.row(gru4rec.raw, dataset, "GRU4Rec", "overall", key=gru4rec.key)
        morec = {**base, "encoders": [{"name": "text", "model": "minilm", "max_length": 64}],
                 "model": {"name": "frozen", "loss": "ce"},
                 "train": {**base["train"], **cf_train(args)}}
        runner.row(morec, dataset, "MoRec", "overall")
    if "ablations" in sections:
        stage1_ablations = [("w/o L_matching", {"matching": False}),
                            ("w/o L_item-recon & L_text-recon", {"reconstruction": False}),
                            ("w/o L_rec", {"rec_loss": False}),
                            ("Freeze SBERT", {"finetune_text": False})]
        for method, change in stage1_ablations[:1] if args.quick else stage1_ablations:
            own = stage1(base, f"stage1 {method}", sasrec, **change)
            runner.row(a_llmrec(own), dataset, f"A-LLMRec {method}", "ablations",
                       needs=(own,))
        stage2_ablations = [("w/o user representation", {"user_token": False}),
                            ("w/o joint embedding", {"item_embedding": "none"}),
                            ("with random joint embedding", {"item_embedding": "random"})]
        for method, change in stage2_ablations[:1] if args.quick else stage2_ablations:
            runner.row(a_llmrec(**change), dataset, f"A-LLMRec {method}", "ablations",
                       needs=(main_stage1,))
    if "fewshot" in sections:
        for k in ([64] if args.quick else args.ks):
            few = base_config(dataset, args, k_shot=k)
            few_llm = llm_rows(few)
            few_cf = cf(few, f"fewshot cf K={k}")
            runner.row(few_cf.raw, dataset, f"SASRec K={k}", "fewshot", key=few_cf.key)
            runner.row({**few_llm, "model": llm_model("tallrec-list", dataset, args)}, dataset,
                       f"TALLRec K={k}", "fewshot")
            few_stage1 = stage1(few, f"fewshot stage1 K={k}", few_cf)
            trained = a_llmrec(few_stage1, few_llm)
            runner.row(trained, dataset, f"A-LLMRec K={k}", "fewshot", needs=(few_stage1,))
            sbert = {**trained, "model": {**trained["model"], "inference_embedding": "text"}}
            runner.row(sbert, dataset, f"A-LLMRec (SBERT) K={k}", "fewshot",
                       reuse=(f"fewshot A-LLMRec K={k}", trained), needs=(few_stage1,))
    if "coldusers" in sections:
        cold = base_config(dataset, args)
        cold["data"]["cold_users"] = args.max_users
        cold_llm = llm_rows(cold)
        cold_cf = cf(cold, "coldusers cf")
        runner.row(cold_cf.raw, dataset, "SASRec", "coldusers", key=cold_cf.key)
        runner.row(id_model(cold, "popularity", args), dataset, "Popularity", "coldusers")
        runner.row({**cold_llm, "model": llm_model("tallrec-list", dataset, args)}, dataset,
                   "TALLRec", "coldusers")
        runner.row({**cold_llm, "model": llm_model("mlp-llm", dataset, args,
                                                    cf={"run": str(cold_cf.path)})},
                   dataset, "MLP-LLM", "coldusers", needs=(cold_cf,))
        cold_stage1 = stage1(cold, "coldusers stage1", cold_cf)
        runner.row(a_llmrec(cold_stage1, cold_llm), dataset, "A-LLMRec", "coldusers",
                   needs=(cold_stage1,))
    if "crossdomain" in sections and dataset == "ml-100k":
        cross_domain(runner, args)
    if "backbones" in sections:
        for cf_name in ["nextitnet"] if args.quick else ["nextitnet", "gru4rec", "ncf"]:
            backbone = cf(base, f"cf {cf_name}", cf_name)
            runner.row(backbone.raw, dataset, cf_name, "backbones", key=backbone.key)
            own = stage1(base, f"stage1 {cf_name}", backbone)
            runner.row(a_llmrec(own), dataset, f"A-LLMRec ({cf_name})", "backbones",
                       needs=(own,))


CROSS = ("Industrial_and_Scientific", "Office_Products")


def cross_domain(runner: Runner, args: argparse.Namespace) -> None:
    """Table 5: trained on Amazon Industrial, evaluated on Amazon Office (items the models
    never saw): the text-based models transfer (A-LLMRec through q = f_T(Q), A-LLMRec
    (SBERT)'s path; TALLRec and LLM-Only through titles); SASRec's item IDs cannot."""
    from recadapt.eval.protocols import evaluate_part
    from recadapt.train.transfer import transfer

    folder = str(shared_data("amazon_industrial_office"))
    source, target = CROSS
    label = f"{source}->{target}"

    def config_for(domain: str) -> dict[str, Any]:
        base = base_config("amazon_scientific", args)  # eval/train sections
        base["data"] = {"source": folder, "format": "minionerec", "name": domain,
                        "max_seq_len": 50}
        return base

    base = config_for(source)
    cf_run = runner.prerequisite(id_model(base, "sasrec", args), label, "cross cf")
    stage1 = {"name": "a-llmrec-stage1", "cf": {"run": str(cf_run.path)},
              **DATASETS["amazon_scientific"]["stage1"]}  # the same Amazon text fields
    stage1_run = runner.prerequisite({**base, "model": stage1,
                                      "train": {**base["train"], **stage1_train(args)}},
                                     label, "cross stage1", needs=(cf_run,))
    llm = {**base, "train": {**base["train"], **llm_train(args)}}
    rows = [("A-LLMRec (SBERT)", {**llm, "model": llm_model(
                "a-llmrec", "amazon_scientific", args, stage1={"run": str(stage1_run.path)})},
             (stage1_run,)),
            ("TALLRec", {**llm, "model": llm_model("tallrec-list", "amazon_scientific", args)},
             ()),
            ("LLM-Only", {**llm, "model": llm_model("llm-only", "amazon_scientific", args)},
             ())]
    for method, raw, needs in rows:
        setting = runner.setting(raw) + f", evaluated on {target}"
        if not runner.pending(label, method, "crossdomain", setting):
            continue
        runner.ensure(*needs)
        run_dir = runner.train(raw, label, f"cross {method}")
        target_raw = {**raw, "data": config_for(target)["data"]}
        target_config = validate_config(target_raw)
        model, prepared = transfer(run_dir, target_config)
        result = evaluate_part(model, prepared.split, "test", target_config.eval,
                               target_config.data.max_seq_len)
        runner.record({"dataset": label, "method": method, "section": "crossdomain",
                       "setting": setting, **result.metrics,
                       **json.loads((run_dir / "efficiency.json").read_text())})


COLUMNS = ["section", "sampled_HR@1", "sampled_HR@3", "sampled_NDCG@5", "HR@1_warm",
           "HR@1_cold", "sampled_generated_HR@1", "generated_unmatched", "epochs",
           "seconds_per_epoch", "stage1_seconds", "seconds_per_test_user", "trainable_params"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny runs of every section")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    sections = ["overall", "ablations", "coldusers", "fewshot", "crossdomain", "backbones"]
    parser.add_argument("--sections", nargs="+", default=sections, choices=sections)
    parser.add_argument("--only", nargs="+", default=None, help="methods to run (table names)")
    parser.add_argument("--max-users", type=int, default=None,
                        help="valid/test users per run (default 200; quick 4)")
    parser.add_argument("--ks", nargs="+", type=int, default=[128, 256])
    parser.add_argument("--llm-epochs", type=int, default=1)
    parser.add_argument("--llm-lr", type=float, default=1e-4)
    parser.add_argument("--history-len", type=int, default=None,
                        help="history titles in the LLM prompts (default: the model's 10; 5 "
                        "makes a stage-2 step ~3x cheaper)")
    parser.add_argument("--stage1-lr", type=float, default=1e-3)
    parser.add_argument("--llm-budget-minutes", type=float, default=None,
                        help="stop each LLM row's training after this many minutes")
    parser.add_argument("--stage1-budget-minutes", type=float, default=None,
                        help="the same for stage 1 (its 10 epochs fine-tune MiniLM)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--resume", action="store_true", help="keep finished rows")
    parser.add_argument("--name", default="a_llmrec")
    parser.add_argument("--work-dir", default=str(REPO / ".cache" / "bench-a-llmrec"))
    args = parser.parse_args()
    if args.max_users is None:
        args.max_users = 4 if args.quick else 200
    name = f"{args.name}_quick" if args.quick else args.name
    if args.quick:
        args.datasets = ["ml-100k"]
    runner = Runner(args, name)
    for dataset in args.datasets:
        run_dataset(runner, dataset, args)
    print()
    print(format_table(runner.rows, COLUMNS))
    print(f"\nwrote {runner.path}")


if __name__ == "__main__":
    main()
