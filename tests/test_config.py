from __future__ import annotations

import pytest

from recadapt.config import dump_config, load_config, parse_overrides, validate_config
from recadapt.errors import ConfigError
from recadapt.models.registry import resolve_model


def test_overrides_parse_nested_yaml_values():
    assert parse_overrides(["train.lr=0.01", "model.name=gru4rec", "eval.ks=[5, 10]"]) == {
        "train": {"lr": 0.01}, "model": {"name": "gru4rec"}, "eval": {"ks": [5, 10]},
    }


def test_mixed_precision_no_survives_yaml():
    """YAML 1.1 reads a bare `no` as false; the precision field still means 'no'."""
    raw = {"data": {"source": "x"}, **parse_overrides(["train.mixed_precision=no"])}
    assert raw["train"]["mixed_precision"] is False
    assert validate_config(raw).train.mixed_precision == "no"


def test_file_then_overrides_then_model_defaults(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  lr: 0.002\n  epochs: 3\nmodel:\n  name: sasrec\n")
    config = resolve_model(load_config(path, ["train.epochs=7", "model.num_layers=1"]))
    assert config.train.lr == 0.002
    assert config.train.epochs == 7
    assert config.model == {"name": "sasrec", "hidden_size": 64, "loss": "ce", "num_layers": 1,
                            "num_heads": 2, "dropout": 0.1, "inner_size": None}


def test_unknown_key_names_the_closest_valid_one():
    with pytest.raises(ConfigError, match=r"unknown key 'train.epoch'.*'train.epochs'"):
        validate_config({"train": {"epoch": 3}})
    with pytest.raises(ConfigError, match=r"unknown key 'model.hiden_size'.*'model.hidden_size'"):
        resolve_model(validate_config({"model": {"name": "sasrec", "hiden_size": 3}}))
    with pytest.raises(ConfigError, match=r"unknown key 'dta'.*'data'"):
        validate_config({"dta": {}})


def test_wrong_types_and_values_name_the_key():
    with pytest.raises(ConfigError, match=r"train.lr"):
        validate_config({"train": {"lr": "fast"}})
    with pytest.raises(ConfigError, match=r"model.dropout"):
        resolve_model(validate_config({"model": {"name": "sasrec", "dropout": 1.5}}))
    with pytest.raises(ConfigError, match=r"unknown model 'sasrek'.*'sasrec'"):
        resolve_model(validate_config({"model": {"name": "sasrek"}}))


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"key\.sub=value"):
        load_config(None, ["train.lr"])


def test_dumped_config_round_trips(tmp_path):
    config = resolve_model(validate_config({"model": {"name": "gru4rec"}, "train": {"epochs": 2}}))
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(config))
    assert resolve_model(load_config(path)) == config


def test_monitor_must_be_a_reported_metric():
    with pytest.raises(ConfigError, match=r"train.monitor.*'HR@5'"):
        validate_config({"eval": {"ks": [5]}})
    config = validate_config({"eval": {"ks": [5], "protocol": "sampled"},
                              "train": {"monitor": "sampled_NDCG@5"}})
    assert config.train.monitor == "sampled_NDCG@5"


def test_every_model_config_reads_back_as_written(tmp_path):
    """A run's config.yaml validates to the config that wrote it, for every model: kept runs
    are reused only when their config is the requested one (a float field whose default is
    written 16 once dumped as 16 and read back as 16.0, so finished runs were retrained)."""
    from recadapt.models.a_llmrec import CandidateLLM
    from recadapt.models.registry import get_model, model_names

    for name in model_names():
        model_class = get_model(name).model_class
        task = "ctr" if "ctr" in model_class.tasks else "next_item"
        raw = {"data": {"task": task}, "model": {"name": name}}
        if issubclass(model_class, CandidateLLM):  # these rank listed candidates only
            raw["eval"] = {"protocol": "sampled", "ks": [1, 5]}
            raw["train"] = {"monitor": "sampled_HR@1"}
        config = resolve_model(validate_config(raw))
        path = tmp_path / f"{name}.yaml"
        path.write_text(dump_config(config))
        assert dump_config(resolve_model(load_config(path))) == dump_config(config), name


def test_the_model_section_is_checked_where_models_are_built():
    """``recadapt.config`` keeps the model section as written; the registry checks it."""
    config = validate_config({"model": {"name": "sasrek", "whatever": 1}})
    assert config.model == {"name": "sasrek", "whatever": 1}
    with pytest.raises(ConfigError, match=r"model.name: 'sasrec' does not do data.task='ctr'"):
        resolve_model(validate_config({"data": {"task": "ctr"}, "model": {"name": "sasrec"},
                                       "train": {"monitor": "AUC"}}))
