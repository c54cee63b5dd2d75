"""`TokenSequence`, the one sequence type, and the builders that make it.

Every source becomes a :class:`TokenSequence`: an episode, an (image, caption)
pair, a document, a conversation. It carries, per token: the id (image patches
hold the ``<|patch|>`` placeholder), whether the token is a loss target, and its
local observation position; per patch: the raw pixels and the row/column
position intervals; and the offsets where a training window may start
(timestep boundaries for episodes).

Loss targets (docs/design.md, "One timestep of an episode"; Gato Sec. 2.3): action tokens in episodes; caption
text and the ``<|eos|>`` that ends it; every token of a document after
``<|bos|>``; assistant turns and their ``<|end|>`` in chats. Observations,
separators, prompts' role tokens and images are never targets.

>>> import numpy as np
>>> from gato_mini.config import GatoConfig
>>> from gato_mini.fields import FieldSpec
>>> cfg = GatoConfig.from_name("tiny")
>>> seq = episode_sequence({"state": np.zeros((2, 3), np.float32)}, np.array([1, 0]),
...                        {"state": FieldSpec("continuous", (3,))}, FieldSpec("discrete", (), n=2), cfg)
>>> len(seq), seq.starts.tolist(), seq.targets.astype(int).tolist()
(10, [0, 5], [0, 0, 0, 0, 1, 0, 0, 0, 0, 1])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gato_mini.config import GatoConfig
from gato_mini.data.timestep import encode_values, encode_vector, field_order
from gato_mini.errors import TokenizationError
from gato_mini.fields import FieldSpec
from gato_mini.tokenizers import image, vector
from gato_mini.tokenizers.text import TextTokenizer

#: Roles a chat message may have; each has its own special token.
CHAT_ROLES = ("system", "user", "assistant")


@dataclass
class TokenSequence:
    """One flat token stream (see the module docstring for what each array holds)."""

    tokens: np.ndarray  # (L,) int32 ids; patch slots hold <|patch|>
    targets: np.ndarray  # (L,) bool: token i counts in the loss (predicted from tokens[:i])
    local_pos: np.ndarray  # (L,) int16 observation position inside its timestep, -1 for none
    patches: np.ndarray  # (N, P*P*C) uint8 pixels of the patch slots, in slot order
    patch_pos: np.ndarray  # (N, 4) uint8 row lo, row hi, col lo, col hi (hi exclusive)
    starts: np.ndarray  # (S,) int32 offsets where a window may start (timesteps), starts[0] == 0

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def check(self, cfg: GatoConfig) -> None:
        """Raise if the arrays disagree (a bug in a builder, not a user error)."""
        n = len(self)
        assert self.targets.shape == (n,) and self.local_pos.shape == (n,), "per-token arrays differ"
        slots = int((self.tokens == cfg.special_id("<|patch|>")).sum())
        assert slots == len(self.patches) == len(self.patch_pos), "patch slots and patches differ"
        assert self.patches.ndim == 2 and self.patches.shape[1] == cfg.patch_size ** 2 * cfg.image_channels
        assert len(self.starts) >= 1 and self.starts[0] == 0 and np.all(np.diff(self.starts) > 0)

    def timesteps(self, j: int, k: int, cfg: GatoConfig) -> TokenSequence:
        """Whole timesteps ``j..k-1`` (tokens ``starts[j]..starts[k]``), with their patches."""
        bounds = np.append(self.starts, len(self))
        t0, t1 = int(bounds[j]), int(bounds[k])
        slot = cfg.special_id("<|patch|>")
        p0 = int((self.tokens[:t0] == slot).sum())
        p1 = p0 + int((self.tokens[t0:t1] == slot).sum())
        return TokenSequence(self.tokens[t0:t1], self.targets[t0:t1], self.local_pos[t0:t1],
                             self.patches[p0:p1], self.patch_pos[p0:p1], (bounds[j:k] - t0).astype(np.int32))

    @staticmethod
    def empty(cfg: GatoConfig) -> TokenSequence:
        """A sequence with no tokens."""
        ppc = cfg.patch_size ** 2 * cfg.image_channels
        return TokenSequence(np.zeros(0, np.int32), np.zeros(0, bool), np.zeros(0, np.int16),
                             np.zeros((0, ppc), np.uint8), np.zeros((0, 4), np.uint8), np.zeros(1, np.int32))


def concat(seqs: Sequence[TokenSequence]) -> TokenSequence:
    """Join sequences end to end; window starts of each part are kept."""
    if not seqs:
        raise ValueError("concat needs at least one sequence")
    offsets = np.cumsum([0] + [len(s) for s in seqs[:-1]])
    starts = np.concatenate([s.starts + o for s, o in zip(seqs, offsets, strict=True)])
    starts = np.unique(starts[starts < max(1, offsets[-1] + len(seqs[-1]))])
    return TokenSequence(
        np.concatenate([s.tokens for s in seqs]), np.concatenate([s.targets for s in seqs]),
        np.concatenate([s.local_pos for s in seqs]), np.concatenate([s.patches for s in seqs]),
        np.concatenate([s.patch_pos for s in seqs]), starts.astype(np.int32))


def flat_sequence(tokens: list[int] | np.ndarray, targets: np.ndarray | list[bool],
                  cfg: GatoConfig) -> TokenSequence:
    """A sequence with no patches and no observation positions (text, chat)."""
    seq = TokenSequence.empty(cfg)
    seq.tokens = np.asarray(tokens, dtype=np.int32)
    seq.targets = np.asarray(targets, dtype=bool)
    seq.local_pos = np.full(len(seq.tokens), -1, np.int16)
    return seq


# --- episodes ----------------------------------------------------------------
@dataclass
class _Observations:
    """T observations tokenized column by column (the first part of T timesteps)."""

    fixed: np.ndarray  # (T, k) ids of the fixed-width fields (patch slots hold <|patch|>), then <|sep|>
    patches: np.ndarray  # (T * N, P*P*C) uint8, N patches per timestep
    pos_row: np.ndarray  # (N, 4) one timestep's patch positions (the same every timestep)
    text: list[np.ndarray] | None  # per timestep, the text fields' ids; None without text fields

    def __len__(self) -> int:
        return self.fixed.shape[0]


def _observations(observations: dict[str, Any], fields: dict[str, FieldSpec], cfg: GatoConfig, t: int,
                  tokenizer: TextTokenizer | None, image_size: tuple[int, int] | None,
                  per: str = "steps") -> _Observations:
    missing = sorted(set(fields) - set(observations))
    if missing:
        raise TokenizationError(f"observation lacks the field(s) {missing}")
    order = field_order(fields)
    patch_id, sep_id = cfg.special_id("<|patch|>"), cfg.special_id("<|sep|>")
    cols: list[np.ndarray] = []  # fixed-width id columns (T, k) after the text fields
    patches, ppos = [], []
    text_keys = [k for k in order if fields[k].modality == "text"]
    for key in order:
        spec, col = fields[key], observations[key]
        rows = _rows(col)
        if rows != t:
            raise TokenizationError(f"observation '{key}' has {rows or 'no'} rows for {t} {per}")
        if spec.modality == "image":
            try:
                col = np.asarray(col)
            except ValueError:
                raise TokenizationError(f"observation '{key}': images of different shapes") from None
            if col.shape[1:] != tuple(spec.shape):
                raise TokenizationError(f"observation '{key}': images of shape {col.shape[1:]}, the field "
                                        f"is {tuple(spec.shape)}")
            if len(spec.shape) == 2:  # gray (H, W): name the channel axis, or a width of 1 or 3 reads as one
                col = col[..., None]
            p = image.encode(col, cfg, image_size)  # (T, N, PPC)
            rows, cols_ = image.grid_shape(col.shape[1:], cfg.patch_size, image_size)
            cols.append(np.full((t, p.shape[1]), patch_id, np.int64))
            patches.append(p)
            ppos.append(image.patch_positions(rows, cols_, cfg))
        elif spec.layout == "vector":  # one slot; its payload row holds the normalized values
            cols.append(np.full((t, 1), patch_id, np.int64))
            patches.append(encode_vector(col, spec, cfg, f"observation '{key}'")[:, None])
            ppos.append(vector.positions(spec.size))
        elif spec.modality != "text":
            cols.append(encode_values(col, spec, cfg, f"observation '{key}'"))
    fixed = np.concatenate(cols + [np.full((t, 1), sep_id, np.int64)], axis=1)
    patch_arr = (np.concatenate(patches, axis=1).reshape(-1, patches[0].shape[-1]) if patches
                 else TokenSequence.empty(cfg).patches)
    pos_row = np.concatenate(ppos) if ppos else np.zeros((0, 4), np.uint8)
    text = None
    if text_keys:
        if tokenizer is None:
            raise TokenizationError(f"text observation(s) {text_keys} need a text tokenizer")
        text = [np.concatenate([tokenizer.encode(str(observations[k][i])) for k in text_keys])
                for i in range(t)]
    return _Observations(fixed, patch_arr, pos_row, text)


def _timesteps(obs: _Observations, tail: np.ndarray, cfg: GatoConfig) -> TokenSequence:
    """``[obs tokens] <|sep|> [tail]`` per timestep; the ``tail`` (T, m) ids are the loss targets."""
    t, n_tail = len(obs), tail.shape[1]
    fixed = np.concatenate([obs.fixed, tail], axis=1)
    n_fixed = obs.fixed.shape[1] - 1  # without the separator
    if obs.text is None:
        _check_local(n_fixed, cfg)
        local = np.concatenate([np.arange(n_fixed), np.full(1 + n_tail, -1)]).astype(np.int16)
        targets = np.concatenate([np.zeros(n_fixed + 1, bool), np.ones(n_tail, bool)])
        return TokenSequence(fixed.reshape(-1).astype(np.int32), np.tile(targets, t), np.tile(local, t),
                             obs.patches, np.tile(obs.pos_row, (t, 1)),
                             (np.arange(t) * fixed.shape[1]).astype(np.int32))
    steps, n_patch = [], len(obs.pos_row)
    for i, text in enumerate(obs.text):
        n_obs = len(text) + n_fixed
        _check_local(n_obs, cfg)
        steps.append(TokenSequence(
            np.concatenate([text, fixed[i]]).astype(np.int32),
            np.concatenate([np.zeros(n_obs + 1, bool), np.ones(n_tail, bool)]),
            np.concatenate([np.arange(n_obs), np.full(1 + n_tail, -1)]).astype(np.int16),
            obs.patches[i * n_patch:(i + 1) * n_patch], obs.pos_row, np.zeros(1, np.int32)))
    return concat(steps)


def observation_sequence(observations: dict[str, Any], fields: dict[str, FieldSpec], cfg: GatoConfig,
                         tokenizer: TextTokenizer | None = None,
                         image_size: tuple[int, int] | None = None) -> TokenSequence:
    """T observations (T rows per key) as T times ``[obs tokens] <|sep|>``: the first part of each
    timestep of :func:`episode_sequence`, token for token (what the agent feeds before it acts)."""
    first = next(iter(field_order(fields)), None)
    t = _rows(observations.get(first)) if first is not None else None
    if not t:
        raise TokenizationError("an observation needs at least one row per field")
    obs = _observations(observations, fields, cfg, t, tokenizer, image_size)
    return _timesteps(obs, np.zeros((t, 0), np.int64), cfg)


def episode_sequence(observations: dict[str, Any], actions: Any, fields: dict[str, FieldSpec],
                     action_spec: FieldSpec, cfg: GatoConfig, tokenizer: TextTokenizer | None = None,
                     image_size: tuple[int, int] | None = None) -> TokenSequence:
    """Timesteps ``obs_t <|sep|> action_t`` for t < T; ``observations`` hold T rows per key.

    Pass the T observations that precede the T actions (drop the final one).
    """
    actions = np.asarray(actions)
    if actions.ndim == 0:
        raise TokenizationError("actions need one row per step, got a single value")
    t = actions.shape[0]
    if t == 0:
        raise TokenizationError("an episode needs at least one step")
    obs = _observations(observations, fields, cfg, t, tokenizer, image_size, "actions")
    return _timesteps(obs, encode_values(actions, action_spec, cfg, "action"), cfg)


def _rows(col: Any) -> int | None:
    """The number of rows of an observation column, None for a single value."""
    if isinstance(col, np.ndarray):
        return col.shape[0] if col.ndim else None
    try:
        return len(col)
    except TypeError:
        return None


def _check_local(n_obs: int, cfg: GatoConfig) -> None:
    if n_obs > cfg.max_local_positions:
        raise TokenizationError(f"an observation takes {n_obs} tokens, more than max_local_positions="
                                f"{cfg.max_local_positions}; use smaller images or raise the limit")


# --- captions, documents, chats ------------------------------------------------
def caption_prompt_sequence(picture: Any, cfg: GatoConfig,
                            image_size: tuple[int, int] | None = None) -> TokenSequence:
    """``[patches] <|caption|>``: the part of :func:`caption_sequence` before the text."""
    img = np.asarray(picture)
    if img.ndim not in (2, 3):  # one image; the codec would read a 4-D array as a stack of them
        raise TokenizationError(f"a caption's image must be (H, W) or (H, W, C), got shape {img.shape}")
    p = image.encode(img, cfg, image_size)
    rows, cols = image.grid_shape(img.shape, cfg.patch_size, image_size)
    _check_local(len(p), cfg)
    n = len(p)
    tokens = np.concatenate([np.full(n, cfg.special_id("<|patch|>")), [cfg.special_id("<|caption|>")]])
    local = np.concatenate([np.arange(n), [-1]]).astype(np.int16)
    return TokenSequence(tokens.astype(np.int32), np.zeros(n + 1, bool), local, p,
                         image.patch_positions(rows, cols, cfg), np.zeros(1, np.int32))


def _extend(seq: TokenSequence, ids: Any, targets: bool) -> TokenSequence:
    """``seq`` with the text ids ``ids`` after it (targets of the loss or not); its patches kept."""
    ids = np.asarray(ids, dtype=np.int32)
    return TokenSequence(np.concatenate([seq.tokens, ids]),
                         np.concatenate([seq.targets, np.full(len(ids), targets)]),
                         np.concatenate([seq.local_pos, np.full(len(ids), -1, np.int16)]), seq.patches,
                         seq.patch_pos, seq.starts)


def caption_sequence(picture: Any, caption: str, cfg: GatoConfig, tokenizer: TextTokenizer,
                     image_size: tuple[int, int] | None = None) -> TokenSequence:
    """``[patches] <|caption|> text <|eos|>``; loss on the text and ``<|eos|>``."""
    prompt = caption_prompt_sequence(picture, cfg, image_size)
    return _extend(prompt, np.concatenate([tokenizer.encode(caption), [cfg.special_id("<|eos|>")]]), True)


def question_prompt_sequence(picture: Any, question: str, cfg: GatoConfig, tokenizer: TextTokenizer,
                             image_size: tuple[int, int] | None = None) -> TokenSequence:
    """``[patches] <|caption|> question <|sep|>``: the part of :func:`answer_sequence` before the answer
    (the image, then the question as text; the answer is what the model says after ``<|sep|>``, as an
    action follows an observation)."""
    prompt = caption_prompt_sequence(picture, cfg, image_size)
    return _extend(prompt, np.concatenate([tokenizer.encode(question), [cfg.special_id("<|sep|>")]]), False)


def answer_sequence(picture: Any, question: str, answer: str, cfg: GatoConfig, tokenizer: TextTokenizer,
                    image_size: tuple[int, int] | None = None) -> TokenSequence:
    """``[patches] <|caption|> question <|sep|> answer <|eos|>`` (a visual question); loss on the answer
    and ``<|eos|>``."""
    prompt = question_prompt_sequence(picture, question, cfg, tokenizer, image_size)
    return _extend(prompt, np.concatenate([tokenizer.encode(answer), [cfg.special_id("<|eos|>")]]), True)


def document_sequence(text: str, cfg: GatoConfig, tokenizer: TextTokenizer) -> TokenSequence:
    """``<|bos|> text <|eos|>``; every token after ``<|bos|>`` is a target."""
    ids = tokenizer.encode(text)
    tokens = np.concatenate([[cfg.special_id("<|bos|>")], ids, [cfg.special_id("<|eos|>")]])
    return flat_sequence(tokens, np.concatenate([[False], np.ones(len(ids) + 1, bool)]), cfg)


def chat_sequence(messages: Sequence[dict[str, str]], cfg: GatoConfig, tokenizer: TextTokenizer,
                  ) -> TokenSequence:
    """``<|bos|> (<|role|> text <|end|>)* <|eos|>``; loss on assistant text and its ``<|end|>``."""
    tokens, targets = [cfg.special_id("<|bos|>")], [False]
    end = cfg.special_id("<|end|>")
    for k, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise TokenizationError(f"message {k}: must be an object with 'role' and 'content', "
                                    f"got {type(msg).__name__}")
        role = msg.get("role")
        if role not in CHAT_ROLES:
            raise TokenizationError(f"message {k}: unknown role {role!r}; use one of {', '.join(CHAT_ROLES)}")
        content = msg.get("content")
        if not isinstance(content, str):
            raise TokenizationError(f"message {k}: content must be a string, got {type(content).__name__}")
        ids = tokenizer.encode(content).tolist()
        learn = role == "assistant"
        tokens += [cfg.special_id(f"<|{role}|>"), *ids, end]
        targets += [False] + [learn] * (len(ids) + 1)
    tokens.append(cfg.special_id("<|eos|>"))
    targets.append(False)
    return flat_sequence(tokens, targets, cfg)


def chat_prompt(messages: Sequence[dict[str, str]], cfg: GatoConfig, tokenizer: TextTokenizer) -> np.ndarray:
    """The ids that ask the model for the next assistant turn (the chat template, open at the end)."""
    seq = chat_sequence(messages, cfg, tokenizer)
    return np.concatenate([seq.tokens[:-1], [cfg.special_id("<|assistant|>")]]).astype(np.int32)
