"""Generation, captions and chat: cache parity, stopping, seeded sampling, the chat template, the commands."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gato_mini.agent.prompting import (
    CHAT_SAMPLING,
    ChatSession,
    Sampling,
    caption,
    chat_replies,
    stream_caption,
    text_mask,
)
from gato_mini.cli import build_parser
from gato_mini.cli.model import sampling_flags
from gato_mini.config import FAITHFUL, GatoConfig
from gato_mini.data.sequence import (
    TokenSequence,
    caption_prompt_sequence,
    chat_prompt,
    chat_sequence,
    flat_sequence,
)
from gato_mini.errors import GatoError
from gato_mini.model import GatoModel
from gato_mini.model.export import export_model
from gato_mini.model.generate import filter_logits, generate, repeated_ngram_ids
from tests._models import LogitLog, assert_same_logits, loud_model

EXE = shutil.which("gato-mini") or str(Path(sys.executable).parent / "gato-mini")
# Gato's own choices (FAITHFUL): the decoding fixture was recorded from models built with them.
CFG = GatoConfig.from_name("tiny", n_layer=2, n_embd=64, n_head=4, block_size=96, text_vocab_size=400,
                           **FAITHFUL)


@pytest.fixture(scope="module")
def model() -> GatoModel:
    torch.manual_seed(0)
    return GatoModel(CFG).eval()


def _image() -> np.ndarray:
    return (np.random.default_rng(0).random((40, 56, 3)) * 255).astype(np.uint8)


def test_cached_greedy_equals_uncached(text_tokenizer) -> None:
    model = loud_model(CFG, std=0.15)  # its tokens depend on the context, unlike an untrained model's
    prompt = caption_prompt_sequence(_image(), CFG)
    allowed = text_mask(model, text_tokenizer, "<|eos|>")
    with LogitLog.recording() as cached:
        a = list(generate(model, prompt, Sampling(30), allowed, use_cache=True))
    with LogitLog.recording() as plain:
        b = list(generate(model, prompt, Sampling(30), allowed, use_cache=False))
    assert a == b and len(a) == 30
    assert len(set(a)) >= 5, a
    assert_same_logits(cached, plain)
    assert all(t < text_tokenizer.n_text or t == CFG.special_id("<|eos|>") for t in a)


def test_stop_tokens_limits_and_seeds(model, text_tokenizer) -> None:
    prompt = TokenSequence.empty(CFG)
    prompt.tokens = np.array([CFG.special_id("<|bos|>"), 5, 6, 7], np.int32)
    prompt.targets, prompt.local_pos = np.zeros(4, bool), np.full(4, -1, np.int16)
    greedy = list(generate(model, prompt, Sampling(12)))
    assert len(greedy) == 12
    stop = greedy[3]
    stopped = list(generate(model, prompt, Sampling(12), stop_id=stop))
    assert stopped == greedy[:greedy.index(stop) + 1]  # the stop token ends it (and is yielded)
    assert len(list(generate(model, prompt, Sampling(500)))) == CFG.block_size - 4  # the context ends it
    s1 = list(generate(model, prompt, Sampling(20, 1.0, seed=3)))
    s2 = list(generate(model, prompt, Sampling(20, 1.0, seed=3)))
    s3 = list(generate(model, prompt, Sampling(20, 1.0, seed=4)))
    assert s1 == s2 and s1 != s3
    assert list(generate(model, prompt, Sampling(12, 1.0, top_k=1, seed=9))) == greedy
    assert list(generate(model, prompt, Sampling(12, 0.7, top_p=1e-6, seed=9))) == greedy


def test_filter_logits() -> None:
    logits = torch.tensor([1.0, 3.0, 2.0, 0.0])
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [True, False, False, True]
    kept = ~torch.isinf(filter_logits(logits, top_p=0.7))
    assert kept.tolist() == [False, True, True, False]


def test_chat_template_is_the_training_layout(model, text_tokenizer) -> None:
    turns = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi fox"},
             {"role": "assistant", "content": "the dog"}, {"role": "user", "content": "and?"}]
    prompt = chat_prompt(turns, CFG, text_tokenizer)
    trained = chat_sequence(turns + [{"role": "assistant", "content": "lazy"}], CFG, text_tokenizer)
    assert prompt.tolist() == trained.tokens[:len(prompt)].tolist()
    assert prompt[-1] == CFG.special_id("<|assistant|>")


def test_chat_session_keeps_turns_and_drops_the_oldest(model, text_tokenizer) -> None:
    session = ChatSession(model, text_tokenizer, "be brief", Sampling(max_tokens=8))
    for k in range(12):
        session.reply(f"the quick brown fox number {k}")
    assert session.messages[-2]["content"] == "the quick brown fox number 11"
    assert len(chat_prompt(session.messages, CFG, text_tokenizer)) < CFG.block_size
    assert len(session.messages) < 24  # old turns were dropped to fit the context
    with pytest.raises(GatoError, match="empty message"):
        session.reply("   ")


def test_repeated_ngram_ids_bar_what_would_repeat_an_ngram() -> None:
    assert repeated_ngram_ids([5, 6, 7, 5, 6], 3) == [7]  # "5 6 7" seen: after "5 6", 7 is barred
    assert sorted(repeated_ngram_ids([1, 2, 1, 3, 1], 2)) == [2, 3]
    assert repeated_ngram_ids([4, 4, 9], 1) == [4, 4, 9] or set(repeated_ngram_ids([4, 4, 9], 1)) == {4, 9}
    assert repeated_ngram_ids([1, 2], 3) == [] and repeated_ngram_ids([1, 2, 1], 0) == []


def test_batched_chat_replies_are_one_session_reply_each_and_a_seed_repeats(model, text_tokenizer) -> None:
    """``chat_replies`` (eval's scored replies, several conversations decoded at once) gives each
    conversation the reply a fresh ``ChatSession`` gives; sampled with a seed, the same replies twice;
    with the repetition rule, no reply repeats a token pair."""
    conversations = [[{"role": "user", "content": text}] for text in ("hi fox", "what is a dog?", "and?")]
    greedy = Sampling(max_tokens=12)
    batched = chat_replies(model, text_tokenizer, conversations, greedy, rows=2)
    alone = [ChatSession(model, text_tokenizer, sampling=greedy).reply(c[0]["content"])
             for c in conversations]
    assert batched == alone
    sampled = Sampling(max_tokens=12, temperature=1.0, seed=3)
    assert chat_replies(model, text_tokenizer, conversations, sampled) == \
        chat_replies(model, text_tokenizer, conversations, sampled)
    loud = loud_model(CFG)
    ids = chat_prompt(conversations[1], CFG, text_tokenizer)
    prompt = flat_sequence(ids, np.zeros(len(ids), bool), CFG)
    mask = text_mask(loud, text_tokenizer, "<|end|>")
    plain = list(generate(loud, prompt, Sampling(max_tokens=40), mask))
    assert len(set(zip(plain, plain[1:], strict=False))) < len(plain) - 1  # greedy alone repeats itself
    ruled = list(generate(loud, prompt, Sampling(max_tokens=40, no_repeat=2), mask))
    pairs = list(zip(ruled, ruled[1:], strict=False))
    assert len(ruled) == 40 and len(pairs) == len(set(pairs))
    assert "no 2-gram repeated" in Sampling(no_repeat=2).named()
    assert CHAT_SAMPLING.named().startswith("greedy")
    args = build_parser().parse_args(["chat", "--model", "m"])
    assert replace(sampling_flags(args), seed=None) == replace(CHAT_SAMPLING, seed=None)  # one default


def test_caption_function(model, text_tokenizer) -> None:
    text = caption(model, text_tokenizer, _image(), Sampling(max_tokens=6))
    assert isinstance(text, str)
    assert text == caption(model, text_tokenizer, _image(), Sampling(max_tokens=6), use_cache=False)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, model, text_tokenizer) -> Path:
    tmp = tmp_path_factory.mktemp("genmodel")
    text_tokenizer.save(tmp / "tok.json")
    export_model(tmp / "model", model, tmp / "tok.json", {"sources": {}})
    Image.fromarray(_image()).save(tmp / "scene.png")
    (tmp / "notes.txt").write_text("not an image")
    return tmp


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, input=stdin, timeout=300)


def test_caption_command(model_dir) -> None:
    model, scene = str(model_dir / "model"), str(model_dir / "scene.png")
    r = _cli("caption", "--model", model, scene, "--max-tokens", "5")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"{model_dir / 'scene.png'}: ")
    r = _cli("caption", "--model", str(model_dir / "model"), str(model_dir / "scene.png"), "--samples", "2",
             "--max-tokens", "5")
    assert r.returncode == 0 and r.stdout.count("scene.png [") == 2
    bad_inputs = ((model_dir / "nope.png", "image not found"), (model_dir / "notes.txt", "cannot read image"))
    for bad, message in bad_inputs:
        r = _cli("caption", "--model", model, str(bad))
        assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_chat_command_through_a_pipe(model_dir) -> None:
    r = _cli("chat", "--model", str(model_dir / "model"), "--max-tokens", "6", "--system", "be brief",
             stdin="hello there\n\nwhat is a fox?\n/reset\nand a dog?\n/quit\nnever read\n")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 4 and lines[2] == "(conversation reset)", lines  # 3 replies + the reset notice
    assert "empty message" in r.stderr  # the blank line is refused; the session goes on
    r = _cli("chat", "--model", str(model_dir / "nothing"))
    assert r.returncode == 2 and "model folder not found" in r.stderr


def test_decoding_gives_the_same_tokens_as_before_the_engine() -> None:
    """The caption command, the caption env (an Agent with a text action) and chat give, for the same
    seeds, the very tokens they gave before they shared one decoding engine (recorded from that code in
    tests/fixtures/decoding-before-the-engine.json)."""
    import json

    from gato_mini.agent.agent import Agent, AgentOptions
    from gato_mini.fields import FieldSpec
    from gato_mini.tokenizers import TextTokenizer
    from tests.conftest import CORPUS

    before = json.loads((Path(__file__).parent / "fixtures" / "decoding-before-the-engine.json").read_text())
    tok = TextTokenizer.train(CORPUS, vocab_size=400)
    model = loud_model(CFG, std=0.15)
    rng = np.random.default_rng(0)
    imgs = [(rng.random((40, 56, 3)) * 255).astype(np.uint8) for _ in range(3)]
    assert [list(stream_caption(model, tok, im, Sampling(max_tokens=20))) for im in imgs] \
        == before["caption_greedy"]
    sampled = Sampling(max_tokens=20, temperature=1.0, top_k=50, seed=7)
    assert [list(stream_caption(model, tok, im, sampled)) for im in imgs] == before["caption_sampled"]
    agent = Agent(model, {"image": FieldSpec("image", (40, 56, 3))}, FieldSpec("text", ()), 3, tok, None,
                  AgentOptions(Sampling(max_tokens=20, seed=3)))
    got = agent.act({i: {"image": im} for i, im in enumerate(imgs)})
    assert {str(k): v for k, v in got.items()} == before["caption_env_t0.0"]
    chat = ChatSession(model, tok, system="be brief",
                       sampling=Sampling(max_tokens=16, temperature=0.8, top_p=0.9, seed=11))
    assert [chat.reply("hello there"), chat.reply("what is a fox?")] == before["chat"]
    assert [ChatSession(model, tok, sampling=Sampling(max_tokens=16)).reply("hello there")] \
        == before["chat_greedy"]


def test_engine_rows_read_in_place_or_gathered_equal_recomputation(model) -> None:
    """Rows fed together as a run of consecutive cache rows (read in place, a slice) or as any other
    set (gathered), in any order, give the logits of recomputing each row's whole context."""
    from gato_mini.data.sequence import flat_sequence
    from gato_mini.model.generate import Engine

    rng = np.random.default_rng(0)
    cached, plain = Engine(model, 4), Engine(model, 4, use_cache=False)

    def chunk(n: int) -> TokenSequence:
        ids = rng.integers(0, model.cfg.text_vocab_size, n)
        return flat_sequence(ids, np.zeros(n, bool), model.cfg)

    feeds = (([0, 1, 2, 3], 5), ([2, 3], 3), ([3, 0], 4), ([1, 2], 2), ([0, 1, 2, 3], 1), ([3, 1, 0], 2))
    for rows, n in feeds:
        seqs = [chunk(n) for _ in rows]
        a, b = cached.feed(rows, seqs), plain.feed(rows, seqs)
        assert torch.allclose(a, b, atol=1e-4), (rows, (a - b).abs().max())
    cached.close()
