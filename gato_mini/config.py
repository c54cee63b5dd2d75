"""`GatoConfig`: model sizes, tokenizer constants and the one id space.

Every token-id offset is derived here, in ``__post_init__``, and nowhere else
(docs/design.md, "The token stream"):

====================================  =========================================
ids                                   what
====================================  =========================================
``[0, T)``                            text (byte-level BPE, ``T = text_vocab_size``)
``[T, T + 1024)``                     discrete values 0..1023
``[T + 1024, T + 2048)``              continuous values, 1024 uniform bins
``[T + 2048, T + 2048 + n_special)``  special tokens (:data:`SPECIAL_TOKENS`)
====================================  =========================================

>>> cfg = GatoConfig.from_name("tiny")
>>> (cfg.discrete_offset, cfg.continuous_offset, cfg.special_offset)
(4096, 5120, 6144)
>>> cfg.special_id("<|sep|>")
6147
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gato_mini.errors import ConfigError, FileFormatError
from gato_mini.options import check_options, count, number, numeric_fields, section_numbers

#: Special tokens, in id order after ``special_offset``. ``<|sep|>`` is Gato's
#: ``|`` between observation and action; ``<|patch|>`` is the placeholder slot
#: that an image patch occupies in the id stream (the patch itself is embedded
#: from its pixels); ``<|caption|>`` starts a caption after an image; the role
#: tokens and ``<|end|>`` frame chat turns.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|pad|>",
    "<|bos|>",
    "<|eos|>",
    "<|sep|>",
    "<|patch|>",
    "<|caption|>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|end|>",
)

#: Gato's own choices where this project's defaults differ (``GatoConfig``'s comments say why):
#: ``model: {name: tiny, faithful: true}`` in a config, or each key by itself.
FAITHFUL: dict[str, str] = {"action_inputs": "keep", "value_init": "random", "patch_norm": "none",
                            "obs_layout": "values"}

#: How image patches are centred before the patch embedding: "none" (Gato), "center" (each patch on its
#: own per-channel median), "image" (each patch on its image's background: the per-channel mode of the
#: whole image). ``GatoConfig.patch_norm`` says why.
PATCH_NORMS: tuple[str, ...] = ("none", "center", "image")

#: Keys added after model folders were first written, with the meaning a ``config.json`` that lacks
#: them had: an old model folder loads and acts as it did.
ADDED_LATER: dict[str, Any] = {"obs_layout": "values", "vector_grad_scale": 1.0}

# Named sizes. tiny/small are CPU presets; the gato-* sizes are Gato's own
# (Reed et al. 2022, Table 1: 79M = 8 layers, width 768, 24 heads; 364M =
# 12/1536/12; 1.18B = 24/2048/16). Gato used a 32k text vocabulary and a
# 1024-token context.
NAMED_SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(n_layer=4, n_embd=128, n_head=4, block_size=512, text_vocab_size=4096),
    "small": dict(n_layer=6, n_embd=256, n_head=8, block_size=1024, text_vocab_size=4096),
    "gato-79m": dict(n_layer=8, n_embd=768, n_head=24, block_size=1024, text_vocab_size=32000),
    "gato-364m": dict(n_layer=12, n_embd=1536, n_head=12, block_size=1024, text_vocab_size=32000),
    "gato-1.18b": dict(n_layer=24, n_embd=2048, n_head=16, block_size=1024, text_vocab_size=32000),
}


@dataclass
class GatoConfig:
    """Model sizes, tokenizer constants and the derived token-id offsets."""

    name: str = "tiny"
    # Transformer
    n_layer: int = field(default=4, metadata=count("'model.n_layer'"))
    n_embd: int = field(default=128, metadata=count("'model.n_embd'"))
    n_head: int = field(default=4, metadata=count("'model.n_head'"))
    # GEGLU hidden width; 0 means 8/3 * n_embd rounded up to 64: the weight
    # budget of a 4x two-matrix FFN (Shazeer 2020), which keeps Gato's sizes.
    intermediate_size: int = field(default=0, metadata=count("'model.intermediate_size'", 0))
    tie_embeddings: bool = True  # output head shares the token embedding
    block_size: int = field(default=512, metadata=count("'model.block_size'"))
    dropout: float = field(default=0.0, metadata=number("'model.dropout'", 0, hi=1, optional=False,
                                                        says="at least 0 and below 1"))
    rope_base: float = field(default=10000.0, metadata=number("'model.rope_base'", 0, open_lo=True,
                                                              optional=False))
    norm_eps: float = field(default=1e-5, metadata=number("'model.norm_eps'", 0, open_lo=True,
                                                          optional=False))
    # Tokenizers (Gato App. B: mu=100, M=256, 1024 bins; 16x16 patches)
    text_vocab_size: int = field(default=4096, metadata=count("'model.text_vocab_size'"))
    discrete_bins: int = field(default=1024, metadata=count("'model.discrete_bins'"))
    continuous_bins: int = field(default=1024, metadata=count("'model.continuous_bins'"))
    mu: float = field(default=100.0, metadata=number("'model.mu'", 0, open_lo=True, optional=False))
    mu_m: float = field(default=256.0, metadata=number("'model.mu_m'", 0, open_lo=True, optional=False))
    patch_size: int = field(default=16, metadata=count("'model.patch_size'"))
    image_channels: int = field(default=3, metadata=count("'model.image_channels'"))
    # Channels of the per-patch ResNet block (Gato App. C.3) after a stride-4 stem
    patch_hidden: int = field(default=32, metadata=count("'model.patch_hidden'"))
    # Positions (Gato Sec. 2.2: patch rows/columns quantized to 128 intervals)
    position_intervals: int = field(default=128, metadata=count("'model.position_intervals'"))
    max_local_positions: int = field(default=512, metadata=count("'model.max_local_positions'"))
    # The three learning defaults below differ from Gato's literal choices, which stay one key away
    # (each key, or ``faithful: true`` in a config's model section: :data:`FAITHFUL`); with Gato's,
    # the small models trained here learn no control task (docs/learning.md).
    #
    # Past actions in the input: "keep" (Gato), or "mask": every action token the model reads is
    # replaced by one learned vector, so it predicts each action from observations alone. Behaviour
    # cloning with the expert's past actions in view learns to copy them ("copycat", Wen et al.
    # 2020): in closed loop it then repeats its own first action. Targets are never masked.
    action_inputs: str = "mask"
    # How the embeddings of the 1024 discrete and 1024 continuous value ids start: "random" (as
    # every other id), or "fourier": sines and cosines of the value, so that neighbouring bins start
    # out alike (with the tied head, predicting bin b also favours b +- 1). Random rows make the model
    # learn the order of 1024 bins from data, one bin at a time. Only the start differs; all learn.
    value_init: str = "fourier"
    # How each image patch is read: "none" (Gato: pixels to [-1, 1] / sqrt(P)); "center": each patch,
    # channel by channel, minus its own median before the ResNet block, the median added back through
    # its own linear map; or "image" (the default): each patch minus its image's background (per
    # channel, the most common byte of the whole image), the background added back the same way.
    # Uncentred, every patch of a game frame is one large shared background vector and a ball of a few
    # pixels is a tiny perturbation on it; readers that sum or attend over such tokens find nothing to
    # grip (docs/learning.md, "Why Pong is not learned"). Centred on its own median, a patch wholly
    # inside a shape is zeros to the block and its colour reaches the model only through the level
    # path: the captions' colour was then learned in some runs and at chance in others. Centred on
    # the image, the frame's background still vanishes and such a patch keeps its colour
    # (docs/learning.md, "Session 16").
    patch_norm: str = "image"
    # How a continuous observation field (a Box that is not an image) is tokenized: "values" (Gato: one
    # token per value, mu-law and 1024 bins shared by every field), or "vector": the whole field is one
    # token, its values normalized per dimension by the training data's mean and standard deviation
    # (computed at prepare time, stored with the model) and mapped to the width by one linear layer, as
    # jat does. The reacher's timestep is then 4 tokens instead of 13. Fields of more than
    # ``vector_width`` values stay per value. Actions are tokens either way (docs/learning.md,
    # "Session 14").
    obs_layout: str = "vector"
    vector_width: int = field(default=64, metadata=count("'model.vector_width'"))
    # The gradient the vector embedding's parameters receive is scaled by this (its forward is unchanged,
    # as GLM-130B's embedding gradient shrink). AdamW's update of those parameters does not depend on the
    # scale; the norm the gradient clip reads does: the vector embedding holds the largest part of a
    # mixed batch's gradient norm, and the clip shrinks every other source's step with it. 0.1 was
    # tried in the default quickstart and did not change the held-out losses at equal steps, so 1 (no
    # shrink) stays the default (docs/learning.md, "Session 15").
    vector_grad_scale: float = field(default=1.0, metadata=number("'model.vector_grad_scale'", 0,
                                                                  open_lo=True, hi=1, optional=False))

    # Derived in __post_init__, never set by hand.
    head_dim: int = field(init=False)
    discrete_offset: int = field(init=False)
    continuous_offset: int = field(init=False)
    special_offset: int = field(init=False)
    vocab_size: int = field(init=False)
    padded_vocab_size: int = field(init=False)

    def __post_init__(self) -> None:
        check_options(self, error=ConfigError)  # every number by its rule (gato_mini/options.py)
        for key, rule in numeric_fields(self):
            if rule.integer:
                setattr(self, key, int(getattr(self, key)))
        if self.n_embd % self.n_head:
            raise ConfigError(
                f"config 'n_embd' ({self.n_embd}) must be divisible by 'n_head' ({self.n_head})"
            )
        if self.intermediate_size == 0:
            self.intermediate_size = 64 * math.ceil(8 * self.n_embd / 3 / 64)
        if self.dropout >= 1.0:
            raise ConfigError(f"'model.dropout' must be at least 0 and below 1, got {self.dropout}")
        if self.patch_size % 4:
            raise ConfigError(f"config 'patch_size' must be a multiple of 4, got {self.patch_size}")
        if self.value_init not in ("random", "fourier"):
            raise ConfigError(f"config 'value_init' must be 'random' or 'fourier', got {self.value_init!r}")
        if self.patch_norm not in PATCH_NORMS:
            raise ConfigError(f"config 'patch_norm' must be one of {', '.join(PATCH_NORMS)}, "
                              f"got {self.patch_norm!r}")
        if self.action_inputs not in ("keep", "mask"):
            raise ConfigError(f"config 'action_inputs' must be 'keep' or 'mask', got {self.action_inputs!r}")
        if self.obs_layout not in ("values", "vector"):
            raise ConfigError(f"config 'obs_layout' must be 'values' or 'vector', got {self.obs_layout!r}")
        if 4 * self.vector_width > self.patch_size ** 2 * self.image_channels:
            raise ConfigError(f"config 'vector_width' ({self.vector_width}) is more float32 values than a "
                              f"slot of {self.patch_size ** 2 * self.image_channels} bytes holds")
        if self.image_channels not in (1, 3):
            raise ConfigError(f"config 'image_channels' must be 1 or 3, got {self.image_channels}")
        self.head_dim = self.n_embd // self.n_head
        self.discrete_offset = self.text_vocab_size
        self.continuous_offset = self.discrete_offset + self.discrete_bins
        self.special_offset = self.continuous_offset + self.continuous_bins
        self.vocab_size = self.special_offset + len(SPECIAL_TOKENS)
        # Embedding/head tables are padded to a multiple of 64 for fast matmuls
        # (as nanoGPT does); ids past vocab_size are never produced.
        self.padded_vocab_size = 64 * math.ceil(self.vocab_size / 64)

    # --- special tokens ---------------------------------------------------
    def special_id(self, token: str) -> int:
        """The id of a special token such as ``"<|sep|>"``."""
        try:
            return self.special_offset + SPECIAL_TOKENS.index(token)
        except ValueError:
            raise ConfigError(
                f"unknown special token {token!r}; known: {', '.join(SPECIAL_TOKENS)}"
            ) from None

    # --- construction and serialization -----------------------------------
    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> GatoConfig:
        """A named size (``tiny``, ``small``, ``gato-79m``, ``gato-364m``, ``gato-1.18b``)."""
        if name not in NAMED_SIZES:
            raise ConfigError(f"unknown model size {name!r}; known: {', '.join(NAMED_SIZES)}")
        return cls.from_dict({"name": name, **NAMED_SIZES[name], **overrides})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GatoConfig:
        """Build from a dict; derived keys are checked, unknown keys are an error."""
        if not isinstance(data, dict):
            raise ConfigError(f"a config must be a mapping, got {type(data).__name__}")
        init_names = {f.name for f in dataclasses.fields(cls) if f.init}
        derived_names = {f.name for f in dataclasses.fields(cls) if not f.init}
        unknown = sorted(set(data) - init_names - derived_names)
        if unknown:
            raise ConfigError(
                f"unknown config key(s) {', '.join(unknown)}; known: {', '.join(sorted(init_names))}"
            )
        cfg = cls(**{k: v for k, v in data.items() if k in init_names})
        for key in derived_names & set(data):
            if data[key] != getattr(cfg, key):
                raise ConfigError(
                    f"config key '{key}' is {data[key]!r} but the other values give "
                    f"{getattr(cfg, key)!r}"
                )
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """All fields, derived ones included (they are checked on load)."""
        return dataclasses.asdict(self)

    def to_json(self, path: str | Path) -> None:
        """Write ``config.json``."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_json(cls, path: str | Path) -> GatoConfig:
        """Read a ``config.json`` written by :meth:`to_json`."""
        path = Path(path)
        if not path.is_file():
            raise FileFormatError(f"config file not found: {path}")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FileFormatError(f"config file {path} is not valid JSON: {exc}") from None
        except RecursionError:
            raise FileFormatError(f"config file {path} is nested too deeply to be a model config") from None
        if isinstance(data, dict):
            data = {**ADDED_LATER, **data}
        return cls.from_dict(data)


def model_config(raw: Any) -> GatoConfig:
    """The ``model`` section: a size name, or a mapping with ``name`` plus overrides; ``faithful: true``
    takes Gato's own choices (:data:`FAITHFUL`) where this project's defaults differ, the mapping's
    other keys still winning."""
    if raw is None:
        return GatoConfig.from_name("tiny")
    if isinstance(raw, str):
        return GatoConfig.from_name(raw)
    if isinstance(raw, dict):
        raw = dict(raw)
        name = raw.pop("name", "tiny")
        faithful = raw.pop("faithful", False)
        if not isinstance(faithful, bool):
            raise ConfigError(f"'model.faithful' must be true or false, got {faithful!r}")
        raw = section_numbers(GatoConfig, raw)  # YAML's 1e3 is a string
        return GatoConfig.from_name(name, **{**(FAITHFUL if faithful else {}), **raw})
    raise ConfigError(f"'model' must be a size name or a mapping, got {raw!r}")
