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
from pathlib import Path
from typing import Any

import yaml

from common import REPO, bench_parser, results, results_name, shared_data
from recadapt.config import dump_config, validate_config
from recadapt.experiments import Experiment, Run, slug

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


def kept(raw: dict[str, Any], dataset: str, key: str, needs: tuple[Run, ...] = ()) -> Run:
    """A kept run some rows build on (the frozen CF model, stage 1): its folder
    (``RUNS_DIR/DATASET/KEY``) is known before it exists, so the rows' configs can name it;
    it trains only when a row that ``needs`` it is about to train."""
    return Run(key, raw, {"dataset": dataset}, folder=f"{dataset}/{slug(key)}", needs=needs)


def row_run(raw: dict[str, Any], dataset: str, method: str, section: str, quick: bool, *,
            key: str | None = None, needs: tuple[Run, ...] = (),
            setting: str | None = None) -> Run:
    """A result row's run, kept in ``DATASET/KEY`` (default ``SECTION METHOD``) so that later
    rows can reuse it."""
    key = key or f"{section} {method}"
    return Run(key, raw, {"dataset": dataset, "method": method,
                          "setting": setting or row_setting(raw, quick), "section": section},
               folder=f"{dataset}/{slug(key)}", needs=needs)


def row_setting(raw: dict[str, Any], quick: bool) -> str:
    eval_cfg = raw["eval"]
    k = raw["data"].get("k_shot_users")
    cold = raw["data"].get("cold_users")
    parts = [f"sampled 1+19, valid/test subsample {eval_cfg['max_users']} users",
             f"K={k} users" if k else ("cold users (first 3 items)" if cold else
                                       "all users"),
             f"model {json.dumps(shown_model(raw['model']), sort_keys=True)}",
             f"train {json.dumps(raw['train'], sort_keys=True)}"]
    return ", ".join(parts) + (" (quick)" if quick else "")


class Rows:
    """The benchmark's rows on top of an :class:`Experiment`: plain rows, and the rows that
    evaluate a trained row's weights again under other inference settings."""

    def __init__(self, experiment: Experiment, quick: bool) -> None:
        self.experiment, self.quick = experiment, quick

    def folder(self, run: Run) -> Path:
        return self.experiment.folder(run)

    def row(self, raw: dict[str, Any], dataset: str, method: str, section: str,
            key: str | None = None, reuse: Run | None = None,
            needs: tuple[Run, ...] = ()) -> dict[str, Any] | None:
        """One result row: train ``raw`` after the runs it ``needs`` — or, with ``reuse`` (a
        trained row's run), evaluate that run's weights again under ``raw`` (A-LLMRec
        (SBERT): the same model with q at inference)."""
        run = row_run(raw, dataset, method, section, self.quick, key=key, needs=needs)
        if reuse is None:
            return self.experiment.run(run)
        if not self.experiment.pending(run):
            return None
        for need in needs:
            self.experiment.train(need)
        source = self.experiment.train(reuse)
        return self.experiment.record(collect(run, reevaluate(source, raw, self.folder(run))))


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


def collect(run: Run, run_dir: Path) -> dict[str, Any]:
    """The row fields, metrics.json (test) + efficiency.json + the warm/cold split of the
    test users, and the prerequisite stages' training seconds."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    efficiency = json.loads((run_dir / "efficiency.json").read_text())
    out = {**run.row_fields(), **metrics["test"], "valid": metrics["valid"], **efficiency}
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


def run_dataset(rows: Rows, dataset: str, args: argparse.Namespace) -> None:
    """Every row of ``args.sections`` on one dataset; a prerequisite run (CF model, stage 1)
    trains only when the first row that needs it is about to train."""
    sections = args.sections
    base = base_config(dataset, args)
    stage1_extra = DATASETS[dataset]["stage1"]

    def cf(config: dict[str, Any], key: str, name: str = "sasrec") -> Run:
        return kept(id_model(config, name, args), dataset, key)

    def stage1(config: dict[str, Any], key: str, cf_run: Run, **change: Any
               ) -> Run:
        model = {"name": "a-llmrec-stage1", "cf": {"run": str(rows.folder(cf_run))}, **stage1_extra,
                 **change}
        raw = {**config, "model": model, "train": {**config["train"], **stage1_train(args)}}
        return kept(raw, dataset, key, needs=(cf_run,))

    def llm_rows(config: dict[str, Any]) -> dict[str, Any]:
        return {**config, "train": {**config["train"], **llm_train(args)}}

    # the frozen collaborative model: also the SASRec row of Table 1
    sasrec = cf(base, "cf sasrec")
    main_stage1 = stage1(base, "stage1", sasrec)
    llm = llm_rows(base)

    def a_llmrec(stage1_run: Run = main_stage1, config: dict[str, Any] = llm,
                 **extra: Any) -> dict[str, Any]:
        return {**config, "model": llm_model("a-llmrec", dataset, args,
                                             stage1={"run": str(rows.folder(stage1_run))}, **extra)}

    if "overall" in sections:  # the headline comparison first: rows land as they finish
        rows.row(sasrec.config, dataset, "SASRec", "overall", key=sasrec.name)
        rows.row(id_model(base, "popularity", args), dataset, "Popularity", "overall")
        rows.row(a_llmrec(), dataset, "A-LLMRec", "overall", needs=(main_stage1,))
        rows.row(a_llmrec(inference_embedding="text"), dataset, "A-LLMRec (SBERT)",
                   "overall", reuse=row_run(a_llmrec(), dataset, "A-LLMRec", "overall", args.quick),
                 needs=(main_stage1,))
        rows.row({**llm, "model": llm_model("tallrec-list", dataset, args)}, dataset,
                   "TALLRec", "overall")
        rows.row({**llm, "model": llm_model("mlp-llm", dataset, args,
                                               cf={"run": str(rows.folder(sasrec))})},
                   dataset, "MLP-LLM", "overall", needs=(sasrec,))
        rows.row({**llm, "model": llm_model("llm-only", dataset, args)}, dataset,
                   "LLM-Only", "overall")
        gru4rec = cf(base, "overall GRU4Rec", "gru4rec")
        rows.row(gru4rec.config, dataset, "GRU4Rec", "overall", key=gru4rec.name)
        morec = {**base, "encoders": [{"name": "text", "model": "minilm", "max_length": 64}],
                 "model": {"name": "frozen", "loss": "ce"},
                 "train": {**base["train"], **cf_train(args)}}
        rows.row(morec, dataset, "MoRec", "overall")
    if "ablations" in sections:
        stage1_ablations = [("w/o L_matching", {"matching": False}),
                            ("w/o L_item-recon & L_text-recon", {"reconstruction": False}),
                            ("w/o L_rec", {"rec_loss": False}),
                            ("Freeze SBERT", {"finetune_text": False})]
        for method, change in stage1_ablations[:1] if args.quick else stage1_ablations:
            own = stage1(base, f"stage1 {method}", sasrec, **change)
            rows.row(a_llmrec(own), dataset, f"A-LLMRec {method}", "ablations",
                       needs=(own,))
        stage2_ablations = [("w/o user representation", {"user_token": False}),
                            ("w/o joint embedding", {"item_embedding": "none"}),
                            ("with random joint embedding", {"item_embedding": "random"})]
        for method, change in stage2_ablations[:1] if args.quick else stage2_ablations:
            rows.row(a_llmrec(**change), dataset, f"A-LLMRec {method}", "ablations",
                       needs=(main_stage1,))
    if "fewshot" in sections:
        for k in ([64] if args.quick else args.ks):
            few = base_config(dataset, args, k_shot=k)
            few_llm = llm_rows(few)
            few_cf = cf(few, f"fewshot cf K={k}")
            rows.row(few_cf.config, dataset, f"SASRec K={k}", "fewshot", key=few_cf.name)
            rows.row({**few_llm, "model": llm_model("tallrec-list", dataset, args)}, dataset,
                       f"TALLRec K={k}", "fewshot")
            few_stage1 = stage1(few, f"fewshot stage1 K={k}", few_cf)
            trained = a_llmrec(few_stage1, few_llm)
            rows.row(trained, dataset, f"A-LLMRec K={k}", "fewshot", needs=(few_stage1,))
            sbert = {**trained, "model": {**trained["model"], "inference_embedding": "text"}}
            rows.row(sbert, dataset, f"A-LLMRec (SBERT) K={k}", "fewshot",
                       reuse=row_run(trained, dataset, f"A-LLMRec K={k}", "fewshot", args.quick),
                     needs=(few_stage1,))
    if "coldusers" in sections:
        cold = base_config(dataset, args)
        cold["data"]["cold_users"] = args.max_users
        cold_llm = llm_rows(cold)
        cold_cf = cf(cold, "coldusers cf")
        rows.row(cold_cf.config, dataset, "SASRec", "coldusers", key=cold_cf.name)
        rows.row(id_model(cold, "popularity", args), dataset, "Popularity", "coldusers")
        rows.row({**cold_llm, "model": llm_model("tallrec-list", dataset, args)}, dataset,
                   "TALLRec", "coldusers")
        rows.row({**cold_llm, "model": llm_model("mlp-llm", dataset, args,
                                                    cf={"run": str(rows.folder(cold_cf))})},
                   dataset, "MLP-LLM", "coldusers", needs=(cold_cf,))
        cold_stage1 = stage1(cold, "coldusers stage1", cold_cf)
        rows.row(a_llmrec(cold_stage1, cold_llm), dataset, "A-LLMRec", "coldusers",
                   needs=(cold_stage1,))
    if "crossdomain" in sections and dataset == "ml-100k":
        cross_domain(rows, args)
    if "backbones" in sections:
        for cf_name in ["nextitnet"] if args.quick else ["nextitnet", "gru4rec", "ncf"]:
            backbone = cf(base, f"cf {cf_name}", cf_name)
            rows.row(backbone.config, dataset, cf_name, "backbones", key=backbone.name)
            own = stage1(base, f"stage1 {cf_name}", backbone)
            rows.row(a_llmrec(own), dataset, f"A-LLMRec ({cf_name})", "backbones",
                       needs=(own,))


CROSS = ("Industrial_and_Scientific", "Office_Products")


def cross_domain(rows: Rows, args: argparse.Namespace) -> None:
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
    cf_run = kept(id_model(base, "sasrec", args), label, "cross cf")
    stage1 = {"name": "a-llmrec-stage1", "cf": {"run": str(rows.folder(cf_run))},
              **DATASETS["amazon_scientific"]["stage1"]}  # the same Amazon text fields
    stage1_run = kept({**base, "model": stage1, "train": {**base["train"], **stage1_train(args)}},
                      label, "cross stage1", needs=(cf_run,))
    llm = {**base, "train": {**base["train"], **llm_train(args)}}
    cross_rows = [
        ("A-LLMRec (SBERT)", {**llm, "model": llm_model(
            "a-llmrec", "amazon_scientific", args, stage1={"run": str(rows.folder(stage1_run))})},
         (stage1_run,)),
        ("TALLRec", {**llm, "model": llm_model("tallrec-list", "amazon_scientific", args)}, ()),
        ("LLM-Only", {**llm, "model": llm_model("llm-only", "amazon_scientific", args)}, ())]
    experiment = rows.experiment
    for method, raw, needs in cross_rows:
        setting = row_setting(raw, args.quick) + f", evaluated on {target}"
        run = row_run(raw, label, method, "crossdomain", args.quick, key=f"cross {method}",
                      needs=needs, setting=setting)
        if not experiment.pending(run):
            continue
        run_dir = experiment.train(run)
        target_raw = {**raw, "data": config_for(target)["data"]}
        target_config = validate_config(target_raw)
        model, prepared = transfer(run_dir, target_config)
        result = evaluate_part(model, prepared.split, "test", target_config.eval,
                               target_config.data.max_seq_len)
        experiment.record({"dataset": label, "method": method, "section": "crossdomain",
                           "setting": setting, **result.metrics,
                           **json.loads((run_dir / "efficiency.json").read_text())})


COLUMNS = ["section", "sampled_HR@1", "sampled_HR@3", "sampled_NDCG@5", "HR@1_warm",
           "HR@1_cold", "sampled_generated_HR@1", "generated_unmatched", "epochs",
           "seconds_per_epoch", "stage1_seconds", "seconds_per_test_user", "trainable_params"]


def main() -> None:
    parser = bench_parser(
        __doc__.splitlines()[0], "a_llmrec", quick="tiny runs of every section",
        runs_dir="the kept runs, RUNS_DIR/DATASET/KEY (default: "
        "WORK_DIR/full, WORK_DIR/quick)")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    sections = ["overall", "ablations", "coldusers", "fewshot", "crossdomain", "backbones"]
    parser.add_argument("--sections", nargs="+", default=sections, choices=sections)
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
    parser.add_argument("--work-dir", default=str(REPO / ".cache" / "bench-a-llmrec"))
    args = parser.parse_args()
    if args.max_users is None:
        args.max_users = 4 if args.quick else 200
    if args.quick:
        args.datasets = ["ml-100k"]
    rows = Rows(experiment_for(args), args.quick)
    for dataset in args.datasets:
        run_dataset(rows, dataset, args)
    print(rows.experiment.summary())


def experiment_for(args: argparse.Namespace) -> Experiment:
    """Rows identified by dataset, section and method; runs kept in ``--runs-dir``."""
    runs_dir = args.runs_dir or Path(args.work_dir) / ("quick" if args.quick else "full")
    table = results(results_name(args.name, args.quick), key=("method", "dataset", "section"),
                    keep=args.resume or not args.quick)
    return Experiment(table, runs_dir, only=args.only, resume=args.resume, collect=collect,
                      columns=COLUMNS)


if __name__ == "__main__":
    main()
