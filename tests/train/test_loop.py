from __future__ import annotations

import json

import pytest

from recadapt.errors import RecAdaptError
from recadapt.train.loop import train_run, warmup_linear


def test_short_sasrec_run_beats_popularity(make_config, tmp_path):
    popularity = train_run(make_config(model={"name": "popularity"}), tmp_path / "pop",
                           progress=False)
    sasrec = train_run(make_config(), tmp_path / "sasrec", progress=False)
    pop_hr, sas_hr = popularity.metrics["test"]["HR@5"], sasrec.metrics["test"]["HR@5"]
    # cyclic data: the next item is a function of the last one; popularity is near-uniform
    assert pop_hr < 0.4
    assert sas_hr > 0.8
    assert sas_hr > pop_hr + 0.4


def test_gradient_accumulation_trains(make_config, tmp_path):
    result = train_run(make_config(train={"batch_size": 16, "grad_accum_steps": 2}),
                       tmp_path / "accum", progress=False)
    assert result.metrics["test"]["HR@5"] > 0.8


def test_gru4rec_learns_the_cycle_too(make_config, tmp_path):
    result = train_run(make_config(model={"name": "gru4rec", "hidden_size": 32}, train={
        "lr": 0.01}), tmp_path / "gru", progress=False)
    assert result.metrics["test"]["HR@5"] > 0.8


def test_run_directory_holds_config_metrics_and_efficiency(make_config, tmp_path):
    run_dir = tmp_path / "run"
    train_run(make_config(train={"epochs": 2}), run_dir, progress=False)
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.yaml", "metrics.json", "efficiency.json", "history.json", "model.safetensors",
            "ranks.json", "checkpoints"} <= names
    assert not [p for p in run_dir.rglob("*.tmp")]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["test"]) == {"HR@5", "NDCG@5", "HR@10", "NDCG@10"}
    assert metrics["protocol"] == "full"
    efficiency = json.loads((run_dir / "efficiency.json").read_text())
    assert efficiency["trainable_params"] == efficiency["total_params"] > 0
    assert efficiency["seconds_per_epoch"] > 0 and efficiency["peak_memory_mb"] > 0
    assert len(json.loads((run_dir / "history.json").read_text())) == 2


def test_runs_of_different_precisions_follow_each_other_in_one_process(make_config, tmp_path):
    """A benchmark trains fp32 ID rows then a bf16 LLM row in one process: accelerate's
    process-wide state used to refuse the second precision."""
    from accelerate.state import AcceleratorState

    train_run(make_config(train={"epochs": 1}), tmp_path / "fp32", progress=False)
    train_run(make_config(train={"epochs": 1, "mixed_precision": "bf16"}), tmp_path / "bf16",
              progress=False)
    assert AcceleratorState().mixed_precision == "bf16"
    train_run(make_config(train={"epochs": 1}), tmp_path / "again", progress=False)
    assert AcceleratorState().mixed_precision == "no"


def test_existing_run_is_not_overwritten(make_config, tmp_path):
    run_dir = tmp_path / "run"
    train_run(make_config(train={"epochs": 1}), run_dir, progress=False)
    before = (run_dir / "metrics.json").read_text()
    with pytest.raises(RecAdaptError, match="already holds a run"):
        train_run(make_config(train={"epochs": 1}), run_dir, progress=False)
    assert (run_dir / "metrics.json").read_text() == before


def test_resume_gives_the_same_result_as_an_uninterrupted_run(make_config, tmp_path,
                                                             stopped_and_resumed):
    # dropout on and BCE negatives drawn from the RNG: resume must restore RNG state too
    config = make_config(train={"epochs": 4, "warmup_steps": 3, "schedule": "linear"},
                         model={"name": "sasrec", "hidden_size": 16, "loss": "bce"})
    stopped_and_resumed(config, tmp_path, stop_after=2)


def test_resume_refuses_a_changed_config(make_config, tmp_path):
    run_dir = tmp_path / "run"
    train_run(make_config(train={"epochs": 1}), run_dir, progress=False)
    with pytest.raises(RecAdaptError, match="differs"):
        train_run(make_config(train={"epochs": 1, "lr": 0.1}), run_dir, resume=True,
                  progress=False)
    with pytest.raises(RecAdaptError, match="nothing to resume"):
        train_run(make_config(), tmp_path / "empty", resume=True, progress=False)


def test_warmup_then_linear_decay():
    factor = warmup_linear(warmup=2, total=6, decay=True)
    assert [factor(s) for s in range(7)] == [0.5, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0]
    assert warmup_linear(0, 10, decay=False)(9) == 1.0


@pytest.mark.parametrize(("loss", "epochs"), [("bce", 40), ("debiased_ce", 20)])
def test_other_losses_learn_the_cycle(make_config, tmp_path, loss, epochs):
    # BCE sees one negative per position, so it needs more epochs than the softmax losses
    result = train_run(make_config(model={"name": "sasrec", "hidden_size": 32, "loss": loss},
                                   train={"epochs": epochs}), tmp_path / loss, progress=False)
    assert result.metrics["test"]["HR@5"] > 0.8


def test_time_budget_stops_mid_epoch_and_still_evaluates(make_config, tmp_path, monkeypatch):
    import recadapt.train.loop as loop

    clock = {"now": 0.0}

    def fake_clock() -> float:  # each call advances a minute: the budget runs out in epoch 1
        clock["now"] += 60.0
        return clock["now"]

    monkeypatch.setattr(loop.time, "perf_counter", fake_clock)
    config = make_config(train={"epochs": 5, "batch_size": 4, "time_budget_minutes": 3})
    result = train_run(config, tmp_path / "run", progress=False)
    assert result.efficiency["stopped"] == "time_budget"
    assert len(result.history) == 1 and 0 < result.history[0]["steps"] < 15
    assert "valid" in result.history[0] and result.metrics["test"]["HR@10"] >= 0
    full = train_run(make_config(train={"epochs": 1}), tmp_path / "full", progress=False)
    assert full.efficiency["stopped"] == "max_epochs"


# ----------------------------------------------------------------------------- prerequisite runs


@pytest.fixture
def needs_run(monkeypatch):
    """A model registered for one test: SASRec that needs a run trained first (``warm``),
    as A-LLMRec needs its frozen CF model and stage 1."""
    from needs_run import ENTRY, NeedsRun

    from recadapt.models import registry

    registry.model_names()  # the built-ins first, so this one is only added
    monkeypatch.setitem(registry._MODELS, NeedsRun.name, ENTRY)
    return NeedsRun


def needs_config(make_config, **model):
    return make_config(model={"name": "test-needs-run", "hidden_size": 16, **model},
                       train={"epochs": 1, "seed": 3})


def test_prerequisite_is_trained_into_stages_and_its_folder_filled_in(make_config, tmp_path,
                                                                      needs_run):
    import yaml

    from recadapt.train.runs import read_run_config

    config = needs_config(make_config)
    result = train_run(config, tmp_path / "run", progress=False)
    stage = tmp_path / "run" / "stages" / "warm"
    assert {"model.safetensors", "metrics.json", "config.yaml"} <= {p.name for p in
                                                                    stage.iterdir()}
    stored = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert stored["model"]["warm"]["run"] == str(stage.resolve())
    sub = read_run_config(stage)
    assert sub.model["name"] == "sasrec" and sub.model["hidden_size"] == 8
    assert (sub.train.epochs, sub.train.batch_size) == (1, 64)  # its own settings
    assert (sub.train.seed, sub.train.num_threads) == (3, 1)  # inherited from the run
    assert sub.data == config.data and sub.eval == config.eval
    assert len(json.loads((stage / "history.json").read_text())) == 1
    assert result.metrics["test"]["HR@5"] >= 0
    # a finished prerequisite is reused: resuming the finished run trains nothing again
    stamp = (stage / "model.safetensors").stat().st_mtime_ns
    again = train_run(config, tmp_path / "run", resume=True, progress=False)
    assert (stage / "model.safetensors").stat().st_mtime_ns == stamp
    assert again.metrics == result.metrics
    # a given run is used as is: no stages folder
    given = needs_config(make_config, warm={"run": str(stage)})
    assert loop_plan(given, tmp_path / "other") == (given, [])
    train_run(given, tmp_path / "other", progress=False)
    assert not (tmp_path / "other" / "stages").exists()


def loop_plan(config, run_dir):
    from recadapt.train.stages import plan_stages

    return plan_stages(config, run_dir)


def test_a_finished_prerequisite_of_another_config_is_refused(make_config, tmp_path, needs_run):
    config = needs_config(make_config)
    _, [stage] = loop_plan(config, tmp_path / "run")
    other = needs_config(make_config, warm={"model": {"name": "sasrec", "hidden_size": 12}})
    _, [other_stage] = loop_plan(other, tmp_path / "run")
    assert other_stage.run_dir == stage.run_dir
    train_run(other_stage.config, other_stage.run_dir, progress=False)
    with pytest.raises(RecAdaptError, match="holds a finished warm run of another config"):
        train_run(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_an_interrupted_prerequisite_is_resumed(make_config, tmp_path, needs_run):
    config = needs_config(make_config, warm={"train": {"epochs": 2, "batch_size": 64}})
    _, [stage] = loop_plan(config, tmp_path / "run")
    assert stage.config.train.epochs == 2

    def interrupt(epoch: int, record: dict) -> None:
        raise KeyboardInterrupt

    # the prerequisite stopped after its first epoch (a checkpoint, no metrics.json)
    with pytest.raises(KeyboardInterrupt):
        train_run(stage.config, stage.run_dir, progress=False, on_epoch_end=interrupt)
    first = json.loads((stage.run_dir / "history.json").read_text())
    assert len(first) == 1 and not (stage.run_dir / "metrics.json").exists()
    train_run(config, tmp_path / "run", progress=False)
    assert (stage.run_dir / "metrics.json").is_file()
    history = json.loads((stage.run_dir / "history.json").read_text())
    assert len(history) == 2
    assert history[0] == first[0]  # resumed (a restart would have timed epoch 1 anew)
