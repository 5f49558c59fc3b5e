"""LLM recommenders as few-shot CTR models: TALLRec vs ID and graph baselines on ML-100K, and
ATFLRec's Tables II–V on the SYNTHETIC multimodal dataset.

Sections (``--sections``, all by default):

* ``ml100k`` — ML-100K (rating >= 4 positive, global-time split 8:1:1, history 10): TALLRec
  (packaged SmolLM2-135M + LoRA r 8) against SASRec-CTR, GRU4Rec-CTR, LightGCN and GraphSAGE
  trained on the **same** K-shot samples, K in ``--ks`` (64, 256, 1024), and ``like-rate`` (no
  parameters: the share of liked behaviours in the history, the per-user bias floor), the
  sequence models on the item sequence alone (``items-only``: without each behaviour's
  liked/disliked label, the classic sequential recommenders' input), plus
  ``full``: the ID and graph models on the whole training split and TALLRec on it under a
  time budget (``--llm-budget-minutes``; the row says how far it got).
* ``atflrec`` — the synthetic multimodal set (``recadapt data synth``; audio = each item's
  clip), K in ``--atflrec-ks`` (the paper's 100 and 500): Table II (ATFLRec vs GRU4Rec, SASRec,
  LightGCN, GraphSAGE; every K), Table III (dual LoRA vs single LoRA text+audio vs single LoRA
  text; every K but 100), Table IV (history-audio pooling mean/max; text–audio fusion
  sum/max/mean) and Table V (40 vs 80 FBanks) at K = 500, with trainable parameters and their
  ratio to the whole model. ``--audio-seconds 3`` reads the synthetic 3 s clips into all the
  audio tokens (rows named ``... audio=3s``; the model default is the paper's 30 s).

Every model of a section is evaluated on the same seeded subsample of the valid and test
samples (``--eval-samples``; LLM scoring costs ~0.3–0.6 s per sample on 2 CPU cores) — the
setting column says so. Efficiency columns: seconds per training sample and per inference
sample (``efficiency.json``).

    python benchmarks/llm_ctr.py --quick                    # every section, tiny, ~minutes
    python benchmarks/llm_ctr.py --sections ml100k --ks 256 # the few-shot claim
    python benchmarks/llm_ctr.py --sections atflrec
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from common import REPO, bench_parser, ctr_row, results, results_name, shared_data
from recadapt.experiments import Experiment, Run, slug

DEFAULT_LLM = "smollm2-135m"
ID_MODELS = ["sasrec-ctr", "gru4rec-ctr", "lightgcn", "graphsage"]
#: ATFLRec's Table III rows: run at every K of ``--atflrec-ks`` but 100
TABLE3 = ("atflrec dual", "atflrec single text+audio", "atflrec single text")


def id_train(k: int | None, args: argparse.Namespace) -> dict[str, Any]:
    """ID/graph models: small batches for few-shot sets, large for the full split."""
    batch = 1024 if k is None else (32 if k >= 256 else 16)
    return {"epochs": 2 if args.quick else 100, "batch_size": batch, "lr": 1e-3,
            "patience": 5, "num_threads": args.threads, "weight_decay": 1e-4}


def llm_train(args: argparse.Namespace, budget: float | None = None) -> dict[str, Any]:
    """TALLRec: batch 8, lr 1e-3, a few epochs (few-shot sets are tiny)."""
    train = {"epochs": 1 if args.quick else args.llm_epochs, "batch_size": 8,
             "lr": args.llm_lr, "patience": 2, "num_threads": args.threads}
    if budget:
        train["time_budget_minutes"] = budget
    if args.llm_precision != "no":
        train["mixed_precision"] = args.llm_precision  # only then: older rows' settings hold
    return train


def atflrec_train(args: argparse.Namespace) -> dict[str, Any]:
    """ATFLRec III-4: Adam, warm-up from 1e-9 over 50 iterations (batches; = 13 optimizer
    steps at accumulation 4) then linear decay to 0, batch 8 with gradient accumulation 4,
    incomplete batches dropped. Epochs and lr are not in the paper (``--atflrec-epochs``,
    ``--atflrec-lr``); early stopping on valid AUC."""
    return {"epochs": 1 if args.quick else args.atflrec_epochs, "batch_size": 8,
            "grad_accum_steps": 4, "lr": args.atflrec_lr, "warmup_steps": 13,
            "warmup_start": 1e-9, "schedule": "linear", "drop_last": True, "patience": 3,
            "num_threads": args.threads}


def eval_sizes(args: argparse.Namespace) -> dict[str, int]:
    """The valid and test subsample sizes (``--test-samples`` only when given)."""
    sizes = {"max_eval_samples": args.eval_samples}
    if args.test_samples is not None:
        sizes["max_test_samples"] = args.test_samples
    return sizes


def ml100k_runs(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    source = str(shared_data("ml-100k"))
    runs = []
    ks: list[int | None] = [*args.ks, None] if not args.quick else [args.ks[0]]
    for k in ks:
        ctr = {"k_shot": k, "history_len": 10, **eval_sizes(args)}
        data = {"source": source, "task": "ctr", "ctr": ctr}
        label = f"K={k}" if k else "full"
        for name in [*ID_MODELS, "like-rate"]:  # like-rate: the per-user bias floor
            runs.append((f"{name} {label}", {"data": data, "model": {"name": name},
                                             "train": id_train(k, args)}))
        for name in ("sasrec-ctr", "gru4rec-ctr"):  # the item sequence alone (no labels)
            runs.append((f"{name} items-only {label}", {
                "data": data, "model": {"name": name, "feedback": False},
                "train": id_train(k, args)}))
        budget = args.llm_budget_minutes if k is None else None
        model: dict[str, Any] = {"name": "tallrec"}
        method = "tallrec"
        if args.llm != DEFAULT_LLM:  # rows of another LLM are named apart
            model["llm"], method = args.llm, f"tallrec {args.llm}"
        if args.llm_prompt != "tallrec":  # and rows of another prompt template
            model["template"], method = args.llm_prompt, f"{method} prompt={args.llm_prompt}"
        runs.append((f"{method} {label}", {"data": data, "model": model,
                                           "train": llm_train(args, budget)}))
    return runs


def atflrec_runs(args: argparse.Namespace, source: Path) -> list[tuple[str, dict[str, Any]]]:
    runs = []
    for k in ([100] if args.quick else args.atflrec_ks):
        data = {"source": str(source), "task": "ctr",
                "ctr": {"k_shot": k, "history_len": 10, **eval_sizes(args)}}
        for name in ID_MODELS:
            runs.append((f"{name} K={k}", {"data": data, "model": {"name": name},
                                           "train": id_train(k, args)}))
        variants: list[tuple[str, dict[str, Any]]] = [
            ("atflrec dual", {}),  # defaults: dual LoRA, max pooling, sum fusion, 80 FBanks
            ("atflrec single text+audio", {"lora_mode": "single"}),
            ("atflrec single text", {"lora_mode": "text"}),
            ("atflrec dual pooling=mean", {"audio_pooling": "mean"}),
            ("atflrec dual fusion=max", {"fusion": "max"}),
            ("atflrec dual fusion=mean", {"fusion": "mean"}),
            ("atflrec dual fbank=40", {"num_fbank": 40}),
        ]
        for method, model in variants:
            if k != 500 and method not in TABLE3 and not args.quick:
                continue  # Tables IV–V at K = 500 only (the paper's reported setting)
            if k == 100 and method != "atflrec dual" and not args.quick:
                continue  # K = 100: Table II's ATFLRec row only
            label = method
            if args.audio_seconds is not None and model.get("lora_mode") != "text":
                # other rows than the default's (text-only reads no audio): named apart
                model = {**model, "audio_seconds": args.audio_seconds}
                label = f"{method} audio={args.audio_seconds:g}s"
            runs.append((f"{label} K={k}", {"data": data, "model": {"name": "atflrec", **model},
                                            "train": atflrec_train(args)}))
    return runs


def synthetic_source(args: argparse.Namespace) -> Path:
    from recadapt.data.synth import SynthConfig, generate

    work = Path(args.work_dir)
    config = SynthConfig(items=80, users=150, seed=0) if args.quick else SynthConfig(seed=0)
    target = work / ("synth-quick" if args.quick else "synth")
    if not (target / "synth_meta.json").is_file():
        generate(target, config, progress=sys.stderr.isatty(), overwrite=True)
    return target


def main() -> None:
    parser = bench_parser(
        __doc__.splitlines()[0], "llm_ctr", quick="tiny runs of every section",
        runs_dir="keep each run in RUNS_DIR/SECTION/METHOD (default: a temporary folder per "
        "run, deleted)")
    parser.add_argument("--sections", nargs="+", default=["ml100k", "atflrec"],
                        choices=["ml100k", "atflrec"])
    parser.add_argument("--ks", nargs="+", type=int, default=[64, 256, 1024])
    parser.add_argument("--eval-samples", type=int, default=None,
                        help="valid/test samples scored per run (default 1000; quick 100)")
    parser.add_argument("--test-samples", type=int, default=None,
                        help="test subsample size when larger than --eval-samples (scored "
                        "once; validation after each epoch keeps --eval-samples)")
    parser.add_argument("--llm-epochs", type=int, default=3)
    parser.add_argument("--llm-lr", type=float, default=1e-3)
    parser.add_argument("--llm", default=DEFAULT_LLM,
                        help="TALLRec's causal LM (packaged smollm2-135m or gemma3-270m, hf:ID, "
                        "a folder); rows of another LLM are named 'tallrec LLM K=...'")
    parser.add_argument("--llm-prompt", default="tallrec",
                        help="TALLRec's prompt template (tallrec; reclora: the profile and each "
                        "behaviour's stars; a YAML file); rows of another template are named "
                        "'tallrec prompt=NAME K=...'")
    parser.add_argument("--llm-precision", choices=["no", "bf16", "fp16"], default="no",
                        help="TALLRec's train.mixed_precision (bf16 autocast: ~1.5x faster "
                        "fwd+bwd on CPUs with AVX512-BF16; RecLoRA's appendix runs TALLRec "
                        "in 8-bit)")
    parser.add_argument("--atflrec-lr", type=float, default=1e-3)
    parser.add_argument("--atflrec-epochs", type=int, default=10)
    parser.add_argument("--atflrec-ks", nargs="+", type=int, default=[100, 500],
                        help="K of the atflrec section (the paper's 100 and 500; Tables IV-V "
                        "run at 500, Table III at every K but 100)")
    parser.add_argument("--audio-seconds", type=float, default=None,
                        help="ATFLRec's model.audio_seconds (default: the model's 30 s; the "
                        "synthetic clips are 3 s)")
    parser.add_argument("--llm-budget-minutes", type=float, default=30.0,
                        help="TALLRec on the full ML-100K training split stops after this")
    parser.add_argument("--work-dir", default=str(REPO / ".cache" / "bench-crossan"),
                        help="where the synthetic dataset lives (shared with crossan.py)")
    args = parser.parse_args()
    if args.eval_samples is None:
        args.eval_samples = 100 if args.quick else 1000
    table = results(results_name(args.name, args.quick), key=("method",),
                    keep=args.resume or not args.quick)
    plan: list[tuple[str, str, str, dict[str, Any]]] = []
    if "ml100k" in args.sections:
        plan += [("ml100k", "ml-100k", m, raw) for m, raw in ml100k_runs(args)]
    if "atflrec" in args.sections:
        source = synthetic_source(args)
        plan += [("atflrec", source.name, m, raw) for m, raw in atflrec_runs(args, source)]
    test_size = f", test {args.test_samples}" if args.test_samples is not None else ""
    runs = []
    for section, dataset, method, raw in plan:
        synthetic = " SYNTHETIC data (recadapt data synth)," if section == "atflrec" else ""
        setting = (f"{synthetic} CTR global-time 8:1:1, history 10, valid/test subsample "
                   f"{args.eval_samples}{test_size}, "
                   f"train {json.dumps(raw['train'], sort_keys=True)}"
                   + (" (quick)" if args.quick else "")).strip()
        runs.append(Run(method, {**raw, "eval": {"batch_size": 256}},
                        {"dataset": dataset, "setting": setting, "section": section},
                        folder=f"{section}/{slug(method)}"))
    experiment = Experiment(table, args.runs_dir, only=args.only, resume=args.resume,
                            collect=ctr_row, columns=COLUMNS)
    experiment.run_all(runs)
    print(experiment.summary())


COLUMNS = ["section", "AUC", "LogLoss", "epochs", "stopped", "trainable_params",
           "trainable_ratio", "seconds_per_train_sample", "seconds_per_inference_sample"]

if __name__ == "__main__":
    main()
