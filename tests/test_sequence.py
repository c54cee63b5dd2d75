"""The sequence builder: exact ids, loss mask, local and patch positions (docs/design.md layouts)."""

from __future__ import annotations

import numpy as np
import pytest

from gato_mini.config import GatoConfig
from gato_mini.data.sequence import (
    caption_prompt_sequence,
    caption_sequence,
    chat_prompt,
    chat_sequence,
    concat,
    document_sequence,
    episode_sequence,
    observation_sequence,
)
from gato_mini.data.timestep import decode_values, field_order
from gato_mini.errors import TokenizationError
from gato_mini.fields import FieldSpec
from gato_mini.tokenizers import image

# tiny: text [0, 4096), discrete [4096, 5120), continuous [5120, 6144), specials from 6144
PAD, BOS, EOS, SEP, PATCH, CAPTION, SYSTEM, USER, ASSISTANT, END = range(6144, 6154)


def test_special_ids_are_what_the_tests_assume(cfg: GatoConfig) -> None:
    names = ["pad", "bos", "eos", "sep", "patch", "caption", "system", "user", "assistant", "end"]
    assert [cfg.special_id(f"<|{n}|>") for n in names] == list(range(6144, 6154))


def test_two_step_episode_by_hand(cfg: GatoConfig) -> None:
    """An image (1x2 patches), a 2-vector and a discrete action: every id, bit and position."""
    cam = np.zeros((2, 16, 32), np.uint8)
    cam[0, :, :16], cam[0, :, 16:] = 10, 200
    cam[1] = (np.arange(16)[:, None] * 32 + np.arange(32)[None, :]) % 256
    vel = np.array([[-1.0, 1.0], [0.0, 0.5]], np.float32)
    fields = {"vel": FieldSpec("continuous", (2,)), "cam": FieldSpec("image", (16, 32))}
    seq = episode_sequence({"vel": vel, "cam": cam}, np.array([3, 1]), fields,
                           FieldSpec("discrete", (), n=4), cfg)
    seq.check(cfg)
    # image before values although "cam" < "vel" would hold anyway; bins: 0.0 -> 512, 0.5 -> 768
    assert seq.tokens.tolist() == [PATCH, PATCH, 5120, 6143, SEP, 4096 + 3,
                                   PATCH, PATCH, 5120 + 512, 5120 + 768, SEP, 4096 + 1]
    assert seq.targets.astype(int).tolist() == [0, 0, 0, 0, 0, 1] * 2
    assert seq.local_pos.tolist() == [0, 1, 2, 3, -1, -1] * 2
    assert seq.starts.tolist() == [0, 6]
    # rows: one row spans the whole height; columns: halves of the 128 intervals
    assert seq.patch_pos.tolist() == [[0, 128, 0, 64], [0, 128, 64, 128]] * 2
    assert seq.patches.shape == (4, 16 * 16 * 3) and seq.patches.dtype == np.uint8
    assert np.all(seq.patches[0] == 10) and np.all(seq.patches[1] == 200)
    # inside a patch: row-major pixels, channels last (gray repeated to RGB)
    for k in (0, 1):
        patch = seq.patches[2 + k].reshape(16, 16, 3)
        assert np.array_equal(patch[..., 0], cam[1, :, 16 * k:16 * (k + 1)])
        assert np.array_equal(patch[..., 0], patch[..., 2])
    picture = image.decode(seq.patches[2:4], 1, 2, cfg)
    assert np.array_equal(picture[..., 0], cam[1])


def test_values_decode_back(cfg: GatoConfig) -> None:
    spec = FieldSpec("continuous", (3,), mu_law=True)
    x = np.array([[-50.0, 0.0, 3.0]], np.float32)
    seq = episode_sequence({"s": x}, np.array([[0.25]]), {"s": spec}, FieldSpec("continuous", (1,)), cfg)
    back = decode_values(seq.tokens[:3], spec, cfg)
    assert np.allclose(back, x[0], rtol=0.03, atol=0.01)
    assert seq.targets.tolist() == [False] * 4 + [True]


def test_field_order_text_then_images_then_values(cfg: GatoConfig, text_tokenizer) -> None:
    fields = {"a_val": FieldSpec("discrete", (), n=5), "b_img": FieldSpec("image", (16, 16)),
              "z_text": FieldSpec("text", ())}
    assert field_order(fields) == ["z_text", "b_img", "a_val"]
    obs = {"a_val": np.array([4]), "b_img": np.zeros((1, 16, 16), np.uint8), "z_text": np.array(["fox"])}
    seq = episode_sequence(obs, np.array([2]), fields, FieldSpec("discrete", (), n=3), cfg, text_tokenizer)
    text = text_tokenizer.encode("fox").tolist()
    assert seq.tokens.tolist() == text + [PATCH, 4096 + 4, SEP, 4096 + 2]
    assert seq.local_pos.tolist() == list(range(len(text) + 2)) + [-1, -1]
    assert seq.targets.tolist() == [False] * (len(text) + 3) + [True]


def test_episode_bad_input(cfg: GatoConfig) -> None:
    spec = {"s": FieldSpec("continuous", (2,))}
    with pytest.raises(TokenizationError, match="lacks the field"):
        episode_sequence({}, np.zeros(2), spec, FieldSpec("discrete", (), n=2), cfg)
    with pytest.raises(TokenizationError, match="3 rows for 2 actions"):
        episode_sequence({"s": np.zeros((3, 2))}, np.zeros(2), spec, FieldSpec("discrete", (), n=2), cfg)
    with pytest.raises(TokenizationError, match="observation 's'.*NaN|nan"):
        episode_sequence({"s": np.full((1, 2), np.nan)}, np.zeros(1), spec, FieldSpec("discrete", (), n=2),
                         cfg)
    big = {"img": FieldSpec("image", (16 * 24, 16 * 24))}
    with pytest.raises(TokenizationError, match="max_local_positions"):
        episode_sequence({"img": np.zeros((1, 16 * 24, 16 * 24), np.uint8)}, np.zeros(1), big,
                         FieldSpec("discrete", (), n=2), cfg)


def test_caption_loss_only_on_caption_text(cfg: GatoConfig, text_tokenizer) -> None:
    img = np.zeros((32, 32, 3), np.uint8)
    seq = caption_sequence(img, "the quick brown fox", cfg, text_tokenizer)
    seq.check(cfg)
    text = text_tokenizer.encode("the quick brown fox").tolist()
    assert seq.tokens.tolist() == [PATCH] * 4 + [CAPTION] + text + [EOS]
    assert seq.targets.tolist() == [False] * 5 + [True] * (len(text) + 1)
    assert seq.local_pos.tolist() == [0, 1, 2, 3] + [-1] * (len(text) + 2)
    assert seq.patch_pos.tolist() == [[0, 64, 0, 64], [0, 64, 64, 128], [64, 128, 0, 64], [64, 128, 64, 128]]


def test_chat_loss_only_on_assistant_turns(cfg: GatoConfig, text_tokenizer) -> None:
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "the fox"}, {"role": "user", "content": "more"},
            {"role": "assistant", "content": "dog"}]
    seq = chat_sequence(msgs, cfg, text_tokenizer)
    enc = {m["content"]: text_tokenizer.encode(m["content"]).tolist() for m in msgs}
    want, mask = [BOS], [0]
    for m in msgs:
        role = {"system": SYSTEM, "user": USER, "assistant": ASSISTANT}[m["role"]]
        learn = int(m["role"] == "assistant")
        want += [role] + enc[m["content"]] + [END]
        mask += [0] + [learn] * (len(enc[m["content"]]) + 1)
    assert seq.tokens.tolist() == want + [EOS]
    assert seq.targets.astype(int).tolist() == mask + [0]
    assert seq.targets.sum() == len(enc["the fox"]) + len(enc["dog"]) + 2
    assert np.all(seq.local_pos == -1) and len(seq.patches) == 0
    prompt = chat_prompt(msgs[:2], cfg, text_tokenizer)
    assert prompt.tolist()[-2:] == [END, ASSISTANT]
    with pytest.raises(TokenizationError, match="unknown role 'robot'"):
        chat_sequence([{"role": "robot", "content": "x"}], cfg, text_tokenizer)


def test_document_and_concat(cfg: GatoConfig, text_tokenizer) -> None:
    a = document_sequence("the fox", cfg, text_tokenizer)
    ids = text_tokenizer.encode("the fox").tolist()
    assert a.tokens.tolist() == [BOS] + ids + [EOS]
    assert a.targets.tolist() == [False] + [True] * (len(ids) + 1)
    both = concat([a, caption_sequence(np.zeros((16, 16), np.uint8), "dog", cfg, text_tokenizer)])
    both.check(cfg)
    assert both.starts.tolist() == [0, len(a)]
    assert len(both.patches) == 1


def test_patch_grid_with_padding(cfg: GatoConfig) -> None:
    """A 20x40 image pads to 32x48: 2x3 patches, black at the bottom and right, nothing cropped."""
    img = np.full((20, 40, 3), 255, np.uint8)
    seq = caption_sequence(img, "", cfg, _NoText())
    assert len(seq.patches) == 6
    back = image.decode(seq.patches, 2, 3, cfg)
    assert back.shape == (32, 48, 3)
    assert np.all(back[:20, :40] == 255) and np.all(back[20:] == 0) and np.all(back[:, 40:] == 0)
    assert GatoConfig.from_name("tiny", image_channels=1).patch_size == 16


class _NoText:
    def encode(self, text: str) -> np.ndarray:
        return np.zeros(0, np.int64)


@pytest.mark.parametrize("width", [1, 3, 5])
def test_gray_image_fields_of_width_one_or_three_are_not_read_as_channels(cfg, width) -> None:
    """A gray field (H, W): a column (T, H, W) with W of 1 or 3 once read as T images with W channels
    (found by the fuzz test). Each step must be one image of its own pixels."""
    frames = np.stack([np.full((20, width), 10 * (k + 1), np.uint8) for k in range(3)])
    seq = episode_sequence({"cam": frames}, np.zeros((3, 1), np.float32),
                           {"cam": FieldSpec("image", (20, width))}, FieldSpec("continuous", (1,)), cfg)
    assert len(seq.starts) == 3 and len(seq.patches) == 3 * 2  # 20 rows: two patch rows, one column
    for k in range(3):
        step = seq.patches[2 * k:2 * k + 2].reshape(2, cfg.patch_size, cfg.patch_size, cfg.image_channels)
        assert set(np.unique(step[:, :, :width])) <= {10 * (k + 1), 0} and step[0, 0, 0, 0] == 10 * (k + 1)
        assert not step[:, :, width:].any()  # the padding is black


@pytest.mark.parametrize("with_text", [False, True])
def test_the_observation_builder_gives_the_first_part_of_each_training_timestep(
        cfg: GatoConfig, text_tokenizer, with_text: bool) -> None:
    """What the agent feeds before it acts is, token for token, what training saw before the action."""
    rng = np.random.default_rng(0)
    t = 3
    fields = {"cam": FieldSpec("image", (20, 36, 3)), "vel": FieldSpec("continuous", (2,)),
              "key": FieldSpec("discrete", (), n=4)}
    obs = {"cam": rng.integers(0, 256, (t, 20, 36, 3), dtype=np.uint8),
           "vel": rng.normal(0, 0.5, (t, 2)).astype(np.float32), "key": rng.integers(0, 4, t)}
    if with_text:
        fields["note"] = FieldSpec("text", ())
        obs["note"] = np.array(["left", "a longer note", ""], dtype=object)
    action = FieldSpec("continuous", (2,))
    episode = episode_sequence(obs, rng.uniform(-1, 1, (t, 2)), fields, action, cfg, text_tokenizer)
    for i in range(t):
        step = episode.timesteps(i, i + 1, cfg)
        seen = observation_sequence({k: v[i:i + 1] for k, v in obs.items()}, fields, cfg, text_tokenizer)
        n = len(step) - 2  # the two action tokens
        assert seen.tokens.tolist() == step.tokens[:n].tolist() and seen.tokens[-1] == SEP
        assert seen.local_pos.tolist() == step.local_pos[:n].tolist()
        assert not seen.targets.any() and step.targets[n:].all()
        assert np.array_equal(seen.patches, step.patches) and np.array_equal(seen.patch_pos, step.patch_pos)
    both = observation_sequence(obs, fields, cfg, text_tokenizer)  # T observations at once: T timesteps
    assert len(both.starts) == t


def test_the_caption_prompt_is_the_part_of_a_training_caption_before_its_text(
        cfg: GatoConfig, text_tokenizer) -> None:
    img = np.random.default_rng(2).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    full = caption_sequence(img, "a red square", cfg, text_tokenizer)
    prompt = caption_prompt_sequence(img, cfg)
    n = len(prompt)
    assert prompt.tokens.tolist() == full.tokens[:n].tolist() and prompt.tokens[-1] == CAPTION
    assert prompt.local_pos.tolist() == full.local_pos[:n].tolist() and not prompt.targets.any()
    assert np.array_equal(prompt.patches, full.patches) and full.targets[n:].all()
    assert full.starts.tolist() == [0]
