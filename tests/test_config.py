"""GatoConfig: named sizes, derived offsets, JSON round trip, bad keys."""

from __future__ import annotations

import json

import pytest

from gato_mini.config import FAITHFUL, NAMED_SIZES, SPECIAL_TOKENS, GatoConfig, model_config
from gato_mini.errors import ConfigError, FileFormatError
from gato_mini.model.model import count_params
from gato_mini.tokenizers import Vocab


@pytest.mark.parametrize("name", list(NAMED_SIZES))
def test_named_sizes_build_and_round_trip_json(name, tmp_path):
    cfg = GatoConfig.from_name(name)
    assert cfg.name == name
    assert cfg.head_dim * cfg.n_head == cfg.n_embd
    path = tmp_path / "config.json"
    cfg.to_json(path)
    assert GatoConfig.from_json(path) == cfg


def test_gato_shapes_match_the_paper():
    # Reed et al. 2022, Table 1.
    shapes = {n: (c.n_layer, c.n_embd, c.n_head) for n in NAMED_SIZES if n.startswith("gato")
              for c in [GatoConfig.from_name(n)]}
    assert shapes == {"gato-79m": (8, 768, 24), "gato-364m": (12, 1536, 12), "gato-1.18b": (24, 2048, 16)}
    # Parameter counts land within 10% of the paper's names.
    for name, target in (("gato-79m", 79e6), ("gato-364m", 364e6), ("gato-1.18b", 1.18e9)):
        assert abs(count_params(GatoConfig.from_name(name)) / target - 1) < 0.1


@pytest.mark.parametrize("name", list(NAMED_SIZES))
def test_id_ranges_are_disjoint_and_cover_the_vocabulary(name):
    cfg = GatoConfig.from_name(name)
    ranges = Vocab(cfg).ranges
    assert [r.kind for r in ranges] == ["text", "discrete", "continuous", "special"]
    assert ranges[0].start == 0
    for a, b in zip(ranges, ranges[1:], strict=False):
        assert a.stop == b.start  # contiguous, so disjoint and gap-free
    assert ranges[-1].stop == cfg.vocab_size
    assert sum(len(r) for r in ranges) == cfg.vocab_size
    assert (len(ranges[0]), len(ranges[1]), len(ranges[2]), len(ranges[3])) == (
        cfg.text_vocab_size, 1024, 1024, len(SPECIAL_TOKENS))
    assert cfg.padded_vocab_size >= cfg.vocab_size and cfg.padded_vocab_size % 64 == 0


def test_special_ids(cfg):
    assert cfg.special_id("<|pad|>") == cfg.special_offset
    assert cfg.special_id("<|sep|>") == cfg.special_offset + SPECIAL_TOKENS.index("<|sep|>")
    with pytest.raises(ConfigError, match="unknown special token"):
        cfg.special_id("<|nope|>")


def test_overrides_rederive_offsets():
    cfg = GatoConfig.from_name("tiny", text_vocab_size=1000)
    assert (cfg.discrete_offset, cfg.continuous_offset, cfg.special_offset) == (1000, 2024, 3048)


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="unknown config key.*n_layers"):
        GatoConfig.from_dict({"n_layers": 3})


def test_inconsistent_derived_key_is_refused(cfg):
    data = cfg.to_dict()
    data["vocab_size"] += 1
    with pytest.raises(ConfigError, match="vocab_size"):
        GatoConfig.from_dict(data)


@pytest.mark.parametrize("bad", [{"n_head": 3}, {"n_layer": 0}, {"dropout": 1.5}, {"image_channels": 4}])
def test_bad_values_raise(bad):
    with pytest.raises(ConfigError):
        GatoConfig.from_name("tiny", **bad)


def test_unknown_size_lists_known():
    with pytest.raises(ConfigError, match="tiny"):
        GatoConfig.from_name("huge")


def test_missing_and_corrupt_config_file(tmp_path):
    with pytest.raises(FileFormatError, match="not found"):
        GatoConfig.from_json(tmp_path / "config.json")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(FileFormatError, match="not valid JSON"):
        GatoConfig.from_json(tmp_path / "config.json")
    (tmp_path / "config.json").write_text(json.dumps([1, 2]))
    with pytest.raises(ConfigError, match="mapping"):
        GatoConfig.from_json(tmp_path / "config.json")


def test_a_bare_model_gets_the_learning_defaults_and_faithful_gets_gatos() -> None:
    """``model: tiny`` is the model that learns (masked past actions, ordered value ids, centred
    patches); ``faithful: true`` is Gato's literal choices, and a key given beside it still wins."""
    learning = {"action_inputs": "mask", "value_init": "fourier", "patch_norm": "image"}
    for cfg in (model_config("tiny"), model_config({"name": "tiny"}), model_config(None), GatoConfig()):
        assert {k: getattr(cfg, k) for k in learning} == learning
    gato = model_config({"name": "tiny", "faithful": True})
    assert {k: getattr(gato, k) for k in FAITHFUL} == FAITHFUL
    assert model_config({"name": "tiny", "faithful": True, "patch_norm": "center"}).patch_norm == "center"
    assert model_config({"name": "tiny", "faithful": False}).action_inputs == "mask"
    with pytest.raises(ConfigError, match="'model.faithful' must be true or false"):
        model_config({"name": "tiny", "faithful": "yes"})
    old = json.loads(json.dumps(GatoConfig(**FAITHFUL).to_dict()))  # a config.json of an older model
    assert GatoConfig.from_dict(old).action_inputs == "keep"  # it keeps what it was trained with
