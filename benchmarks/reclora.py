"""RecLoRA (Zhu et al. 2024) section 4 on ML-100K and the dslabs MovieLens subset: Table 2 (ID
vs LM-based CTR models), Table 3 (ablations), Figure 4 (meta-LoRA number N_m), Figure 6 (LLM
training samples) and Table 4 / Figure 5 (history lengths vs time).

Protocol (every row): ML-100K, rating >= 4 positive (``--datasets``; or ``movielens_dslabs``,
whose half-star ratings are positive from 3.5, the paper's "> 3.0"), all samples cut by global
time 8:1:1
(``data.task: ctr``), every model scored on the **same** seeded subsample of the valid and
test samples (``--eval-samples``; LLM scoring costs ~0.5 s per sample on a CPU core). The
LM-based models train on the **same** K samples (``--llm-samples``; the paper's few-shot
"<10%"); the ID models and RecLoRA's CTR model (CRM) on the full training split (Few2Many).

Histories (the paper: ID 60, text 10):

* ``recent`` — the 60 most recent behaviours (``--long-history``): the ID models.
* ``retrieved`` — semantic retrieval (``data.ctr.retrieval``: SmolLM2-135M last-layer states
  of the titles, PCA 64, cosine to the target) over the ``--pool`` (100) most recent
  behaviours: the top 60 are the ID history, the top 10 the prompt's: SIM (as the paper keeps
  SIM's retrieval identical to RecLoRA's), ReLLa, RecLoRA.
* ``short`` — the 10 most recent (``--prompt-history``): TALLRec and CTR-BERT.

Sections (``--sections``, all by default):

* ``table2`` — DeepFM, AutoInt, DCNv2, DIN, GRU4Rec-CTR, SASRec-CTR, Caser-CTR (recent 60;
  Caser's convolutions read the last L = 5 of them) and SIM (retrieved 60) on the full
  training split; CTR-BERT on it too (time-capped); TALLRec, ReLLa, RecLoRA (N_m =
  ``--num-meta``, 4) on K samples.
  ``rel_impr``: AUC relative to the best ID model (``rel_to``); the paper's RelImpr is the
  inverse view (RecLoRA over each baseline).
* ``table3`` — RecLoRA without meta-LoRA (N_m 1, rank 8), the same-parameter single LoRA
  (N_m 1, rank 8 * N_m), without the long retriever, without both retrievers (recent 60 for
  the CRM, recent 10 in the prompt); ``rel_impr`` relative to Table 2's RecLoRA.
* ``nm`` — Figure 4: N_m in ``--nm`` (1, 2, 4, 8, 16); a PNG (``results/NAME_nm.png``).
* ``samples`` — Figure 6: RecLoRA and ReLLa at K in ``--sample-ks`` (256, 1024, 4096); a PNG
  plot (``results/NAME_samples.png``).

Rows with the same config as an earlier row (N_m 4 = Table 2's RecLoRA, N_m 1 = "w/o
meta-LoRA", Figure 6 at K = ``--llm-samples``) are not trained twice: the row is copied and
names the run it repeats (``same_run_as``). The CTR models RecLoRA reads are trained once per
history setting and kept in ``--work-dir`` (``crm-*``; reused while their config is unchanged,
passed as ``model.crm.run``); the retrieved one **is** Table 2's SIM row. The
``retrieved`` and ``recent`` SIMs serve every RecLoRA row.

The retriever ablations are exact (``data.ctr.retrieval.long_from`` / ``short_from``):

* **w/o long retriever**: the CRM reads the most recent 60 (``long_from: recent``; the recent
  SIM serves as its CRM), the prompt the 10 retrieved from the pool of 100.
* **w/o short retriever**: the CRM reads the retrieved 60, the prompt the most recent 10
  (``short_from: recent``).
* ``history`` — Table 4 / Figure 5: ReLLa with the prompt's retrieved history at
  ``--text-lengths`` (10, 30, 60) against RecLoRA with a 10-title prompt and its CRM (a SIM
  trained for each length) reading ``--id-lengths`` (10, 30, 60) retrieved behaviours; AUC and
  seconds per training / inference sample relative to ReLLa at the shortest text (the paper's
  "Improve" and "Increase" columns); a PNG (``results/NAME_history.png``). Every row of the
  section reads prompts of up to ``--history-max-length`` tokens (1536: 60 ML-100K titles with
  their stars are ~750 tokens, the instruction ~130; the models' default 512 would cut the
  longer histories to the same ~30 titles). Run it without ``--resume`` so that all rows are
  timed side by side in one process.
* ``crm`` — RecLoRA gated by another conventional model (``--crm-models``, default
  GRU4Rec-CTR, the best ID model of Table 2 here; the paper's CRM is SIM, its best ID model),
  on recent histories (no retrieval; compare Table 3's "w/o long-short retriever"); ``rel_impr``
  relative to the best ID model.
* Table 2's Caser is ``caser-ctr`` (Caser's defaults but an identity activation after its FC
  layer; no user embedding, like the other ID sequence models; last in ``ID_MODELS`` so that
  the row order of earlier runs is kept).

Other choices: TALLRec, ReLLa and RecLoRA share RecLoRA's prompt (Figure 2, template
``reclora``) so they differ only in the adapter and in which behaviours are shown; the LLM is
the packaged SmolLM2-135M (``--llm``) instead of Vicuna-7B; LLMs train with batch 8, lr 1e-3,
AdamW, linear decay (appendix C), ``--llm-epochs``; CTR-BERT full-shot like the ID models (the
paper: "most of the other baselines are trained in full-shot settings", section 4.2) with lr
5e-5, linear decay, warm-up (appendix B.2), batch 64 and a training-time cap
(``--bert-budget-minutes``, 40: ~40% of one epoch on 2 cores; the paper runs 10); ID models
with AdamW, lr 1e-3, batch 256, early stopping on valid AUC. No 5-core filter (appendix A has
one): on ML-100K it would drop 0.71% of the ratings and no user (docs/decisions.md).

    python benchmarks/reclora.py --quick --threads 1        # every section, tiny (smoke test;
                                                             # ~1 h on one busy core: 11 LLM
                                                             # runs of ~4 min)
    python benchmarks/reclora.py --threads 2                 # the benchmark (hours on a CPU)
    python benchmarks/reclora.py --sections table2 --only "reclora K=1024" --resume
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

from common import REPO, RESULTS, bench_parser, ctr_row, results, results_name, shared_data
from recadapt.experiments import Experiment, Run

#: dataset -> the rating a positive needs (appendix A: MovieLens rating >= 4; > 3.0 on the
#: half-star scale of the dslabs subset, i.e. >= 3.5)
DATASETS = {"ml-100k": 4, "movielens_dslabs": 3.5}
ID_MODELS = ["deepfm", "autoint", "dcnv2", "din", "sim", "gru4rec-ctr", "sasrec-ctr",
             "caser-ctr"]
SECTIONS = ["table2", "table3", "nm", "samples", "history", "crm"]


class Configs:
    """The run configs and row fields of every section, from the command-line settings: the
    history views, the ID / LLM / CTR-BERT configs, the kept CTR-model runs (``crm-*``) that
    RecLoRA rows need and :meth:`runs`, the grid of the chosen sections."""

    def __init__(self, args: argparse.Namespace, dataset: str = "ml-100k") -> None:
        self.args = args
        self.dataset = dataset
        self.source = str(shared_data(dataset))
        self.work = Path(args.work_dir)
        self.runs_dir = Path(args.runs_dir or args.work_dir)
        long, short = args.long_history, args.prompt_history
        retrieval = {"model": args.llm, "dims": 64, "long_len": long, "short_len": short}
        #: view -> (data.ctr.history_len, data.ctr.retrieval, description)
        self.views: dict[str, tuple[int, dict | None, str]] = {
            "recent": (long, None, f"ID history: recent {long}"),
            "retrieved": (args.pool, retrieval,
                          f"retrieval from the recent {args.pool}: ID top {long}, "
                          f"prompt top {short}"),
            "nolong": (args.pool, {**retrieval, "long_from": "recent"},
                       f"ID history: recent {long}; prompt top {short} retrieved from the "
                       f"recent {args.pool} (w/o long retriever)"),
            "noshort": (args.pool, {**retrieval, "short_from": "recent"},
                        f"ID top {long} retrieved from the recent {args.pool}; prompt: "
                        f"recent {short} (w/o short retriever)"),
            "short": (short, None, f"prompt history: recent {short}"),
        }

    def retrieved_view(self, long: int, short: int) -> str:
        """A ``retrieved`` view with other lengths (Table 4 / Figure 5): the ID top ``long``
        and the prompt top ``short`` retrieved from the same pool."""
        a = self.args
        if (long, short) == (a.long_history, a.prompt_history):
            return "retrieved"
        name = f"retrieved-id{long}-text{short}"
        retrieval = {"model": a.llm, "dims": 64, "long_len": long, "short_len": short}
        self.views[name] = (a.pool, retrieval, f"retrieval from the recent {a.pool}: ID top "
                            f"{long}, prompt top {short}")
        return name

    # -- configs ---------------------------------------------------------------------------
    def data(self, view: str, k: int | None) -> dict[str, Any]:
        history_len, retrieval, _ = self.views[view]
        ctr: dict[str, Any] = {"label_threshold": DATASETS[self.dataset],
                               "split": [0.8, 0.1, 0.1],
                               "history_len": history_len, "k_shot": k,
                               "max_eval_samples": self.args.eval_samples}
        if retrieval is not None:
            ctr["retrieval"] = retrieval
        return {"source": self.source, "task": "ctr", "ctr": ctr}

    def id_train(self) -> dict[str, Any]:
        a = self.args
        return {"epochs": 1 if a.quick else a.id_epochs, "batch_size": 256, "lr": 1e-3,
                "optimizer": "adamw", "patience": 3, "num_threads": a.threads}

    def llm_train(self) -> dict[str, Any]:
        a = self.args
        return {"epochs": a.llm_epochs, "batch_size": 8, "lr": a.llm_lr, "optimizer": "adamw",
                "schedule": "linear", "patience": 2, "num_threads": a.threads}

    def bert_train(self) -> dict[str, Any]:
        """CTR-BERT is full-shot in the paper (appendix B.2: 10 epochs, batch 1024, lr 5e-5,
        linear decay, 5% warm-up): here the full training split, batch 64, ``--bert-epochs``
        and at most ``--bert-budget-minutes`` (~0.07 s per sample on 2 cores: one epoch of
        ML-100K's ~80k samples is ~1.5 h). Warm-up: 30 steps, ~5% of what fits in 40 min."""
        a = self.args
        train = {"epochs": a.bert_epochs, "batch_size": 16 if a.quick else 64, "lr": a.bert_lr,
                 "optimizer": "adamw", "schedule": "linear",
                 "warmup_steps": 1 if a.quick else 30, "patience": 2, "num_threads": a.threads}
        if a.bert_budget_minutes:
            train["time_budget_minutes"] = 0.3 if a.quick else a.bert_budget_minutes
        return train

    def raw(self, view: str, k: int | None, model: dict, train: dict) -> dict[str, Any]:
        return {"data": self.data(view, k), "model": model, "train": train,
                "eval": {"batch_size": 256}, "cache": {"dir": str(self.work / "cache")}}

    def setting(self, view: str, k: int | None, model: dict, train: dict,
                crm: str | None = None) -> str:
        shown = {key: v for key, v in model.items() if key != "crm"}
        parts = ["CTR rating>=4, global-time 8:1:1",
                 "full training split" if k is None else f"K={k} training samples",
                 self.views[view][2], f"valid/test subsample {self.args.eval_samples}",
                 f"model {json.dumps(shown, sort_keys=True)}"]
        if crm:
            parts.append(f"CRM: {crm}")
        parts.append(f"train {json.dumps(train, sort_keys=True)}")
        return "; ".join(parts) + (" (quick)" if self.args.quick else "")

    def crm_raw(self, view: str, name: str = "sim") -> dict[str, Any]:
        return self.raw(view, None, {"name": name}, self.id_train())

    def crm_folder(self, view: str, name: str = "sim") -> str:
        """The kept CTR-model run's folder under the runs directory (named by its config)."""
        digest = hashlib.sha1(json.dumps(self.crm_raw(view, name), sort_keys=True).encode())
        return f"crm-{name}-{view}-{digest.hexdigest()[:10]}"

    def crm_dir(self, view: str, name: str = "sim") -> Path:
        return self.runs_dir / self.crm_folder(view, name)

    def crm_run(self, view: str, name: str = "sim") -> Run:
        """The kept CTR model a RecLoRA row reads (trained first, once per history view)."""
        return Run(f"{name} CRM ({view})", self.crm_raw(view, name),
                   {"dataset": self.dataset}, folder=self.crm_folder(view, name))

    def row(self, section: str, method: str, raw: dict[str, Any], setting: str, *,
            crm: tuple[str, str] | None = None, kept: str | None = None) -> Run:
        """A row's run: temporary, or ``kept`` in that folder (Table 2's SIM is RecLoRA's
        CRM); a RecLoRA row needs its CRM (``crm``: view, model)."""
        fields = {"dataset": self.dataset, "setting": setting, "section": section,
                  "config_sha": config_sha(raw),
                  "family": "ID" if raw["model"]["name"] in ID_MODELS else "LM"}
        if crm is not None:
            fields["crm_run"] = self.crm_folder(*crm)
        return Run(method, raw, fields, folder=kept, keep=kept is not None,
                   needs=(self.crm_run(*crm),) if crm is not None else ())

    # -- runs ------------------------------------------------------------------------------
    def id_run(self, name: str) -> Run:
        view = "retrieved" if name == "sim" else "recent"
        model, train = {"name": name}, self.id_train()
        raw = self.raw(view, None, model, train)
        setting = self.setting(view, None, model, train)
        kept = self.crm_folder(view) if name == "sim" else None
        method = "sim (= RecLoRA's CRM)" if name == "sim" else name
        return self.row("table2", method, raw, setting, kept=kept)

    def reclora(self, section: str, method: str, k: int, *, view: str = "retrieved",
                num_meta: int | None = None, lora_r: int = 8, crm_model: str = "sim",
                max_length: int | None = None) -> Run:
        crm_view = view if view.startswith("retrieved") else (
            "retrieved" if view == "noshort" else "recent")
        crm = self.crm_dir(crm_view, crm_model)
        model = {"name": "reclora", "llm": self.args.llm, "num_meta": num_meta or
                 self.args.num_meta, "lora_r": lora_r,
                 "prompt_history_len": self.args.prompt_history, "crm": {"run": str(crm)}}
        if max_length:
            model["max_length"] = max_length
        train = self.llm_train()
        crm_label = (f"{crm_model} on the full training split, {self.views[crm_view][2]} "
                     f"({crm.name})")
        return self.row(section, method, self.raw(view, k, model, train),
                        self.setting(view, k, model, train, crm_label), crm=(crm_view, crm_model))

    def llm(self, section: str, name: str, k: int, view: str | None = None,
            method: str | None = None, max_length: int | None = None) -> Run:
        view = view or ("retrieved" if name == "rella" else "short")
        model: dict[str, Any] = {"name": name, "llm": self.args.llm, "template": "reclora"}
        if max_length:
            model["max_length"] = max_length
        train = self.llm_train()
        return self.row(section, method or f"{name} K={k}", self.raw(view, k, model, train),
                        self.setting(view, k, model, train))

    def ctr_bert(self) -> Run:
        """Full-shot like the ID models (the paper trains only the LLMs few-shot)."""
        model, train = {"name": "ctr-bert"}, self.bert_train()
        return self.row("table2", "ctr-bert", self.raw("short", None, model, train),
                        self.setting("short", None, model, train))

    def runs(self, sections: list[str]) -> list[Run]:
        a, k = self.args, self.args.llm_samples
        runs: list[Run] = []
        if "table2" in sections:
            runs += [self.id_run(name) for name in ID_MODELS]
            runs.append(self.ctr_bert())
            runs += [self.llm("table2", name, k) for name in ("tallrec", "rella")]
            runs.append(self.reclora("table2", f"reclora K={k}", k))
        if "table3" in sections:
            runs += [
                self.reclora("table3", f"reclora w/o meta-LoRA K={k}", k, num_meta=1),
                self.reclora("table3", f"reclora w/o meta-LoRA same param K={k}", k,
                             num_meta=1, lora_r=8 * a.num_meta),
                self.reclora("table3", f"reclora w/o long retriever K={k}", k,
                             view="nolong"),
                self.reclora("table3", f"reclora w/o short retriever K={k}", k,
                             view="noshort"),
                self.reclora("table3", f"reclora w/o long-short retriever K={k}", k,
                             view="recent"),
            ]
        if "crm" in sections:  # RecLoRA gated by another CRM (recent histories, no retrieval)
            runs += [self.reclora("crm", f"reclora CRM={name} K={k}", k, view="recent",
                                  crm_model=name) for name in a.crm_models]
        if "nm" in sections:
            runs += [self.reclora("nm", f"reclora N_m={n} K={k}", k, num_meta=n) for n in a.nm]
        if "samples" in sections:
            for n in a.sample_ks:
                runs.append(self.reclora("samples", f"reclora K={n}", n))
                runs.append(self.llm("samples", "rella", n))
        if "history" in sections:  # Table 4 and Figure 5: longer text vs longer ID histories
            short = a.prompt_history
            runs += [self.llm("history", "rella", k, self.retrieved_view(a.long_history, n),
                              f"rella text={n} K={k}", a.history_max_length)
                     for n in a.text_lengths]
            runs += [self.reclora("history", f"reclora text={short} ID={n} K={k}", k,
                                  view=self.retrieved_view(n, short),
                                  max_length=a.history_max_length) for n in a.id_lengths]
        return runs


def config_sha(raw: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(raw, sort_keys=True).encode()).hexdigest()[:12]


def annotate(all_rows: list[dict[str, Any]]) -> None:
    """Per dataset: see :func:`annotate_dataset`."""
    for dataset in {r.get("dataset") for r in all_rows}:
        annotate_dataset([r for r in all_rows if r.get("dataset") == dataset])


def annotate_dataset(rows: list[dict[str, Any]]) -> None:
    """``rel_impr``: Table 2 rows relative to the best ID model, Table 3 rows relative to
    Table 2's RecLoRA (AUC), as the paper's RelImpr / RelDecr columns; Table 4 (``history``)
    rows relative to ReLLa with the shortest text history, with its time increases; ``crm``
    rows relative to the best ID model."""
    ids = [r for r in rows if r["section"] == "table2" and r.get("family") == "ID"]
    best = max(ids, key=lambda r: r["AUC"], default=None)
    full = next((r for r in rows if r["section"] == "table2"
                 and r["method"].startswith("reclora K=")), None)
    texts = sorted((int(r["method"].split()[1].removeprefix("text=")), r) for r in rows
                   if r["section"] == "history" and r["method"].startswith("rella text="))
    shortest = texts[0][1] if texts else None
    for row in rows:
        for key in ("rel_impr", "rel_to", "train_time_increase", "inference_time_increase"):
            row.pop(key, None)
        ref = {"table2": best, "crm": best, "table3": full,
               "history": shortest}.get(row["section"])
        if ref is not None:
            row["rel_impr"] = row["AUC"] / ref["AUC"] - 1
            row["rel_to"] = ref["method"]
        if row["section"] == "history" and ref is not None:  # Table 4's "Increase" columns
            for key, name in (("seconds_per_train_sample", "train_time_increase"),
                              ("seconds_per_inference_sample", "inference_time_increase")):
                row[name] = row[key] / ref[key] - 1


def plot_history(rows: list[dict[str, Any]], path: Path, dataset: str) -> None:
    """Figure 5 / Table 4 as a picture: AUC and training seconds per sample against the
    history length, for longer text (ReLLa) and longer ID (RecLoRA's CRM) histories."""
    from recadapt.report.plots import pyplot, save_png

    fig, axes = pyplot().subplots(1, 2, figsize=(9, 3.5))
    for prefix, label in (("rella text=", "ReLLa, text history"),
                          ("reclora", "RecLoRA, ID history")):
        points = []
        for r in rows:
            if r["section"] != "history" or not r["method"].startswith(prefix):
                continue
            field = next(p for p in r["method"].split() if p.startswith(
                "text=" if prefix.startswith("rella") else "ID="))
            points.append((int(field.split("=")[1]), r["AUC"], r["seconds_per_train_sample"]))
        points.sort()
        if points:
            lengths, aucs, seconds = zip(*points, strict=True)
            axes[0].plot(lengths, aucs, marker="o", label=label)
            axes[1].plot(lengths, seconds, marker="o", label=label)
    axes[0].set(xlabel="history length", ylabel="test AUC", title=f"{dataset}: AUC (Figure 5)")
    axes[1].set(xlabel="history length", ylabel="s / training sample",
                title="training time (Table 4)")
    for ax in axes:
        ax.legend()
    fig.tight_layout()
    print(f"wrote {save_png(fig, path)}")


#: section -> (figure, x-axis label, [(method prefix before the swept number, legend label)])
SWEEPS = {
    "nm": ("Figure 4", "meta-LoRAs N_m", [("reclora N_m=", "RecLoRA")]),
    "samples": ("Figure 6", "LLM training samples K",
                [("reclora K=", "RecLoRA"), ("rella K=", "ReLLa")]),
}


def plot_sweep(rows: list[dict[str, Any]], path: Path, dataset: str, section: str) -> None:
    """Test AUC against the swept number of a section (``SWEEPS``), on a log2 axis."""
    from recadapt.report.plots import pyplot, save_png

    figure, xlabel, series = SWEEPS[section]
    fig, ax = pyplot().subplots(figsize=(5, 3.5))
    for prefix, label in series:
        points = sorted((int(r["method"].removeprefix(prefix).split()[0]), r["AUC"])
                        for r in rows
                        if r["section"] == section and r["method"].startswith(prefix))
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set(xlabel=xlabel, ylabel="test AUC", title=f"{dataset}, RecLoRA {figure}")
    ax.legend()
    fig.tight_layout()
    print(f"wrote {save_png(fig, path)}")


def main() -> None:
    parser = bench_parser(
        __doc__.splitlines()[0], "reclora", quick="tiny runs of every section",
        runs_dir="the kept CTR-model runs, RUNS_DIR/crm-* (default: WORK_DIR)")
    parser.add_argument("--sections", nargs="+", default=SECTIONS, choices=SECTIONS)
    parser.add_argument("--datasets", nargs="+", default=["ml-100k"], choices=list(DATASETS),
                        help="ml-100k (rating >= 4 positive) and/or movielens_dslabs (>= 3.5)")
    parser.add_argument("--llm-samples", type=int, default=None,
                        help="K, LLM training samples (default 1024; quick 16)")
    parser.add_argument("--eval-samples", type=int, default=None,
                        help="valid/test samples scored per run (default 1000; quick 16)")
    parser.add_argument("--long-history", type=int, default=60, help="ID behaviours")
    parser.add_argument("--prompt-history", type=int, default=10, help="prompt behaviours")
    parser.add_argument("--pool", type=int, default=100, help="behaviours retrieval searches")
    parser.add_argument("--num-meta", type=int, default=4, help="N_m of the full RecLoRA")
    parser.add_argument("--nm", nargs="+", type=int, default=None,
                        help="Figure 4's N_m values (default 1 2 4 8 16; quick 1 2)")
    parser.add_argument("--sample-ks", nargs="+", type=int, default=None,
                        help="Figure 6's K values (default 256 1024 4096; quick 8 16)")
    parser.add_argument("--text-lengths", nargs="+", type=int, default=None,
                        help="Table 4: ReLLa's prompt histories (default 10 30 60; quick 2 4)")
    parser.add_argument("--id-lengths", nargs="+", type=int, default=None,
                        help="Table 4 / Figure 5: RecLoRA's CRM histories (default 10 30 60; "
                        "quick 10 20)")
    parser.add_argument("--history-max-length", type=int, default=1536,
                        help="section history: prompt tokens every row may read (60 titles "
                        "must fit)")
    parser.add_argument("--crm-models", nargs="+", default=["gru4rec-ctr"],
                        help="section crm: RecLoRA's CTR model (the paper: SIM, its best ID "
                        "model; here the best ID model of Table 2)")
    parser.add_argument("--llm", default="smollm2-135m")
    parser.add_argument("--llm-epochs", type=int, default=None, help="default 2; quick 1")
    parser.add_argument("--llm-lr", type=float, default=1e-3)
    parser.add_argument("--bert-lr", type=float, default=5e-5, help="CTR-BERT (appendix B.2)")
    parser.add_argument("--bert-epochs", type=int, default=1,
                        help="CTR-BERT on the full split (the paper: 10; quick 1)")
    parser.add_argument("--bert-budget-minutes", type=float, default=40,
                        help="CTR-BERT's training-time cap (0: none; quick 0.3)")
    parser.add_argument("--id-epochs", type=int, default=30,
                        help="ID models and CRMs, early stopping on valid AUC (quick 1)")
    parser.add_argument("--work-dir", default=str(REPO / ".cache" / "bench-reclora"),
                        help="kept CTR-model runs and the retrieval's state cache")
    args = parser.parse_args()
    quick = args.quick
    for key, full, small in (("llm_samples", 1024, 16), ("eval_samples", 1000, 16),
                             ("nm", [1, 2, 4, 8, 16], [1, 2]),
                             ("sample_ks", [256, 1024, 4096], [8, 16]),
                             ("text_lengths", [10, 30, 60], [2, 4]),
                             ("id_lengths", [10, 30, 60], [10, 20]),
                             ("llm_epochs", 2, 1)):
        if getattr(args, key) is None:
            setattr(args, key, small if quick else full)
    name = results_name(args.name, quick)
    table = results(name, key=("dataset", "section", "method"), annotate=annotate,
                    keep=args.resume or not quick)
    experiment = Experiment(table, args.runs_dir or args.work_dir, only=args.only,
                            resume=args.resume, collect=ctr_row, columns=COLUMNS)
    #: config digest -> the first row of that config: a later row of the same config copies it
    done = {r["config_sha"]: r for r in table.rows
            if "config_sha" in r and "same_run_as" not in r} if args.resume else {}
    for run in (r for dataset in args.datasets for r in Configs(args, dataset).runs(
            args.sections)):
        if not experiment.pending(run):
            continue
        sha = run.fields["config_sha"]
        if sha in done:  # the same config ran as another row: copy it
            first = done[sha]
            own = {k: v for k, v in run.row_fields().items() if k not in ("dataset", "setting")}
            row = experiment.record({**first, **own,
                                     "same_run_as": f"{first['section']}: {first['method']}"})
        else:  # Few2Many: a RecLoRA row's CTR model first (once per history)
            row = experiment.run(run)
        done.setdefault(sha, row)
    order = {s: i for i, s in enumerate(SECTIONS)}
    table.rows.sort(key=lambda r: (args.datasets.index(r["dataset"]) if r.get("dataset") in
                                   args.datasets else len(args.datasets),
                                   order.get(r["section"], len(order))))
    table.write()
    rows = table.rows
    print(experiment.summary())
    for dataset in args.datasets:
        mine = [r for r in rows if r.get("dataset") == dataset]
        suffix = "" if dataset == "ml-100k" else f"_{dataset}"
        for section in SWEEPS:
            if section in args.sections:
                plot_sweep(mine, RESULTS / f"{name}{suffix}_{section}.png", dataset, section)
        if "history" in args.sections:
            plot_history(mine, RESULTS / f"{name}{suffix}_history.png", dataset)


COLUMNS = ["section", "AUC", "LogLoss", "rel_impr", "epochs", "stopped", "trainable_params",
           "trainable_ratio", "seconds_per_train_sample", "seconds_per_inference_sample",
           "train_time_increase", "inference_time_increase"]

if __name__ == "__main__":
    main()
