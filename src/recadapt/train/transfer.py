"""Cross-domain transfer (A-LLMRec 5.2.5): a finished candidate-list LLM run applied to another
dataset's catalogue."""

from __future__ import annotations

from pathlib import Path

from recadapt.config import RunConfig
from recadapt.data.prompts import item_texts
from recadapt.errors import ConfigError
from recadapt.models.a_llmrec import CandidateLLM
from recadapt.models.a_llmrec_stage1 import default_item_text
from recadapt.train.checkpoint import load_model_weights
from recadapt.train.runs import Prepared, prepare_data, read_run_config
from recadapt.train.stages import build_with_stages, load_trained_run


def transfer(run_dir: str | Path, target: RunConfig) -> tuple[CandidateLLM, Prepared]:
    """A finished candidate-LLM run (``a-llmrec``, ``tallrec-list``, ``llm-only``) applied to
    another dataset (cross-domain, 5.2.5): returns the retargeted model and the target's
    prepared data; evaluate with ``recadapt.eval.protocols.evaluate_part``."""
    folder = Path(run_dir)
    source = read_run_config(folder)
    source_data = prepare_data(source)
    model = build_with_stages(source, source_data.dataset)
    if not isinstance(model, CandidateLLM):
        raise ConfigError(f"{folder}: {source.model['name']} is not a candidate-list LLM run")
    load_model_weights(model, folder / "model.safetensors")
    target_data = prepare_data(target)
    table = None
    if model.item_proj is not None:
        stage1_run = model.config.stage1.run
        if not stage1_run:
            raise ConfigError(f"{folder}: its item embeddings do not come from a stage-1 run, "
                              "so they cannot be computed for another catalogue")
        stage1, _ = load_trained_run(stage1_run, source_data.dataset, "model.stage1.run")
        fmt = stage1.config.text_format
        texts = (item_texts(target_data.dataset, fmt) if fmt
                 else default_item_text(target_data.dataset))
        table = stage1.text_table(texts)
    model.retarget(target_data.dataset, table)
    return model.eval(), target_data
