"""GatoModel: masked loss by hand, overfitting a mixed batch, KV-cache parity with recomputation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gato_mini.config import GatoConfig
from gato_mini.data.sequence import caption_sequence, concat, document_sequence, episode_sequence
from gato_mini.data.windows import collate
from gato_mini.fields import FieldSpec
from gato_mini.model import GatoModel
from gato_mini.model.generate import forward_cached, pick

CFG = GatoConfig.from_name("tiny", n_layer=2, n_embd=64, n_head=4, block_size=128, text_vocab_size=400)


def _mixed_batch(text_tokenizer, cfg: GatoConfig = CFG, rows: int = 2) -> dict:
    """Rows holding image patches, continuous and discrete values, actions and text."""
    rng = np.random.default_rng(0)
    items = []
    for r in range(rows):
        fields = {"cam": FieldSpec("image", (16, 32)), "vel": FieldSpec("continuous", (3,))}
        obs = {"cam": rng.integers(0, 255, (3, 16, 32), dtype=np.uint8),
               "vel": rng.uniform(-1, 1, (3, 3)).astype(np.float32)}
        ep = episode_sequence(obs, rng.integers(0, 4, 3), fields, FieldSpec("discrete", (), n=4), cfg)
        cap = caption_sequence(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), "the quick brown fox",
                               cfg, text_tokenizer)
        doc = document_sequence(f"Gato is a generalist agent {r}.", cfg, text_tokenizer)
        items.append((r, concat([ep, cap, doc])))
    return collate(items, cfg, block_size=64)


def _model_inputs(batch: dict) -> dict:
    return {k: batch[k] for k in ("tokens", "local_pos", "patches", "patch_pos")}


def test_masked_loss_equals_cross_entropy_by_hand(text_tokenizer) -> None:
    torch.manual_seed(0)
    model = GatoModel(CFG).eval()
    batch = _mixed_batch(text_tokenizer)
    loss = model(**_model_inputs(batch), targets=batch["targets"], loss_mask=batch["loss_mask"])
    logits = model.logits(**_model_inputs(batch))
    assert logits.shape == (2, 64, CFG.padded_vocab_size)
    total, count = 0.0, 0
    for b in range(2):
        for i in range(64):
            if batch["loss_mask"][b, i]:
                total += F.cross_entropy(logits[b, i][None].double(), batch["targets"][b, i][None]).item()
                count += 1
    assert count == int(batch["loss_mask"].sum()) > 10
    assert loss.item() == pytest.approx(total / count, rel=1e-5)
    per_token = model(**_model_inputs(batch), targets=batch["targets"], loss_mask=batch["loss_mask"],
                      reduction="none")
    assert per_token[~batch["loss_mask"]].abs().max() == 0


def test_overfits_one_mixed_batch(text_tokenizer) -> None:
    torch.manual_seed(0)
    model = GatoModel(CFG)
    batch = _mixed_batch(text_tokenizer)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        loss = model(**_model_inputs(batch), targets=batch["targets"], loss_mask=batch["loss_mask"])
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first > 4.0 and loss.item() < 0.05, (first, loss.item())


def test_patches_and_positions_change_the_output(text_tokenizer) -> None:
    torch.manual_seed(0)
    model = GatoModel(CFG).eval()
    batch = _mixed_batch(text_tokenizer)
    base = model.logits(**_model_inputs(batch))
    other = dict(_model_inputs(batch), patches=255 - batch["patches"])
    assert not torch.allclose(model.logits(**other), base)
    shifted = torch.where(batch["local_pos"] >= 0, batch["local_pos"] + 1, -1)
    moved = dict(_model_inputs(batch), local_pos=shifted)
    assert not torch.allclose(model.logits(**moved), base)
    with pytest.raises(ValueError, match="slots but"):
        model.logits(**dict(_model_inputs(batch), patches=batch["patches"][:-1],
                            patch_pos=batch["patch_pos"][:-1]))


def _chunk(batch: dict, b: int, i: int, j: int) -> dict:
    """Tokens [i, j) of row b with their patches."""
    tokens = batch["tokens"][b:b + 1, i:j]
    slots = batch["tokens"] == CFG.special_id("<|patch|>")
    before = int(slots[:b].sum()) + int(slots[b, :i].sum())
    n = int(slots[b, i:j].sum())
    return {"tokens": tokens, "local_pos": batch["local_pos"][b:b + 1, i:j],
            "patches": batch["patches"][before:before + n],
            "patch_pos": batch["patch_pos"][before:before + n]}


def test_kv_cache_decoding_equals_recomputation(text_tokenizer) -> None:
    """Prefill then one token at a time (patches, values, actions, text) gives the full forward's logits."""
    torch.manual_seed(0)
    model = GatoModel(CFG).eval()
    batch = _mixed_batch(text_tokenizer, rows=1)
    n = int((batch["tokens"][0] != CFG.special_id("<|pad|>")).sum())
    with torch.no_grad():
        full = model.logits(**_chunk(batch, 0, 0, n))
    model.setup_caches(1, CFG.block_size)
    split = 20
    logits = [forward_cached(model, input_pos=torch.arange(split), **_chunk(batch, 0, 0, split))]
    for i in range(split, n):
        logits.append(forward_cached(model, input_pos=torch.tensor([i]), **_chunk(batch, 0, i, i + 1)))
    cached = torch.stack(logits[1:], dim=1)[0]  # logits of tokens split..n-1
    assert torch.allclose(cached, full[0, split:n], atol=1e-4), (cached - full[0, split:n]).abs().max()
    assert torch.allclose(logits[0][0], full[0, split - 1], atol=1e-4)
    assert torch.equal(pick(cached), pick(full[0, split:n]))
    model.clear_caches()


def test_kv_cache_greedy_generation_matches(text_tokenizer) -> None:
    """Greedy decoding of 12 tokens with the cache equals recomputing the whole prefix each step."""
    torch.manual_seed(1)
    model = GatoModel(CFG).eval()
    prompt = torch.tensor([[CFG.special_id("<|bos|>"), 5, 17, 42]])
    seq = prompt.clone()
    with torch.no_grad():
        for _ in range(12):
            nxt = pick(model.logits(seq)[:, -1], (0, CFG.vocab_size))
            seq = torch.cat([seq, nxt[:, None]], dim=1)
    model.setup_caches(1)
    out = prompt.clone()
    nxt = pick(forward_cached(model, prompt, torch.arange(4)), (0, CFG.vocab_size))
    for k in range(12):
        out = torch.cat([out, nxt[:, None]], dim=1)
        if k < 11:
            nxt = pick(forward_cached(model, nxt[:, None], torch.tensor([4 + k])), (0, CFG.vocab_size))
    assert torch.equal(out, seq)


def test_per_row_positions_in_the_cache() -> None:
    """Two rows at different positions (batched envs) equal each row decoded alone."""
    torch.manual_seed(2)
    model = GatoModel(CFG).eval()
    a = torch.randint(0, 400, (1, 9))
    b = torch.randint(0, 400, (1, 5))
    with torch.no_grad():
        ref_a, ref_b = model.logits(a)[0, -1], model.logits(b)[0, -1]
    model.setup_caches(2)
    forward_cached(model, torch.cat([a[:, :4], b[:, :4]]), torch.arange(4))
    for i in range(4, 8):  # row a advances alone (row b rewrites position 4 with its real token)
        tok = torch.cat([a[:, i:i + 1], b[:, 4:5]])
        pos = torch.tensor([[i], [4]])
        out = forward_cached(model, tok, pos)
    assert torch.allclose(out[1], ref_b, atol=1e-4)
    out = forward_cached(model, torch.cat([a[:, 8:9], b[:, 4:5]]), torch.tensor([[8], [4]]))
    assert torch.allclose(out[0], ref_a, atol=1e-4) and torch.allclose(out[1], ref_b, atol=1e-4)


def test_cache_positions_without_a_cache_raise() -> None:
    """input_pos means "write into the cache": without setup_caches (or after clear_caches) that is a
    misuse, not a silent full recomputation."""
    model = GatoModel(CFG).eval()
    tok = torch.randint(0, 400, (1, 3))
    with pytest.raises(ValueError, match="setup_caches"):
        model.logits(tok, input_pos=torch.arange(3))
    model.setup_caches(1)
    model.logits(tok, input_pos=torch.arange(3))
    model.clear_caches()
    with pytest.raises(ValueError, match="setup_caches"):
        model.logits(tok, input_pos=torch.arange(3))


def test_sample_stays_in_the_legal_range() -> None:
    logits = torch.randn(64, 100)
    logits[:, 0] = 50.0  # the overall argmax is illegal
    g = torch.Generator().manual_seed(0)
    for temp in (0.0, 1.0, 5.0):
        ids = pick(logits, (10, 20), temperature=temp, generator=g)
        assert ids.min() >= 10 and ids.max() < 20


@pytest.mark.parametrize("inputs", ["keep", "mask"])
def test_masked_action_inputs_hide_past_actions_and_only_them(inputs) -> None:
    """With action_inputs="mask" the model's outputs do not depend on which actions were taken before
    (copycat behaviour cloning has nothing to copy); with "keep" they do. Observations still count."""
    torch.manual_seed(0)
    cfg = GatoConfig.from_name("tiny", n_layer=2, n_embd=64, n_head=4, block_size=128, text_vocab_size=400,
                               action_inputs=inputs)
    model = GatoModel(cfg).eval()
    with torch.no_grad():  # a trained-looking mask vector, not zeros
        if model.action_mask is not None:
            model.action_mask.normal_(0, 0.5)
    rng = np.random.default_rng(1)
    fields, action = {"vel": FieldSpec("continuous", (3,))}, FieldSpec("discrete", (), n=4)
    obs = {"vel": rng.uniform(-1, 1, (6, 3)).astype(np.float32)}

    def logits(actions, o=obs):
        seq = episode_sequence(o, np.array(actions), fields, action, cfg)
        t = torch.as_tensor(seq.tokens, dtype=torch.long)[None]
        return model.logits(t, torch.as_tensor(seq.local_pos, dtype=torch.long)[None])[0]

    a, b = logits([0, 1, 2, 3, 0, 1]), logits([3, 3, 3, 3, 3, 1])
    if inputs == "mask":
        assert torch.allclose(a, b, atol=1e-6)
    else:
        assert not torch.allclose(a[5:], b[5:], atol=1e-3)  # after the first action, the past shows
    other = {"vel": obs["vel"][::-1].copy()}
    assert not torch.allclose(logits([0, 1, 2, 3, 0, 1], other), a, atol=1e-3)
    with pytest.raises(Exception, match="action_inputs"):
        GatoConfig.from_name("tiny", action_inputs="drop")


def test_fourier_value_init_orders_the_bins_and_leaves_other_ids_random() -> None:
    from torch.nn.functional import cosine_similarity as cos

    torch.manual_seed(0)
    cfg = GatoConfig.from_name("tiny", n_layer=1, n_embd=64, n_head=4, block_size=64, text_vocab_size=400,
                               value_init="fourier")
    w = GatoModel(cfg).wte.weight.detach()
    for offset in (cfg.discrete_offset, cfg.continuous_offset):
        rows = w[offset:offset + 1024]
        assert abs(float(rows.std()) - 0.02) < 1e-3
        near = cos(rows[500], rows[501], 0)
        assert near > 0.8 and near > cos(rows[500], rows[530], 0) > cos(rows[500], rows[900], 0)
    torch.manual_seed(0)
    plain = GatoModel(GatoConfig.from_name("tiny", n_layer=1, n_embd=64, n_head=4, block_size=64,
                                           text_vocab_size=400, value_init="random")).wte.weight.detach()
    assert abs(float(cos(plain[cfg.continuous_offset + 500], plain[cfg.continuous_offset + 501], 0))) < 0.5
    assert torch.equal(w[:400], plain[:400])  # text ids start the same either way
    with pytest.raises(Exception, match="value_init"):
        GatoConfig.from_name("tiny", value_init="sorted")


def test_patch_positions_are_a_random_point_of_the_interval_in_training_and_its_middle_in_eval() -> None:
    """Gato Sec. 2.2, read off the indices the row and column embeddings are looked up with."""
    from gato_mini.tokenizers.image import patch_intervals

    torch.manual_seed(0)
    model = GatoModel(CFG)
    seen = {}
    hooks = [emb.register_forward_hook(lambda m, inp, out, k=k: seen.__setitem__(k, inp[0].clone()))
             for k, emb in (("row", model.patch_embed.row), ("col", model.patch_embed.col))]
    rlo, rhi = patch_intervals(3)  # a 3 x 5 grid of patches
    clo, chi = patch_intervals(5)
    pos = torch.tensor([[rlo[r], rhi[r], clo[c], chi[c]] for r in range(3) for c in range(5)]).repeat(40, 1)
    patches = torch.randint(0, 256, (len(pos), CFG.patch_size ** 2 * CFG.image_channels), dtype=torch.uint8)
    model.patch_embed.train()
    model.patch_embed(patches, pos)
    for k, (lo, hi) in (("row", (pos[:, 0], pos[:, 1])), ("col", (pos[:, 2], pos[:, 3]))):
        idx = seen[k]
        assert bool(((idx >= lo) & (idx < hi)).all()), k
        first = idx[(lo == lo[0]) & (hi == hi[0])]
        assert len(first.unique()) >= 10, (k, first.unique())  # about 25-43 indices per interval, sampled
    model.patch_embed.eval()
    model.patch_embed(patches, pos)
    assert torch.equal(seen["row"], (pos[:, 0] + pos[:, 1]) // 2)
    assert torch.equal(seen["col"], (pos[:, 2] + pos[:, 3]) // 2)
    for h in hooks:
        h.remove()


def test_rope_makes_the_order_of_the_context_matter_and_extends_past_block_size() -> None:
    """Text tokens carry no other position: without RoPE, one layer's last logits would ignore the order
    of the tokens before it (its keys and values are per-token embeddings; deeper layers would see the
    order through the causal mask). And a cache set up longer than block_size gives the same logits as
    recomputing that longer sequence."""
    torch.manual_seed(3)
    one = GatoModel(GatoConfig.from_dict({**CFG.to_dict(), "n_layer": 1})).eval()
    seq = torch.randint(0, 400, (1, 24))
    perm = torch.cat([torch.randperm(23), torch.tensor([23])])  # the last token stays last
    with torch.no_grad():
        a, b = one.logits(seq)[0, -1], one.logits(seq[:, perm])[0, -1]
    assert not torch.allclose(a, b, atol=1e-4), (a - b).abs().max()
    model = GatoModel(CFG).eval()
    n = CFG.block_size + 40
    long = torch.randint(0, 400, (1, n))
    model.setup_caches(1, 2 * CFG.block_size)
    with torch.no_grad():
        logits = [forward_cached(model, long[:, :100], torch.arange(100))]
        for i in range(100, n):
            logits.append(forward_cached(model, long[:, i:i + 1], torch.tensor([i])))
        model.clear_caches()
        full = model.logits(long)[0]
    cached = torch.cat([logits[0][:, None], *[x[:, None] for x in logits[1:]]], dim=1)[0]
    assert torch.allclose(cached, full[99:], atol=1e-4), (cached - full[99:]).abs().max()



def _patch_embedding(patch_norm: str):
    torch.manual_seed(0)
    cfg = GatoConfig.from_name("tiny", n_layer=1, n_embd=64, n_head=4, block_size=64, text_vocab_size=400,
                               patch_norm=patch_norm)
    return GatoModel(cfg).patch_embed.eval()


def test_centred_patches_embed_the_background_apart_and_keep_small_objects_large() -> None:
    """patch_norm: center. A uniform patch embeds as its colour alone (whatever the colour, the block
    sees zeros); a few bright pixels on it move the embedding far more than without centring, where
    every patch is one large shared vector (docs/learning.md, "Why Pong is not learned")."""
    pos = torch.tensor([[0, 64, 0, 64]] * 3)
    flat = torch.full((3, 16, 16, 3), 87, dtype=torch.uint8)
    flat[1] = 20  # another background colour
    ball = flat[0].clone()
    ball[5:7, 5] = 236  # a 2x1 ball on the first background
    patches = torch.stack([flat[0], flat[1], ball]).reshape(3, -1)
    out = {}
    for patch_norm in ("none", "center"):
        pe = _patch_embedding(patch_norm)
        with torch.no_grad():
            out[patch_norm] = pe(patches, pos) - pe.row(torch.tensor([32])) - pe.col(torch.tensor([32]))
    plain, centred = out["none"], out["center"]
    assert all(not conv.bias.detach().any() for conv in (pe.stem, pe.conv1, pe.conv2))
    with torch.no_grad():  # uniform patches: the level's map of their colour, nothing from the block
        for i, value in ((0, 87), (1, 20)):
            level = torch.full((1, 3), (value / 127.5 - 1.0) / 4)
            assert torch.allclose(centred[i], pe.level(level)[0] + pe.proj.bias, atol=1e-6)
    assert not torch.allclose(centred[0], centred[1])  # the colour is kept
    def moved(e: torch.Tensor) -> float:  # how far the ball moves the token, relative to the background's
        return float((e[2] - e[0]).norm() / e[0].norm())

    assert moved(centred) > 2 and moved(centred) > 3 * moved(plain)  # uncentred: a perturbation
    with pytest.raises(Exception, match="patch_norm"):
        GatoConfig.from_name("tiny", patch_norm="whiten")


def test_patches_centred_on_their_image_keep_the_colour_of_a_patch_inside_a_shape() -> None:
    """patch_norm: image. Each patch is centred on its image's background (the per-channel mode of the
    whole image): a patch wholly inside a red shape on black keeps its red in the block's input, where
    "center" turns it into zeros; a uniform background still embeds as its level alone; bytes and
    normalized floats embed the same."""
    from gato_mini.model.model import image_background, image_groups

    img = torch.zeros(32, 32, 3, dtype=torch.uint8)  # black, a red square over the top-left patch
    img[:16, :16] = torch.tensor([220, 40, 40], dtype=torch.uint8)
    patches = img.reshape(2, 16, 2, 16, 3).permute(0, 2, 1, 3, 4).reshape(4, -1)  # raster order
    pos = torch.tensor([[0, 64, 0, 64], [0, 64, 64, 128], [64, 128, 0, 64], [64, 128, 64, 128]])
    groups = image_groups(pos)
    assert groups.tolist() == [0, 0, 0, 0]
    assert image_background(patches.view(4, 256, 3), groups).tolist() == [[0, 0, 0]] * 4
    out = {}
    for patch_norm in ("center", "image"):
        pe = _patch_embedding(patch_norm)
        with torch.no_grad():
            out[patch_norm] = pe(patches, pos)
            assert torch.allclose(pe(patches.float().div(127.5).sub(1).div(4), pos), out[patch_norm],
                                  atol=1e-5)  # the float path equals the byte path
    # the same weights: centred on its own median the red patch is uniform zeros, like a black one
    with torch.no_grad():
        pe = _patch_embedding("image")
        background = torch.full((1, 3), -1.0 / 4)
        middle = torch.tensor([96])
        black = pe.level(background)[0] + pe.proj.bias + pe.row(middle) + pe.col(middle)
        assert torch.allclose(out["image"][3], black, atol=1e-5)  # a background patch: its level alone
        assert (out["image"][0] - out["image"][3]).norm() > 0.1  # the red patch is not background
    # two images side by side, and a break between runs of patches, start new images
    two = torch.cat([pos, pos])
    assert image_groups(two).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    breaks = torch.tensor([False, False, True, False, False, False, False, False])
    assert image_groups(two, breaks).tolist() == [0, 0, 1, 1, 2, 2, 2, 2]
    with pytest.raises(Exception, match="patch_norm"):
        GatoConfig.from_name("tiny", patch_norm="whiten")


def test_a_model_with_image_centring_tells_the_images_of_a_batch_apart() -> None:
    """The model finds each image's patches from where they sit (one row, no token between them), so an
    image embeds the same alone, beside another image in the same row, and in a batch of two rows."""
    torch.manual_seed(0)
    cfg = GatoConfig.from_name("tiny", n_layer=1, n_embd=64, n_head=4, block_size=64, text_vocab_size=400,
                               patch_norm="image")
    model = GatoModel(cfg).eval()
    rng = torch.Generator().manual_seed(0)
    a = torch.randint(0, 256, (4, 768), dtype=torch.uint8, generator=rng)
    b = torch.zeros(4, 768, dtype=torch.uint8)  # all black: its background differs from a's
    pos = torch.tensor([[0, 64, 0, 64], [0, 64, 64, 128], [64, 128, 0, 64], [64, 128, 64, 128]])
    p, t = model.patch_id, 5
    with torch.no_grad():
        alone = model.embed(torch.tensor([[p] * 4 + [t]]), None, a, pos)[0, :4]
        row = model.embed(torch.tensor([[p] * 4 + [t] + [p] * 4]), None, torch.cat([a, b]),
                          torch.cat([pos, pos]))
        rows = model.embed(torch.tensor([[t] + [p] * 4, [p] * 4 + [t]]), None, torch.cat([b, a]),
                           torch.cat([pos, pos]))
    assert torch.allclose(row[0, :4], alone, atol=1e-6) and torch.allclose(rows[1, :4], alone, atol=1e-6)


def test_hl_gauss_targets_on_a_hand_built_case() -> None:
    import math

    from gato_mini.model.model import soft_value_targets

    lo, hi = 100, 200
    ids, w = soft_value_targets(torch.tensor([150, 100, 199]), lo, hi, sigma=1.0)
    assert ids.shape == w.shape == (3, 7)  # 3 sigma either side
    torch.testing.assert_close(w.sum(1), torch.ones(3))
    # the middle row: centred on its bin, symmetric, the centre bin holding erf(0.5 / sqrt 2) of the mass
    assert ids[0].tolist() == list(range(147, 154))
    assert w[0].argmax() == 3 and torch.allclose(w[0], w[0].flip(0))
    full = sum(0.5 * (math.erf((k + 0.5) / math.sqrt(2)) - math.erf((k - 0.5) / math.sqrt(2)))
               for k in range(-3, 4))
    assert w[0, 3].item() == pytest.approx(math.erf(0.5 / math.sqrt(2)) / full, rel=1e-5)
    # at the ends: the bins past the range get nothing, and the rest is renormalized
    assert (w[1, :3] == 0).all() and (w[2, 4:] == 0).all()
    assert w[1, 3].item() == pytest.approx(w[0, 3].item() / w[0, 3:].sum().item(), rel=1e-5)
    assert ids.min() >= lo and ids.max() < hi


def test_hl_gauss_loss_changes_only_value_targets_and_a_narrow_one_is_cross_entropy() -> None:
    cfg = GatoConfig.from_name("tiny", n_layer=1, n_embd=32, n_head=2, block_size=16, text_vocab_size=300)
    torch.manual_seed(0)
    model = GatoModel(cfg).eval()
    tokens = torch.randint(0, 300, (2, 16))
    targets = torch.randint(0, 300, (2, 16))
    targets[:, ::2] = cfg.continuous_offset + torch.randint(0, cfg.continuous_bins, (2, 8))
    hard = model(tokens, targets, reduction="none")
    soft = model(tokens, targets, reduction="none", value_sigma=8.0)
    narrow = model(tokens, targets, reduction="none", value_sigma=0.05)
    torch.testing.assert_close(soft[:, 1::2], hard[:, 1::2])  # text targets: unchanged
    assert not torch.allclose(soft[:, ::2], hard[:, ::2])
    torch.testing.assert_close(narrow, hard, atol=1e-4, rtol=1e-4)  # all the mass on the target's bin


def test_the_median_pick_reads_a_distribution_over_ordered_ids() -> None:
    """At temperature 0 the mode is the argmax; the median is the first id where the cumulative probability
    reaches one half (a continuous action's bins are ordered by value), inside the allowed range."""
    probs = torch.full((2, 40), 1e-9)
    probs[0, [12, 15, 18]] = torch.tensor([0.45, 0.2, 0.35])  # mode 12, median 15
    probs[1, 30] = 1.0  # one peak: mode and median agree
    probs[:, 2] = 5.0  # the overall peak lies outside the legal range
    logits = probs.log()
    assert pick(logits, (10, 35)).tolist() == [12, 30]
    assert pick(logits, (10, 35), point="median").tolist() == [15, 30]
    assert pick(logits, (10, 35), temperature=1.0, point="median",
                generator=torch.Generator().manual_seed(0)).min() >= 10  # sampling ignores the point
