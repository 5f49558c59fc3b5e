"""The one training loop every model uses, on Hugging Face accelerate.

accelerate owns device placement, mixed precision, gradient accumulation and (under
``accelerate launch``) distribution; this loop owns epochs, early stopping on a validation
metric, checkpoints and the files of a run directory.

Run directory layout::

    config.yaml          resolved config (written first)
    checkpoints/last.safetensors   training state after the latest epoch (for --resume)
    model.safetensors    best weights by the monitored validation metric
                         (both without frozen parameters: see ``train/checkpoint.py``)
    history.json         per-epoch loss, validation metrics, seconds (learning curves)
    metrics.json         {"valid": {...}, "test": {...}} of the best weights
    efficiency.json      seconds_per_epoch, peak_memory_mb, trainable_params, total_params,
                         cache_bytes (cached content models)
    ranks.json           per-user test ranks (for paired significance tests between runs)
    predictions.json     CTR task instead of ranks.json: per-sample user, item, label, probability

Under ``accelerate launch`` (``docs/scaling.md``) every process runs this same code: the
training batches are sharded by accelerate's prepared DataLoader (``train.batch_size`` per
process), each evaluation scores a slice of the users and gathers their ranks, so metrics and
early-stopping decisions are the same on every process, and only the main process writes the
run directory (atomically) while the others wait for it.
"""

from __future__ import annotations

import ast
import math
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, set_seed

from recadapt.config import RunConfig, dump_config
from recadapt.data.batching import (
    EpochPermutation,
    WindowDataset,
    collate_windows,
    train_windows,
)
from recadapt.data.ctr import CTRDataset, CTRSplit, collate_ctr
from recadapt.distributed import (
    max_over_processes,
    process_state,
    sync_persistent_buffers,
    use_cpu,
)
from recadapt.errors import ConfigError, RecAdaptError
from recadapt.eval.protocols import EvalResult, evaluate_part
from recadapt.io import write_json, write_text
from recadapt.models.base import Recommender
from recadapt.models.registry import resolve_model
from recadapt.progress import progress_bar, tqdm
from recadapt.report.analysis import write_run_analysis
from recadapt.train.checkpoint import (
    load_checkpoint,
    load_model_weights,
    load_trainable_state,
    save_checkpoint,
    save_model_weights,
    trainable_state,
)
from recadapt.train.efficiency import PeakMemory, cache_bytes, parameter_counts
from recadapt.train.runs import Prepared, item_counts_tensor, prepare_data
from recadapt.train.stages import build_with_stages, ensure_stage, plan_stages

EpochHook = Callable[[int, dict[str, Any]], None]


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, dict[str, float]]
    efficiency: dict[str, float]
    history: list[dict[str, Any]]


def warmup_linear(warmup: int, total: int, decay: bool,
                  start: float = 0.0) -> Callable[[int], float]:
    """lr multiplier: linear warm-up over ``warmup`` steps, then constant or linear decay to 0
    at ``total`` steps. The warm-up starts at ``(step + 1) / warmup`` (``start`` = 0), or at
    exactly ``start`` (a multiplier, e.g. ATFLRec's 1e-9 / lr) rising to 1 at step ``warmup``."""

    def factor(step: int) -> float:
        if warmup and step < warmup:
            if start > 0:
                return start + (1 - start) * step / warmup
            return (step + 1) / warmup
        if not decay:
            return 1.0
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def train_run(
    config: RunConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    prepared: Prepared | None = None,
    on_epoch_end: EpochHook | None = None,
) -> RunResult:
    """Train ``config`` into ``run_dir`` (see module docstring); resume from its checkpoint."""
    run_dir = Path(run_dir)
    config = resolve_model(config)
    state = process_state(config.train.cpu)  # under accelerate launch: joins the processes
    if not resume and (run_dir / "config.yaml").exists():
        _check_run_dir(run_dir, config, resume)  # fail before training any prerequisite
    config, stages = plan_stages(config, run_dir)
    _check_run_dir(run_dir, config, resume)
    state.wait_for_everyone()  # every process has checked the folder before anything is written
    if config.train.num_threads:
        torch.set_num_threads(config.train.num_threads)
    prepared = prepared or prepare_data(config)  # data errors surface before anything is written
    for stage in stages:  # prerequisites on the same data reuse this split
        ensure_stage(stage, progress, prepared if stage.config.data == config.data else None)
    set_seed(config.train.seed)
    model = build_with_stages(config, prepared.dataset)
    model.fit_statistics(item_counts_tensor(prepared.split))
    if prepared.is_ctr:
        model.fit_training_samples(prepared.split.train)  # type: ignore[attr-defined]
    if state.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(run_dir / "config.yaml", dump_config(config))
    state.wait_for_everyone()
    return _Loop(config, model, prepared, run_dir, progress, on_epoch_end).run(resume)


def _check_run_dir(run_dir: Path, config: RunConfig, resume: bool) -> None:
    existing = run_dir / "config.yaml"
    if resume:
        if not (run_dir / "checkpoints" / "last.safetensors").is_file():
            raise RecAdaptError(f"nothing to resume in {run_dir}: no checkpoints/last.safetensors")
        if existing.read_text(encoding="utf-8") != dump_config(config):
            raise RecAdaptError(
                f"{existing} differs from the config given; resume with the same config"
            )
    elif existing.exists():
        raise RecAdaptError(
            f"{run_dir} already holds a run; pass --resume to continue it, or choose another --out"
        )


def _allow_precision(mixed_precision: str) -> None:
    """Let one process train runs of different precisions one after another (a benchmark's
    ID rows in fp32, then an LLM row in bf16): accelerate's state is a process-wide singleton
    that refuses a new precision. In a single process its precision-bound part is reset (the
    process state stays); in a distributed launch every run must share the precision."""
    from accelerate.state import AcceleratorState, PartialState

    state = AcceleratorState._shared_state
    if not state or state.get("_mixed_precision") == mixed_precision:
        return
    if PartialState._shared_state.get("num_processes", 1) > 1:
        raise RecAdaptError(f"train.mixed_precision: {mixed_precision!r} differs from "
                            f"{state.get('_mixed_precision')!r} of an earlier run in this "
                            "distributed launch; launch each precision separately")
    AcceleratorState._reset_state()


class _Loop:
    def __init__(self, config: RunConfig, model: Recommender, prepared: Prepared,
                 run_dir: Path, progress: bool, on_epoch_end: EpochHook | None) -> None:
        self.config, self.prepared, self.run_dir = config, prepared, run_dir
        self.train_cfg = config.train
        _allow_precision(self.train_cfg.mixed_precision)
        self.accelerator = Accelerator(
            cpu=use_cpu(self.train_cfg.cpu),
            mixed_precision=self.train_cfg.mixed_precision,
            gradient_accumulation_steps=self.train_cfg.grad_accum_steps,
            # cached state tables are (non-persistent) buffers: never broadcast them per step;
            # some models leave parameters out of a step's loss (e.g. a gated-off tower)
            kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False,
                                                           find_unused_parameters=True)],
        )
        self.processes = self.accelerator.num_processes
        self.model = model
        self.progress = progress and self.accelerator.is_local_main_process
        self.on_epoch_end = on_epoch_end
        self.history: list[dict[str, Any]] = []
        self.best: float = -math.inf
        self.bad_epochs = 0
        self.start_epoch = 0
        self.epoch_seconds: list[float] = []
        self.stopped = "max_epochs"

    # -- evaluation -----------------------------------------------------------------------
    def _evaluate(self, part: str) -> EvalResult:
        """Every process calls this together: each scores a slice of the users."""
        model = self.accelerator.unwrap_model(self.model)
        sync_persistent_buffers(model, self.accelerator)
        return evaluate_part(model, self.prepared.split, part, self.config.eval,
                             self.config.data.max_seq_len, device=self.accelerator.device,
                             progress=self.progress, processes=self.accelerator)

    def _monitor(self, values: dict[str, float]) -> float:
        key = self.train_cfg.monitor
        if key not in values:
            raise ConfigError(
                f"train.monitor: {key!r} is not a validation metric; choose one of {sorted(values)}"
            )
        return -values[key] if key == "LogLoss" else values[key]  # higher is better

    # -- training -------------------------------------------------------------------------
    def run(self, resume: bool) -> RunResult:
        model = self.model
        with PeakMemory(self.accelerator.device) as memory:
            if model.trainable and self.train_cfg.epochs > 0:
                self._train(resume)
            else:
                model.to(self.accelerator.device)
        acc = self.accelerator
        best_path = self.run_dir / "model.safetensors"
        unwrapped = acc.unwrap_model(self.model)
        acc.wait_for_everyone()  # the main process has written the best weights
        if best_path.is_file():
            load_model_weights(unwrapped, best_path)
        elif acc.is_main_process:  # nothing trained (popularity, epochs=0): the weights as is
            save_model_weights(best_path, unwrapped)
        valid = self._evaluate("valid")
        started = time.perf_counter()
        test = self._evaluate("test")
        test_seconds = time.perf_counter() - started
        metrics = {"valid": valid.metrics, "test": test.metrics,
                   "protocol": test.protocol, "dataset": self.prepared.dataset.name}
        trainable, total = parameter_counts(unwrapped)
        efficiency = {
            "seconds_per_epoch": self._seconds_per_epoch(),
            "epochs": len(self.history),
            "total_train_seconds": float(sum(self.epoch_seconds)),
            # during training (see PeakMemory); the largest of the processes
            "peak_memory_mb": max_over_processes([memory.peak_mb], acc)[0],
            "trainable_params": trainable if unwrapped.trainable else 0,
            "total_params": total,
            "stopped": self.stopped if self.history else "not_trained",
            "test_eval_seconds": test_seconds,
            "processes": self.processes,
        }
        if (stored := cache_bytes(unwrapped)) is not None:
            efficiency["cache_bytes"] = stored
        if isinstance(self.prepared.split, CTRSplit):  # per-sample costs (LLM tables)
            split = self.prepared.split
            steps = sum(int(r.get("steps", 0)) for r in self.history)
            samples = steps * self.train_cfg.batch_size * self.processes
            efficiency["seconds_per_train_sample"] = (
                float(sum(self.epoch_seconds)) / samples if samples else 0.0)
            efficiency["seconds_per_inference_sample"] = test_seconds / max(1, len(split.test))
        if acc.is_main_process:
            users = [str(u) for u in self.prepared.dataset.user_ids[test.users]]
            if test.probs is not None:
                items = self.prepared.dataset.item_ids[test.items]
                write_json(self.run_dir / "predictions.json", {
                    "protocol": test.protocol, "users": users, "items": [str(i) for i in items],
                    "labels": test.labels.tolist(), "probs": test.probs.tolist()})
            else:
                write_json(self.run_dir / "ranks.json", {"protocol": test.protocol,
                                                        "users": users,
                                                        "ranks": test.ranks.tolist()})
            write_json(self.run_dir / "metrics.json", metrics)
            write_json(self.run_dir / "efficiency.json", efficiency)
            write_run_analysis(unwrapped, self.run_dir, self.prepared.split)
        acc.wait_for_everyone()  # the run directory is complete when any process returns
        return RunResult(self.run_dir, metrics, efficiency, self.history)

    def _train(self, resume: bool) -> None:
        cfg, acc = self.train_cfg, self.accelerator
        dataset, collate, sampler = self._training_data()
        loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler,
                                             collate_fn=collate, drop_last=cfg.drop_last)
        # each process gets every N-th batch of train.batch_size (accelerate's sharding)
        loader = acc.prepare(loader)
        if len(loader) == 0:
            raise RecAdaptError(f"{len(dataset)} training samples make no batch of "
                                f"{cfg.batch_size} per process with train.drop_last; lower "
                                "train.batch_size")
        optim_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        optimizer = optim_cls(
            self.model.parameter_groups(cfg.lr), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        steps_per_epoch = math.ceil(len(loader) / cfg.grad_accum_steps)  # optimizer steps
        total_steps = steps_per_epoch * cfg.epochs
        factor = warmup_linear(cfg.warmup_steps, total_steps, cfg.schedule == "linear",
                               cfg.warmup_start / cfg.lr)
        # accelerate steps the scheduler once per process at every optimizer step: count
        # optimizer steps, so warm-up and decay mean the same whatever the process count
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step, n=self.processes: factor(step // n))
        with warnings.catch_warnings():  # torch renamed it; accelerate still passes it
            warnings.filterwarnings("ignore", "`broadcast_buffers` is deprecated", FutureWarning)
            self.model, optimizer, scheduler = acc.prepare(self.model, optimizer, scheduler)
        checkpoint_path = self.run_dir / "checkpoints" / "last.safetensors"
        if resume:
            self._restore(load_checkpoint(checkpoint_path), optimizer, scheduler,
                          str(checkpoint_path))

        self.steps_per_epoch = len(loader)
        budget = cfg.time_budget_minutes * 60 if cfg.time_budget_minutes else math.inf
        for epoch in range(self.start_epoch, cfg.epochs):
            # accelerate's loader re-sets the sampler's epoch from its own counter, which
            # starts at 0 in a resumed process: set both, through the loader
            getattr(loader, "set_epoch", sampler.set_epoch)(epoch)
            self.model.train()
            started = time.perf_counter()
            total_loss, batches = 0.0, 0
            bar = progress_bar(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                       disable=not self.progress, dynamic_ncols=True)
            out_of_time = False
            for batch in bar:
                if self._out_of_time(budget, started):
                    out_of_time = True  # stop mid-epoch; this partial epoch is validated
                    break
                with acc.accumulate(self.model):
                    # through the prepared model's forward (= loss), so accelerate's mixed
                    # precision and a distributed wrapper's gradient hooks apply
                    loss = self._global_mean(self.model(batch), batch)
                    acc.backward(loss)
                    if cfg.max_grad_norm and acc.sync_gradients:
                        acc.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                total_loss += loss.item()
                batches += 1
                if batches % 10 == 0:
                    bar.set_postfix(loss=f"{total_loss / batches:.4f}")
            seconds = time.perf_counter() - started
            self.epoch_seconds.append(seconds)
            if self.processes > 1:  # the mean over processes of the per-process step losses
                total_loss = float(acc.reduce(torch.tensor(total_loss, device=acc.device),
                                              "sum")) / self.processes
            record: dict[str, Any] = {"epoch": epoch + 1, "loss": total_loss / max(1, batches),
                                      "seconds": seconds, "steps": batches,
                                      "lr": scheduler.get_last_lr()[0]}
            last = epoch + 1 == cfg.epochs or out_of_time
            if (epoch + 1) % cfg.eval_every == 0 or last:
                valid = self._evaluate("valid").metrics
                record["valid"] = valid
                score = self._monitor(valid)
                if score > self.best:  # the same metrics on every process: the same decision
                    self.best, self.bad_epochs = score, 0
                    weights = acc.get_state_dict(self.model)  # collective under FSDP/DeepSpeed
                    if acc.is_main_process:
                        save_model_weights(self.run_dir / "model.safetensors",
                                           acc.unwrap_model(self.model), weights)
                else:
                    self.bad_epochs += 1
            self.history.append(record)
            if self.progress:
                shown = {k: round(v, 4) for k, v in record.get("valid", {}).items()}
                tqdm.write(f"epoch {epoch + 1}: loss {record['loss']:.4f}, "
                           f"{seconds:.1f}s, valid {shown}")
            stop = self.bad_epochs >= cfg.patience or out_of_time
            if stop:
                self.stopped = "time_budget" if out_of_time else "early_stopping"
            if acc.is_main_process:
                self._save(checkpoint_path, epoch + 1, optimizer, scheduler, stop)
                write_json(self.run_dir / "history.json", self.history)
            if self.on_epoch_end is not None:
                self.on_epoch_end(epoch + 1, record)
            if stop:
                break

    def _out_of_time(self, budget: float, started: float) -> bool:
        """The time budget is spent (on any process: all stop at the same step)."""
        if budget == math.inf:
            return False
        over = sum(self.epoch_seconds) + time.perf_counter() - started > budget
        if self.processes == 1:
            return over
        if over:
            self.accelerator.set_trigger()
        return self.accelerator.check_trigger()

    def _global_mean(self, loss: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Weight this process's mean loss by its share of the step's loss terms, so that DDP's
        average over processes is the mean over all terms of the step, as one process with the
        whole batch would compute (the shards of a step hold different numbers of targets)."""
        if self.processes == 1:
            return loss
        terms = _loss_terms(batch).to(self.accelerator.device, torch.float32)
        total = self.accelerator.reduce(terms.clone(), "sum")
        return loss * (terms * self.processes / total.clamp(min=1.0)).to(loss.dtype)

    def _training_data(self) -> tuple[torch.utils.data.Dataset, Callable, EpochPermutation]:
        """The task's training rows, collate function and epoch-seeded sampler."""
        cfg, split = self.train_cfg, self.prepared.split
        if isinstance(split, CTRSplit):
            return (CTRDataset(split.train), collate_ctr,
                    EpochPermutation(len(split.train), cfg.seed))
        data = self.config.data
        limits = [n for n in (data.max_windows_per_user, self.model.windows_per_user())
                  if n is not None]
        windows = train_windows(split.train, data.max_seq_len, min(limits) if limits else None)
        if len(windows) == 0:
            raise RecAdaptError("no training sequences: every user has fewer than 2 train items")
        lengths = (windows.history > 0).sum(axis=1)
        # length buckets of the global batch (all processes' batches of one step): N processes
        # of batch_size B see exactly the steps of one process of N × B
        sampler = EpochPermutation(len(windows), cfg.seed, lengths,
                                   cfg.batch_size * self.processes)
        return WindowDataset(windows), collate_windows, sampler

    def _seconds_per_epoch(self) -> float:
        """Mean seconds per full epoch; with a partial (time-budget) epoch, seconds per step
        over all steps times the steps of a full epoch."""
        steps = sum(int(r.get("steps", 0)) for r in self.history)
        full = getattr(self, "steps_per_epoch", 0)
        if not self.epoch_seconds:
            return 0.0
        if not steps or not full or all(int(r.get("steps", full)) == full for r in self.history):
            return float(np.mean(self.epoch_seconds))
        return float(sum(self.epoch_seconds) / steps * full)

    # -- checkpoints ----------------------------------------------------------------------
    def _save(self, path: Path, epochs_done: int, optimizer: Any, scheduler: Any,
              stopped: bool) -> None:
        model_state, frozen = trainable_state(self.accelerator.unwrap_model(self.model))
        state = {
            "model": model_state,
            "frozen": frozen,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "loop": {"epochs_done": epochs_done, "best": self.best, "bad_epochs": self.bad_epochs,
                     "stopped": stopped, "stop_reason": self.stopped, "history": self.history,
                     "epoch_seconds": self.epoch_seconds},
            "rng": {"torch": torch.get_rng_state(), "numpy": _numpy_state(),
                    "python": repr(random.getstate())},
        }
        save_checkpoint(path, state)

    def _restore(self, state: dict[str, Any], optimizer: Any, scheduler: Any,
                 source: str) -> None:
        load_trainable_state(self.accelerator.unwrap_model(self.model), state["model"],
                             state.get("frozen"), source)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        loop = state["loop"]
        self.best = float(loop["best"])
        self.bad_epochs = int(loop["bad_epochs"])
        self.history = list(loop["history"])
        self.epoch_seconds = [float(s) for s in loop["epoch_seconds"]]
        self.start_epoch = self.train_cfg.epochs if loop["stopped"] else int(loop["epochs_done"])
        self.stopped = str(loop.get("stop_reason", self.stopped))
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(_numpy_unstate(state["rng"]["numpy"]))
        random.setstate(ast.literal_eval(state["rng"]["python"]))


def _loss_terms(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """How many terms the batch's mean loss averages: next-item windows, their targets;
    otherwise (CTR samples) the rows."""
    target = batch.get("target")
    if target is not None and target.dim() == 2:
        return (target > 0).sum()
    return torch.tensor(len(next(iter(batch.values()))))


def _numpy_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _numpy_unstate(state: dict[str, Any]) -> tuple:
    keys = state["keys"].numpy().astype(np.uint32)
    return (state["name"], keys, state["pos"], state["has_gauss"], state["cached"])
