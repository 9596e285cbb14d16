"""Config loading: every bad key, type or range stops with a message naming the key."""

from __future__ import annotations

import math

import pytest
import yaml

from lowlight.config import ConfigError, Params, flatten, from_dict, load_params

from conftest import REPO


def test_repo_params_load_and_match_defaults_shape():
    p = load_params(REPO / "params.yaml")
    assert isinstance(p, Params)
    assert p.data.source == "demo"
    # every key of params.yaml is a field (nothing silently ignored) and vice versa
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    assert set(flatten(raw)) <= set(flatten(p))


@pytest.mark.fault
@pytest.mark.parametrize(
    "raw, words",
    [
        ({"train": {"lr": -1}}, ["train.lr", "> 0"]),
        ({"train": {"lr": 0}}, ["train.lr", "> 0"]),
        ({"train": {"lr": float("nan")}}, ["train.lr", "finite"]),
        ({"train": {"epochs": 0}}, ["train.epochs", ">= 1"]),
        ({"train": {"epochs": -3}}, ["train.epochs"]),
        ({"train": {"epochs": 2.5}}, ["train.epochs", "integer"]),
        ({"train": {"epochs": True}}, ["train.epochs", "integer"]),
        ({"train": {"crop_size": 0}}, ["train.crop_size"]),
        ({"train": {"amp": "yes"}}, ["train.amp", "true or false"]),
        ({"train": {"lrr": 1e-3}}, ["train.lrr", "allowed keys", "lr"]),
        ({"trian": {}}, ["trian", "allowed keys", "train"]),
        ({"data": {"source": "imagenet"}}, ["data.source", "'demo'", "'lol'"]),
        ({"data": {"source": "lol"}}, ["data.path"]),
        ({"data": {"degrade": {"exposure_min": 0.5, "exposure_max": 0.1}}}, ["exposure_min"]),
        ({"data": {"degrade": {"gain": 2}}}, ["data.degrade.gain"]),
        ({"data": {"val_fraction": 0.6, "test_fraction": 0.5}}, ["val_fraction"]),
        ({"histmap": {"method": "cubic"}}, ["histmap.method", "'kde'"]),
        ({"base": {"device": "tpu"}}, ["base.device", "'cuda'"]),
        ({"base": {"seed": "one"}}, ["base.seed", "integer"]),
        ({"train": "fast"}, ["train", "mapping"]),
    ],
)
def test_bad_values_name_the_key(raw, words):
    with pytest.raises(ConfigError) as info:
        from_dict(Params, raw)
    msg = str(info.value)
    for w in words:
        assert w in msg, (w, msg)


def test_ints_accepted_for_floats_and_frozen():
    p = from_dict(Params, {"train": {"lr": 1}})
    assert p.train.lr == 1.0 and isinstance(p.train.lr, float)
    with pytest.raises(Exception):
        p.train.lr = 2.0  # frozen


def test_load_params_names_the_file(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("train:\n  lr: -1\n")
    with pytest.raises(ConfigError, match=str(bad)):
        load_params(bad)
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="YAML"):
        load_params(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_params(tmp_path / "missing.yaml")


def test_flatten_uses_dotted_keys():
    flat = flatten(from_dict(Params, {}))
    assert flat["train.lr"] > 0 and "data.degrade.exposure_min" in flat
    assert not any(isinstance(v, float) and math.isnan(v) for v in flat.values())
