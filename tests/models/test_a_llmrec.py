"""A-LLMRec on tiny data with the packaged SmolLM2-135M and MiniLM: stage-1 losses against a
direct computation, which modules train in each stage, the soft prompt's slots, candidate
lists, generated-title mapping, the key/value-cache scoring path, and end-to-end runs with
their prerequisite runs.

One end-to-end ``a-llmrec`` run (module fixture ``trained``) trains the frozen SASRec and
stage 1 as its prerequisites; the other tests reuse those two runs as ``model.cf.run`` and
``model.stage1.run``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from recadapt.config import RunConfig, validate_config
from recadapt.data.batching import WindowDataset, collate_windows, eval_batches, train_windows
from recadapt.errors import ConfigError, RecAdaptError
from recadapt.models.base import Recommender
from recadapt.models.registry import build_model
from recadapt.train import loop
from recadapt.train.checkpoint import load_model_weights
from recadapt.train.loop import RunResult, train_run
from recadapt.train.runs import prepare_data
from recadapt.train.stages import build_with_stages

WORDS = ["Apple", "River", "Garden", "Candle", "Forest", "Violin", "Harbor", "Meadow",
         "Copper", "Silver", "Tiger", "Lemon"]
NUM_USERS, LENGTH, MAX_LEN = 14, 7, 6


def write_data(folder: Path) -> Path:
    """Users walk the item cycle from random starts (``LENGTH`` items each); every item has a
    one-word title plus "Story" and a genre."""
    rng = np.random.default_rng(0)
    rows = ["user_id,item_id,timestamp"]
    for user in range(NUM_USERS):
        start = int(rng.integers(len(WORDS)))
        for step in range(LENGTH):
            rows.append(f"u{user},i{(start + step) % len(WORDS)},{step * 100 + user}")
    (folder / "inter.csv").write_text("\n".join(rows) + "\n")
    items = ["item_id,title,genre"] + [f"i{k},{w} Story,{'drama' if k % 2 else 'comedy'}"
                                       for k, w in enumerate(WORDS)]
    (folder / "items.csv").write_text("\n".join(items) + "\n")
    return folder


def make_config(folder: Path, model: dict, train: dict | None = None,
                eval: dict | None = None) -> RunConfig:
    return validate_config({
        "data": {"source": str(folder / "inter.csv"), "item_path": str(folder / "items.csv"),
                 "title_field": "title", "max_seq_len": MAX_LEN},
        "model": model,
        "train": {"epochs": 1, "batch_size": 4, "lr": 1e-3, "monitor": "sampled_HR@1",
                  "num_threads": 1, "seed": 0, **(train or {})},
        "eval": {"protocol": "sampled", "num_negatives": 4, "ks": [1, 3], "max_users": 3,
                 **(eval or {})},
    })


STAGE2 = {"history_len": 3, "train_negatives": 3, "max_new_tokens": 8, "eval_batch_size": 2}
ALLMREC = {"name": "a-llmrec", **STAGE2,
           "cf": {"model": {"name": "sasrec", "hidden_size": 16, "num_layers": 1},
                  "train": {"epochs": 2, "batch_size": 16, "lr": 0.01}},
           "stage1": {"model": {"latent_dim": 16, "text_max_length": 16},
                      "train": {"epochs": 1, "batch_size": 16, "lr": 1e-3}}}


@dataclass
class Trained:
    data: Path
    run_dir: Path
    result: RunResult
    built: dict[str, Recommender]  # the model objects train_run trained, by model name

    @property
    def stage1_run(self) -> Path:
        return self.run_dir / "stages" / "stage1"

    @property
    def cf_run(self) -> Path:
        return self.stage1_run / "stages" / "cf"

    def config(self, model: dict, **sections: dict) -> RunConfig:
        return make_config(self.data, model, **sections)


def capturing(built: dict[str, Recommender]):
    real = loop.build_with_stages

    def build(config: RunConfig, dataset):
        model = real(config, dataset)
        built[str(config.model["name"])] = model
        return model

    return build


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Trained:
    """One end-to-end a-llmrec run: SASRec, then stage 1, then stage 2, all by train_run."""
    data = write_data(tmp_path_factory.mktemp("allmrec_data"))
    run_dir = tmp_path_factory.mktemp("allmrec") / "run"
    built: dict[str, Recommender] = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop, "build_with_stages", capturing(built))
        result = train_run(make_config(data, ALLMREC), run_dir, progress=False)
    return Trained(data, run_dir, result, built)


@pytest.fixture(scope="module")
def stage2(trained):
    """A freshly built a-llmrec (stage-1 run of the fixture) and its prepared data."""
    config = trained.config({"name": "a-llmrec", **STAGE2,
                             "stage1": {"run": str(trained.stage1_run)}})
    prepared = prepare_data(config)
    torch.manual_seed(0)
    model = build_with_stages(config, prepared.dataset)
    model.fit_statistics(torch.from_numpy(prepared.split.item_counts()).float())
    return model.eval(), prepared


def training_batch(prepared, users: int | None = None) -> dict[str, torch.Tensor]:
    """Each user's last training window (windows_per_user 1), as the loop collates them."""
    windows = WindowDataset(train_windows(prepared.split.train, MAX_LEN, 1))
    count = len(windows) if users is None else users
    return collate_windows([windows[i] for i in range(count)])


def grads(module: torch.nn.Module) -> dict[str, torch.Tensor | None]:
    return {name: p.grad for name, p in module.named_parameters()}


def clear_grads(*modules: torch.nn.Module) -> None:
    for module in modules:
        for param in module.parameters():
            param.grad = None


# ----------------------------------------------------------------------------- stage 1


def build_stage1(trained: Trained, **settings):
    config = trained.config({"name": "a-llmrec-stage1", "cf": {"run": str(trained.cf_run)},
                             "latent_dim": 16, "text_max_length": 16, **settings})
    prepared = prepare_data(config)
    return build_with_stages(config, prepared.dataset), prepared


def trained_stage1(run_dir: Path, dataset):
    """The stage-1 model of a finished run, with its saved weights."""
    from recadapt.train.runs import read_run_config

    model = build_with_stages(read_run_config(run_dir), dataset)
    load_model_weights(model, run_dir / "model.safetensors")
    return model.eval()


def direct_q(model, items: torch.Tensor) -> torch.Tensor:
    """MiniLM's mean-pooled last layer, one text at a time (no padding involved)."""
    encoder = model.text_encoder
    rows = []
    for item in items.tolist():
        inputs = encoder.tokenizer(model.texts[item], max_length=16, truncation=True,
                                   return_tensors="pt")
        hidden = encoder.backbone()(**inputs).last_hidden_state[0]
        rows.append(hidden.mean(0))
    return torch.stack(rows)


OLD_STAGE1 = {"init": "default", "rec_score": "sum", "mse_weighting": "average",
              "detach_text_target": False}  # recadapt's stage 1 before the settings existed


@pytest.mark.parametrize("settings", [{}, OLD_STAGE1], ids=["authors", "old"])
def test_stage1_losses_match_a_direct_computation(trained, settings):
    model, prepared = build_stage1(trained, **settings)
    authors = not settings
    model.eval()  # no dropout in the sentence encoder, so both passes see the same Q
    dataset = prepared.dataset
    assert model.texts[1] == (f"Title: {dataset.item_features['title'].iloc[1]}, "
                              f"Description: {dataset.item_features['genre'].iloc[1]}")
    batch = training_batch(prepared)
    torch.manual_seed(3)
    parts = model.losses(batch)

    positives = batch["target"][:, -1]
    torch.manual_seed(3)  # the same draw: one uniform negative per positive, never itself
    n = dataset.num_items
    negatives = (positives - 1 + torch.randint(1, n, positives.shape)) % n + 1
    assert (negatives != positives).all() and negatives.min() >= 1 and negatives.max() <= n
    items = torch.cat([positives, negatives])
    assert len(torch.unique(items)) < len(items)  # repeated items: each occurrence counts
    with torch.no_grad():
        E = model.cf.item_embeddings()[items]
        Q = direct_q(model, items)
        e, q = model.item_encoder(E), model.text_encoder_mlp(Q)
        x = model.cf.user_embeddings(batch)
        decoded = model.item_decoder(e)
        m = len(positives)

        def mse(a, b):  # the authors: positives' MSE + negatives' MSE; old: one mean
            if authors:
                return ((a[:m] - b[:m]) ** 2).mean() + ((a[m:] - b[m:]) ** 2).mean()
            return ((a - b) ** 2).mean()

        matching = mse(e, q)
        item_recon = mse(E, decoded)
        text_recon = mse(Q, model.text_decoder(q))
        dot = (x * decoded[:m]).sum(-1), (x * decoded[m:]).sum(-1)
        # the authors' score is the mean over the d dimensions, the old one the dot product
        pos_logit, neg_logit = (v / x.shape[1] for v in dot) if authors else dot
        rec = (-torch.log(torch.sigmoid(pos_logit)).mean()
               - torch.log(1 - torch.sigmoid(neg_logit)).mean())
    for name, value in [("matching", matching), ("item_recon", item_recon),
                        ("text_recon", text_recon), ("rec", rec)]:
        got = getattr(parts, name)
        assert got.item() == pytest.approx(value.item(), abs=1e-5), name
        assert got.item() > 1e-4, name  # a real value, not a vanishing term

    alpha, beta = model.config.alpha, model.config.beta
    torch.manual_seed(3)
    total = model.loss(batch).item()
    assert total == pytest.approx((matching + alpha * item_recon + beta * text_recon + rec).item(),
                                  abs=1e-5)
    for switch, dropped in [("matching", matching), ("reconstruction",
                                                     alpha * item_recon + beta * text_recon),
                            ("rec_loss", rec)]:
        model.config = model.config.model_copy(update={switch: False})
        torch.manual_seed(3)
        assert model.loss(batch).item() == pytest.approx(total - dropped.item(), abs=1e-5), switch
        model.config = model.config.model_copy(update={switch: True})


def test_xavier_normal_init_has_its_std_and_default_init_differs():
    from recadapt.models.a_llmrec import projection
    from recadapt.models.a_llmrec_stage1 import init_linears

    torch.manual_seed(0)
    fan_in, fan_out = 300, 500
    xavier = init_linears(torch.nn.Linear(fan_in, fan_out), "xavier_normal").weight
    default = init_linears(torch.nn.Linear(fan_in, fan_out), "default").weight
    assert xavier.std().item() == pytest.approx((2 / (fan_in + fan_out)) ** 0.5, rel=0.02)
    # PyTorch's default: uniform(±1/sqrt(fan_in)), std 1/sqrt(3 fan_in)
    assert default.std().item() == pytest.approx((1 / (3 * fan_in)) ** 0.5, rel=0.02)
    assert default.abs().max().item() <= fan_in ** -0.5
    assert (xavier.abs() > fan_in ** -0.5).sum() > 1000  # normal tails, not a bounded uniform
    for init, std in [("xavier_normal", lambda i, o: (2 / (i + o)) ** 0.5),
                      ("default", lambda i, o: (1 / (3 * i)) ** 0.5)]:
        mlp = projection(64, 576, "gelu", init)
        for layer in (mlp[0], mlp[3]):
            i, o = layer.in_features, layer.out_features
            assert layer.weight.std().item() == pytest.approx(std(i, o), rel=0.05), init
        assert torch.equal(mlp[1].weight, torch.ones(576))  # the LayerNorm keeps its init


@pytest.mark.parametrize("init", ["xavier_normal", "default"])
def test_stage1_autoencoders_use_the_configured_init(trained, init):
    model, _ = build_stage1(trained, init=init)
    assert model.config.init == init
    for layer in (model.text_encoder_mlp[0], model.text_decoder):  # 384 <-> 16: wide enough
        i, o = layer.in_features, layer.out_features
        want = (2 / (i + o)) ** 0.5 if init == "xavier_normal" else (1 / (3 * i)) ** 0.5
        assert layer.weight.std().item() == pytest.approx(want, rel=0.1), (init, i, o)


def test_rec_score_mean_and_sum_differ_by_the_dimension():
    from recadapt.models.a_llmrec_stage1 import rec_score

    users = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 0.0, 2.0]])
    items = torch.tensor([[2.0, 0.0, 1.0, 1.0], [4.0, 1.0, 7.0, 0.5]])
    summed, mean = rec_score(users, items, "sum"), rec_score(users, items, "mean")
    assert summed.tolist() == [9.0, 2.0]  # 2 + 0 + 3 + 4; 2 - 1 + 0 + 1
    assert mean.tolist() == [2.25, 0.5]
    assert torch.equal(summed, mean * users.shape[1])


def test_mse_weighting_sums_the_positive_and_negative_terms():
    from recadapt.models.a_llmrec_stage1 import paired_mse

    output = torch.tensor([[1.0, 2.0], [3.0, 5.0]])  # row 0 the positive, row 1 its negative
    target = torch.zeros(2, 2)
    # positives: (1 + 4) / 2 = 2.5; negatives: (9 + 25) / 2 = 17
    assert paired_mse(output, target, 1, "sum").item() == 19.5
    assert paired_mse(output, target, 1, "average").item() == 9.75  # (1 + 4 + 9 + 25) / 4
    four = torch.tensor([[1.0], [3.0], [2.0], [0.0]])
    # two positives (1, 9 → 5) and two negatives (4, 0 → 2)
    assert paired_mse(four, torch.zeros(4, 1), 2, "sum").item() == 7.0
    assert paired_mse(four, torch.zeros(4, 1), 2, "average").item() == 3.5


@pytest.mark.parametrize("weighting", ["sum", "average"])
def test_detached_text_target_takes_the_target_path_out_of_the_gradient(trained, weighting):
    """d text_recon / dQ with the target detached is the decoder path alone; without, the
    target adds -2 (f_T^dec(f_T^enc(Q)) - Q) / N (N: the elements each MSE averages)."""
    model, _ = build_stage1(trained, mse_weighting=weighting)
    torch.manual_seed(0)
    n, d = 3, model.text_decoder.out_features
    users = torch.randn(n, model.cf_dim)
    cf_vectors = torch.randn(2 * n, model.cf_dim)
    base = torch.randn(2 * n, d)
    got = {}
    for detach in (True, False):
        model.config = model.config.model_copy(update={"detach_text_target": detach})
        Q = base.clone().requires_grad_(True)
        model.loss_terms(users, cf_vectors, Q, n).text_recon.backward()
        got[detach] = Q.grad
    with torch.no_grad():
        out = model.text_decoder(model.text_encoder_mlp(base))
    count = n * d if weighting == "sum" else 2 * n * d
    through_target = -2 * (out - base) / count
    assert through_target.abs().max() > 1e-4
    assert torch.allclose(got[False] - got[True], through_target, atol=1e-7)


def test_detached_text_target_gives_the_sentence_encoder_no_gradient_through_it(trained):
    """With f_T^dec's weight zero the reconstruction does not depend on Q except through its
    target: detached, L_text-recon sends the fine-tuned sentence encoder nothing."""
    model, prepared = build_stage1(trained)
    assert model.config.detach_text_target  # the authors' default
    model.eval()  # no dropout: the same Q for both passes
    batch = training_batch(prepared)
    with torch.no_grad():
        model.text_decoder.weight.zero_()
    for detach in (True, False):
        model.config = model.config.model_copy(update={"detach_text_target": detach})
        clear_grads(model)
        torch.manual_seed(3)
        model.losses(batch).text_recon.backward()
        encoder = [g for g in grads(model.text_encoder).values() if g is not None]
        assert model.text_decoder.bias.grad.abs().sum() > 0  # the decoder still learns
        if detach:
            assert all(g.abs().sum() == 0 for g in encoder)
        else:
            assert encoder and any(g.abs().sum() > 0 for g in encoder)
    clear_grads(model)


def test_stage1_trains_its_autoencoders_and_the_sentence_encoder_only(trained):
    model, prepared = build_stage1(trained)
    model.train()
    assert not model.cf.training  # the frozen model stays in eval mode (no dropout)
    model.loss(training_batch(prepared)).backward()
    for part in (model.item_encoder, model.item_decoder, model.text_encoder_mlp,
                 model.text_decoder):
        for name, grad in grads(part).items():
            assert grad is not None and grad.abs().sum() > 0, name
    encoder_grads = grads(model.text_encoder)
    assert any(g is not None and g.abs().sum() > 0 for g in encoder_grads.values())
    assert all(g is None for g in grads(model.cf).values())

    frozen, prepared = build_stage1(trained, finetune_text=False)
    frozen.train()
    assert not frozen.text_encoder.training
    frozen.loss(training_batch(prepared)).backward()
    assert all(g is None for g in grads(frozen.text_encoder).values())
    assert all(g is None for g in grads(frozen.cf).values())
    assert frozen.item_encoder[0].weight.grad is not None


# ----------------------------------------------------------------------------- stage 2


def test_stage2_projections_use_the_authors_activations_and_init(stage2):
    model, _ = stage2
    assert model.config.f_i_activation == "gelu" and model.config.init == "xavier_normal"
    assert isinstance(model.user_proj[2], torch.nn.LeakyReLU)  # F_U
    assert isinstance(model.item_proj[2], torch.nn.GELU)  # F_I
    for layer in (model.user_proj[0], model.user_proj[3], model.item_proj[0],
                  model.item_proj[3]):
        i, o = layer.in_features, layer.out_features
        assert layer.weight.std().item() == pytest.approx((2 / (i + o)) ** 0.5, rel=0.1)


def test_stage2_trains_the_projections_only(stage2):
    model, prepared = stage2
    model.train()
    try:
        assert not model.llm.training and not model.cf.training
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert trainable and all(n.startswith(("user_proj.", "item_proj.")) for n in trainable)
        torch.manual_seed(0)
        model.loss(training_batch(prepared, users=2)).backward()
        for part in (model.user_proj, model.item_proj):
            for name, grad in grads(part).items():
                assert grad is not None and grad.abs().sum() > 0, name
        assert all(g is None for g in grads(model.cf).values())
        assert all(g is None for g in grads(model.llm).values())
    finally:
        clear_grads(model)
        model.eval()


def test_tallrec_list_trains_lora_only(trained):
    config = trained.config({"name": "tallrec-list", **STAGE2})
    prepared = prepare_data(config)
    model = build_model(config, prepared.dataset)
    assert model.user_proj is None and model.item_proj is None
    layout = model.prompts.layout([1, 2], [3, 4])
    assert layout.user_slot is None and layout.item_slots == []  # the Figure 5 prompt
    model.train()
    torch.manual_seed(0)
    model.loss(training_batch(prepared, users=2)).backward()
    lora = {n: g for n, g in grads(model).items() if "lora_" in n}
    assert lora and any(g is not None and g.abs().sum() > 0 for g in lora.values())
    assert all(g is None for n, g in grads(model).items() if "lora_" not in n)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(lora)


def test_cf_model_and_llm_are_unchanged_by_training(trained):
    from recadapt.encoders.llm import load_causal_lm

    stage1, stage2_model = trained.built["a-llmrec-stage1"], trained.built["a-llmrec"]
    cf_weights = load_file(trained.cf_run / "model.safetensors")
    for model in (stage1, stage2_model):
        state = model.cf.state_dict()
        assert state.keys() == cf_weights.keys()
        for name, value in state.items():
            assert torch.equal(value, cf_weights[name]), name
    # the stage-2 weights leave the frozen CF model out but record it unchanged, and hold no
    # LLM weight
    from recadapt.train.checkpoint import frozen_fingerprints, read_model_weights

    state, frozen = read_model_weights(trained.run_dir / "model.safetensors")
    saved = set(state)
    cf_params = {name for name, _ in stage2_model.cf.named_parameters()}
    assert cf_params and {f"cf.{name}" for name in cf_params} <= set(frozen)
    assert frozen == frozen_fingerprints(stage2_model)
    assert not saved & set(frozen)
    assert {n.split(".")[0] for n in saved} <= {"cf", "user_proj", "item_proj"}
    assert {n.split(".")[0] for n in saved} >= {"user_proj", "item_proj"}
    fresh, _ = load_causal_lm("smollm2-135m")
    fresh_state = fresh.state_dict()
    trained_state = stage2_model.llm.state_dict()
    assert trained_state.keys() == fresh_state.keys() and len(fresh_state) > 100
    for name, value in fresh_state.items():
        assert torch.equal(trained_state[name], value), name
    # the projections did train
    history = trained.result.history
    assert history and history[0]["steps"] > 0


# ----------------------------------------------------------------------------- the prompt


def test_soft_prompt_puts_projections_at_the_marked_positions(stage2):
    model, prepared = stage2
    history, candidates = [3, 1, 7], [5, 2, 9, 11]
    layout = model.prompts.layout(history, candidates)
    batch = {"history": torch.tensor([history]), "user": torch.tensor([0])}
    with torch.no_grad():
        x = model.cf.user_embeddings(batch).float()
        users = model.user_proj(x)
        embeds, mask = model.embed([layout], users)
        tokens = model.llm.get_input_embeddings()(torch.tensor(layout.ids))
    assert embeds.shape == (1, len(layout.ids), tokens.shape[1]) and mask.sum() == len(layout.ids)
    assert [item for _, item in layout.item_slots] == history + candidates
    assert layout.shown == candidates
    replaced = {layout.user_slot} | {pos for pos, _ in layout.item_slots}
    assert len(replaced) == 1 + len(history) + len(candidates)
    assert torch.allclose(embeds[0, layout.user_slot], users[0], atol=1e-6)
    for pos, item in layout.item_slots:
        expected = model.item_proj(model.item_table[item])
        assert torch.allclose(embeds[0, pos], expected, atol=1e-6), (pos, item)
        assert not torch.allclose(embeds[0, pos], tokens[pos], atol=1e-3)
    kept = [i for i in range(len(layout.ids)) if i not in replaced]
    assert torch.equal(embeds[0, kept], tokens[kept])
    # each item's slot directly follows its title; the user slot starts the prompt
    tokenizer, titles = model.tokenizer, model.prompts.titles
    for pos, item in layout.item_slots:
        before = tokenizer.decode(layout.ids[:pos])
        assert before.endswith(f'"{titles[item]}"'), (before[-40:], titles[item])
    assert layout.user_slot == len(model.prompts.prefix)
    # the item vectors are the stage-1 joint embeddings e = f_I(E)
    e, _ = trained_stage1(Path(model.config.stage1.run), prepared.dataset).joint_tables()
    assert torch.allclose(model.item_table, e, atol=1e-6)


def test_the_figure_3_prompt_reads_as_text(stage2):
    model, _ = stage2
    titles = model.prompts.titles
    layout = model.prompts.layout([1, 2], [3, 4])
    slots = {layout.user_slot} | {pos for pos, _ in layout.item_slots}
    text = model.tokenizer.decode([t for i, t in enumerate(layout.ids) if i not in slots])
    assert text == (f' is a user representation.This user has watched "{titles[1]}","'
                    f'{titles[2]}" in the previous. Recommend one next movie for this user to '
                    f'watch next from the following movie title set, "{titles[3]}","'
                    f'{titles[4]}". The recommendation is')
    answer = model.prompts.answer(3)
    assert answer[-1] == model.tokenizer.eos_token_id
    # the prompt's trailing space opens the answer (' "' is one BPE token)
    assert model.tokenizer.decode(answer[:-1]) == f' "{titles[3]}"'
    assert model.tokenizer.convert_ids_to_tokens(answer[0]) == 'Ġ"'


def test_item_embedding_variants_read_the_stage1_tables(trained):
    def build(how: str):
        config = trained.config({"name": "a-llmrec", **STAGE2, "item_embedding": how,
                                 "stage1": {**ALLMREC["stage1"],  # d' = 16
                                            "run": str(trained.stage1_run)},
                                 "cf": {"run": str(trained.cf_run)}})  # random: no stage 1
        return build_with_stages(config, prepare_data(config).dataset)

    data = prepare_data(trained.config({"name": "llm-only"}))
    e, q = trained_stage1(trained.stage1_run, data.dataset).joint_tables()
    assert not torch.allclose(e, q, atol=1e-3)
    text = build("text")  # A-LLMRec (SBERT): q = f_T(Q) for every item
    assert torch.allclose(text.item_table, q, atol=1e-5)
    auto = build("auto")  # e for items seen in training, q for the others
    counts = torch.ones(data.dataset.num_items + 1)
    counts[[2, 5]] = 0
    auto.fit_statistics(counts)
    for item in range(1, data.dataset.num_items + 1):
        expected = q[item] if item in (2, 5) else e[item]
        assert torch.allclose(auto.item_table[item], expected, atol=1e-5), item
    random = build("random")  # Table 7 row 4: fixed vectors, not the learned ones
    assert random.item_table.shape == e.shape  # as wide as the joint space
    assert random.item_table.min() >= 0 and random.item_table.max() <= 1
    assert not torch.allclose(random.item_table, e, atol=1e-2)
    assert torch.equal(random.item_table, build("random").item_table)


# ----------------------------------------------------------------------------- candidates


def test_the_profile_probe_asks_the_templates_question(stage2, tmp_path, monkeypatch):
    """5.4.4's free-text probe asks MovieLens users' genres, a shop's users' categories."""
    from recadapt.data.prompts import resolve_candidate_template

    model, prepared = stage2
    asked: list[str] = []
    monkeypatch.setattr(model, "describe_user",
                        lambda user, history, question: asked.append(question) or "Drama")
    for name, word in (("movies", "movie genres"), ("items", "product categories")):
        monkeypatch.setattr(model.prompts, "template", resolve_candidate_template(name))
        model.write_analysis(tmp_path, prepared.split)
        rows = json.loads((tmp_path / "generations.json").read_text())
        assert rows and all(word in row["question"] and row["favourite_genres"] == "Drama"
                            for row in rows)
        assert word in asked[-1]


def test_candidate_lists_hold_the_target_once_and_no_interacted_item(trained):
    from recadapt.eval.protocols import candidate_lists

    every_user = trained.config({"name": "llm-only"}, eval={"max_users": None})
    config, prepared = every_user.eval, prepare_data(every_user)
    sequences, split = prepared.dataset.sequences(), prepared.split
    assert len(split.test) == NUM_USERS
    lists = {}
    for batch_size in (3, 5):
        rows = []
        for batch, histories in eval_batches(split.test, MAX_LEN, batch_size):
            rows.append(candidate_lists(split.test, batch, histories,
                                        prepared.dataset.num_items, config, sequences))
        lists[batch_size] = torch.cat(rows)
    assert torch.equal(lists[3], lists[5])
    table = lists[3]
    assert table.shape == (len(split.test), 1 + config.num_negatives)
    for row, user, target in zip(table.tolist(), split.test.users, split.test.targets,
                                 strict=True):
        assert row[0] == target and row.count(target) == 1
        assert len(set(row)) == len(row)
        assert not set(row[1:]) & set(sequences[user].tolist())
        assert all(1 <= i <= prepared.dataset.num_items for i in row)
    # the negatives differ between users (seeded per user, not one shared list)
    assert len({tuple(sorted(r[1:])) for r in table.tolist()}) > 1


def test_training_candidates_hold_the_target_once_and_no_history_item(stage2):
    model, _ = stage2
    history, target = [2, 4, 6, 8, 10, 12, 1], 3
    torch.manual_seed(0)
    positions = set()
    for _ in range(30):
        shown = model._training_candidates(history[-3:], history, target)
        assert len(shown) == 1 + model.config.train_negatives
        assert shown.count(target) == 1 and len(set(shown)) == len(shown)
        assert not set(shown) & set(history)
        assert all(1 <= i <= model.num_items for i in shown)
        positions.add(shown.index(target))
    assert len(positions) > 1  # shuffled: the target is not always in the same place
    with pytest.raises(RecAdaptError, match="too few"):
        model._training_candidates([1], list(range(1, model.num_items - 1)), model.num_items)


# ----------------------------------------------------------------------------- scoring


def test_sum_scores_equal_a_full_forward_without_cache(trained, stage2):
    from recadapt.eval.protocols import candidate_lists

    model, prepared = stage2
    split, config = prepared.split, trained.config({"name": "llm-only"}).eval
    batch, histories = next(eval_batches(split.test, MAX_LEN, 2))
    candidates = candidate_lists(split.test, batch, histories, prepared.dataset.num_items,
                                 config, prepared.dataset.sequences())
    assert model.config.scoring == "sum"
    scores = model.score_candidates(batch, candidates)
    assert scores.shape == candidates.shape
    with torch.no_grad():
        users = model.user_proj(model.cf.user_embeddings(batch).float())
        for row in range(len(candidates)):
            items = candidates[row].tolist()
            shown = model._shown(int(batch["user"][row]), items)
            assert sorted(shown) == sorted(items)
            history = [i for i in batch["history"][row].tolist() if i][-3:]
            layout = model.prompts.layout(history, shown)
            for column, item in enumerate(items):
                answer = model.prompts.answer(item)
                embeds, mask = model.embed([layout], users[row:row + 1], [answer])
                logits = model.llm(inputs_embeds=embeds, attention_mask=mask,
                                   use_cache=False).logits[0].float()
                logp = torch.log_softmax(logits, -1)
                start = len(layout.ids) - 1
                expected = sum(logp[start + k, token].item() for k, token in enumerate(answer))
                assert scores[row, column].item() == pytest.approx(expected, abs=1e-3)
    assert len(set(scores[0].tolist())) == candidates.shape[1]
    # mean scoring: the same log-likelihood per answer token
    model.config = model.config.model_copy(update={"scoring": "mean"})
    try:
        means = model.score_candidates(batch, candidates)
    finally:
        model.config = model.config.model_copy(update={"scoring": "sum"})
    lengths = torch.tensor([[len(model.prompts.answer(i)) for i in row]
                            for row in candidates.tolist()])
    assert torch.allclose(means * lengths, scores, atol=1e-4)
    # a generated choice is one of the listed candidates, or 0 when no title matched
    chosen = model.generate_choices(batch, candidates)
    assert chosen.shape == (len(candidates),)
    for row, item in enumerate(chosen.tolist()):
        assert item == 0 or item in candidates[row].tolist()


# ----------------------------------------------------------------------------- end to end


def test_a_llmrec_trains_its_prerequisites_and_reuses_them(trained, monkeypatch):
    run_dir = trained.run_dir
    assert set(trained.built) == {"sasrec", "a-llmrec-stage1", "a-llmrec"}
    for folder in (trained.stage1_run, trained.cf_run):
        assert (folder / "model.safetensors").is_file() and (folder / "metrics.json").is_file()
    assert not (run_dir / "stages" / "cf").exists()  # stage 1 owns the frozen model
    config = (run_dir / "config.yaml").read_text()
    assert str(trained.stage1_run.resolve()) in config
    assert str(trained.cf_run.resolve()) in (trained.stage1_run / "config.yaml").read_text()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["protocol"] == "sampled"
    for key in ("sampled_HR@1", "sampled_NDCG@3", "sampled_generated_HR@1",
                "generated_unmatched"):
        assert 0 <= metrics["test"][key] <= 1, key
    assert "sampled_generated_HR@1" not in metrics["valid"]  # generated on the test part only
    efficiency = json.loads((run_dir / "efficiency.json").read_text())
    stage2_model = trained.built["a-llmrec"]
    projections = sum(p.numel() for p in stage2_model.user_proj.parameters()) + sum(
        p.numel() for p in stage2_model.item_proj.parameters())
    assert efficiency["trainable_params"] == projections
    assert efficiency["total_params"] > 100_000_000  # the frozen LLM is counted
    ranks = json.loads((run_dir / "ranks.json").read_text())
    assert len(ranks["ranks"]) == 3 and all(1 <= r <= 5 for r in ranks["ranks"])
    generations = json.loads((run_dir / "generations.json").read_text())
    assert generations and all(isinstance(g["favourite_genres"], str) for g in generations)

    stamps = {p: p.stat().st_mtime_ns for p in (trained.stage1_run / "model.safetensors",
                                                 trained.cf_run / "model.safetensors")}
    built: dict[str, Recommender] = {}
    monkeypatch.setattr(loop, "build_with_stages", capturing(built))
    again = train_run(trained.config(ALLMREC), run_dir, resume=True, progress=False)
    assert set(built) == {"a-llmrec"}  # neither prerequisite was trained again
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert again.metrics["test"]["sampled_HR@1"] == metrics["test"]["sampled_HR@1"]


def test_llm_only_evaluates_without_training(trained, tmp_path):
    result = train_run(trained.config({"name": "llm-only", **STAGE2}), tmp_path / "run",
                       progress=False)
    assert result.efficiency["trainable_params"] == 0 and result.history == []
    assert result.efficiency["stopped"] == "not_trained"
    assert not (tmp_path / "run" / "stages").exists()
    test = result.metrics["test"]
    assert {"sampled_HR@1", "sampled_generated_HR@1", "generated_unmatched"} <= set(test)


def test_mlp_llm_builds_on_the_raw_cf_embeddings(trained):
    from recadapt.models.a_llmrec import MLPLLM

    config = trained.config({"name": "mlp-llm", **STAGE2})
    _, stages = loop.plan_stages(config, Path("/nowhere"))
    assert [s.field for s in stages] == ["cf"]  # no stage 1
    assert stages[0].config.model["name"] == "sasrec"
    config = trained.config({"name": "mlp-llm", **STAGE2, "cf": {"run": str(trained.cf_run)}})
    assert loop.plan_stages(config, Path("/nowhere"))[1] == []
    model = build_with_stages(config, prepare_data(config).dataset)
    assert isinstance(model, MLPLLM)
    with torch.no_grad():
        raw = model.cf.item_embeddings().float()
    assert torch.equal(model.item_table, raw)
    assert model.user_proj[0].in_features == raw.shape[1] == 16
    layout = model.prompts.layout([1, 2], [3])
    assert layout.user_slot is not None and len(layout.item_slots) == 3
    # recadapt's projections before the settings existed: LeakyReLU in both, PyTorch's init
    old = trained.config({"name": "mlp-llm", **STAGE2, "cf": {"run": str(trained.cf_run)},
                          "f_i_activation": "leaky_relu", "init": "default"})
    model = build_with_stages(old, prepare_data(old).dataset)
    assert isinstance(model.item_proj[2], torch.nn.LeakyReLU)
    assert isinstance(model.user_proj[2], torch.nn.LeakyReLU)
    layer = model.item_proj[3]  # 576 x 576: default std 1/sqrt(3 * 576), Xavier's 1/sqrt(576)
    assert layer.weight.std().item() == pytest.approx((1 / (3 * 576)) ** 0.5, rel=0.1)


def test_runs_stored_before_the_fidelity_settings_reload_as_they_trained(trained, tmp_path):
    """A config.yaml written before a setting existed lacks its key: reading it back fills
    the value the run trained with, not the new default (so it neither reloads as another
    model nor compares equal to a config under the new defaults)."""
    import yaml

    from recadapt.train.runs import read_run_config

    for source, keys in [(trained.stage1_run, OLD_STAGE1),
                         (trained.run_dir, {"f_i_activation": "leaky_relu", "init": "default"})]:
        stored = yaml.safe_load((source / "config.yaml").read_text())
        assert {k: stored["model"][k] for k in keys} != keys  # this run: the new defaults
        assert read_run_config(source).model == stored["model"]
        for key in keys:
            del stored["model"][key]
        folder = tmp_path / source.name
        folder.mkdir()
        (folder / "config.yaml").write_text(yaml.safe_dump(stored))
        reread = read_run_config(folder).model
        assert {k: reread[k] for k in keys} == keys


def test_a_llmrec_plans_stage1_then_the_cf_model(trained):
    config = trained.config(ALLMREC)
    filled, stages = loop.plan_stages(config, Path("/runs/x"))
    assert [s.field for s in stages] == ["stage1"]
    stage1 = stages[0].config
    assert stage1.model["name"] == "a-llmrec-stage1" and stage1.model["latent_dim"] == 16
    assert stage1.train.epochs == 1 and stage1.train.num_threads == 1
    assert stage1.train.monitor == "sampled_HR@1"  # inherited from the run
    assert filled.model["stage1"]["run"] == str(Path("/runs/x/stages/stage1").resolve())
    _, inner = loop.plan_stages(stage1, stages[0].run_dir)
    assert [s.field for s in inner] == ["cf"]
    cf = inner[0].config.model
    assert (cf["name"], cf["hidden_size"], cf["num_layers"]) == ("sasrec", 16, 1)
    assert inner[0].config.train.epochs == 2
    # a given cf run goes to stage 1, which then trains no model of its own
    with_cf = trained.config({**ALLMREC, "cf": {**ALLMREC["cf"], "run": str(trained.cf_run)}})
    stage1 = loop.plan_stages(with_cf, Path("/runs/x"))[1][0].config
    assert stage1.model["cf"]["run"] == str(trained.cf_run)
    assert loop.plan_stages(stage1, Path("/runs/x/stages/stage1"))[1] == []


def test_config_errors_are_one_line_and_train_nothing(trained, tmp_path):
    full = trained.config(ALLMREC, eval={"protocol": "full"}, train={"monitor": "HR@1"})
    with pytest.raises(ConfigError, match=r"eval\.protocol") as err:
        train_run(full, tmp_path / "full", progress=False)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "full").exists()  # no prerequisite was trained first
    given = trained.config({"name": "a-llmrec", **STAGE2,
                            "stage1": {"run": str(trained.stage1_run)}},
                           eval={"protocol": "full"}, train={"monitor": "HR@1"})
    with pytest.raises(ConfigError, match="sampled"):
        build_model(given, prepare_data(given).dataset)

    nothing = trained.config({"name": "a-llmrec", **STAGE2, "user_token": False,
                              "item_embedding": "none", "lora": False})
    with pytest.raises(ConfigError, match="llm-only") as err:
        train_run(nothing, tmp_path / "nothing", progress=False)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "nothing").exists()
    with pytest.raises(ConfigError, match=r"model\.stage1\.run: give a trained run"):
        build_with_stages(trained.config({"name": "a-llmrec", **STAGE2}),
                          prepare_data(nothing).dataset)
    with pytest.raises(ConfigError, match=r"model\.stage1: a-llmrec builds on"):
        build_model(trained.config({"name": "a-llmrec", **STAGE2}),
                    prepare_data(nothing).dataset)


def test_stage2_ablations_take_the_cf_model_from_the_stage1_run(trained):
    """Table 7 rows 3-4 (no / random joint embedding) keep the user token: given only a
    stage-1 run they plan no new CF training and use that run's frozen model."""
    from recadapt.train.loop import plan_stages

    for how in ("random", "none"):
        config = trained.config({"name": "a-llmrec", **STAGE2, "item_embedding": how,
                                 "stage1": {**ALLMREC["stage1"],
                                            "run": str(trained.stage1_run)}})
        assert plan_stages(config, trained.stage1_run.parent / "unused")[1] == []
        model = build_with_stages(config, prepare_data(config).dataset)
        stage1_cf = trained_stage1(trained.stage1_run, prepare_data(config).dataset).cf
        for (name, a), (_, b) in zip(model.cf.state_dict().items(),
                                     stage1_cf.state_dict().items(), strict=True):
            assert torch.equal(a, b), name


def test_transfer_to_another_catalogue_lists_its_titles_with_text_embeddings(trained, tmp_path):
    """Cross-domain (5.2.5): the trained run re-pointed at a dataset of other items."""
    from recadapt.eval.protocols import evaluate_part
    from recadapt.models.a_llmrec_stage1 import default_item_text
    from recadapt.train.transfer import transfer

    other = ["Planet", "Comet", "Nebula", "Quasar", "Meteor", "Galaxy", "Orbit", "Rocket", "Moon"]
    rng = np.random.default_rng(3)
    rows = ["user_id,item_id,timestamp"]
    for user in range(8):
        for step, item in enumerate(rng.choice(len(other), size=5, replace=False)):
            rows.append(f"v{user},j{item},{step}")
    (tmp_path / "inter.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "items.csv").write_text("\n".join(
        ["item_id,title,genre"] + [f"j{k},{w} Tale,space" for k, w in enumerate(other)]) + "\n")
    target = make_config(tmp_path, {"name": "a-llmrec", **STAGE2})
    model, prepared = transfer(trained.run_dir, target)
    assert model.num_items == len(other)
    layout = model.prompts.layout([1, 2], [3, 4])
    text = model.tokenizer.decode(layout.ids)
    assert "Tale" in text and "Story" not in text  # the new catalogue's titles
    stage1 = trained_stage1(trained.stage1_run, prepare_data(trained.config(
        {"name": "llm-only"})).dataset)
    q = stage1.text_table(default_item_text(prepared.dataset))
    assert torch.allclose(model.item_table, q, atol=1e-5)
    users = model._users({"history": torch.tensor([[1, 2], [3, 4]]), "user": torch.tensor([0, 1])})
    assert torch.allclose(users[0], users[1])  # F_U(0): no source CF representation exists
    result = evaluate_part(model, prepared.split, "test", target.eval, MAX_LEN)
    assert 0.0 <= result.metrics["sampled_HR@1"] <= 1.0
    assert len(result.ranks) == min(3, len(prepared.split.test))
