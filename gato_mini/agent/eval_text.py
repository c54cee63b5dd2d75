"""Evaluating a text or chat source: perplexity and bits per byte on its held-out split, over the
tokens training puts a loss on (a document's text; a chat's assistant turns). A chat source's replies
are scored too: the model answers every assistant turn of the held-out dialogues (as ``gato-mini chat``
decodes, :data:`~gato_mini.agent.prompting.CHAT_SAMPLING`), each reply read against the reference
reply by unigram F1 (the ConvAI2 convention: lower case, no punctuation or articles) and by the share
of its words that are words of the training dialogues (a reply of real words, or invented ones)."""

from __future__ import annotations

import math
import re
import string
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gato_mini.agent.eval_common import (
    EvalOptions,
    Evaluation,
    SourceReport,
    resolve_evaluation,
    source_entry,
    trained_source,
)
from gato_mini.agent.prompting import CHAT_SAMPLING, chat_replies
from gato_mini.data.sequence import TokenSequence
from gato_mini.data.source import split_items
from gato_mini.data.sources import Chats
from gato_mini.data.windows import collate
from gato_mini.errors import GatoError
from gato_mini.model.generate import Sampling
from gato_mini.model.model import GatoModel
from gato_mini.reports.report import table_cell
from gato_mini.tokenizers.text import TextTokenizer

_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def reply_words(text: str) -> list[str]:
    """The words of a reply as ConvAI2's F1 reads them: lower case, punctuation and articles removed."""
    return _ARTICLES.sub(" ", _PUNCTUATION.sub(" ", text.lower())).split()


def unigram_f1(reply: str, reference: str) -> float:
    """Unigram F1 of a reply against its reference (ConvAI2): the harmonic mean of the shares of the
    reply's and of the reference's words they have in common, counted with multiplicity; 0 when either
    has no word."""
    a, b = reply_words(reply), reply_words(reference)
    common = sum((Counter(a) & Counter(b)).values())
    if not a or not b or not common:
        return 0.0
    precision, recall = common / len(a), common / len(b)
    return 2 * precision * recall / (precision + recall)


def real_word_share(replies: list[str], vocabulary: set[str]) -> float | None:
    """The share of the replies' words (all replies together) that are in ``vocabulary``; None when the
    replies hold no word."""
    words = [w for r in replies for w in reply_words(r)]
    return sum(w in vocabulary for w in words) / len(words) if words else None


def reply_turns(dialogues: list[tuple[str, list[dict[str, str]]]]
                ) -> list[tuple[str, list[dict[str, str]], str]]:
    """(key, the conversation before an assistant turn, that turn's text) for every assistant turn that
    follows a user turn."""
    out = []
    for key, msgs in dialogues:
        for k, m in enumerate(msgs):
            if m["role"] == "assistant" and k > 0 and msgs[k - 1]["role"] == "user":
                out.append((f"{key}#{k}", list(msgs[:k]), m["content"]))
    return out


def score_replies(model: GatoModel, tokenizer: TextTokenizer, source: Chats, val_fraction: float,
                  sampling: Sampling = CHAT_SAMPLING, limit: int = 0, samples: int = 8) -> dict[str, Any]:
    """The model's replies to the held-out dialogues of a chat source (every assistant turn, or the first
    ``limit``), scored: mean unigram F1 against the reference replies, the share of reply words that
    are words of the training dialogues, the mean reply length in words, and the first ``samples``."""
    dialogues = source.chats(Counter())
    turns = reply_turns(split_items(dialogues, "val", val_fraction))
    if limit:
        turns = turns[:limit]
    if not turns:
        raise GatoError(f"{source.name} has no held-out assistant turn to reply to")
    vocabulary = {w for _, msgs in split_items(dialogues, "train", val_fraction)
                  for m in msgs for w in reply_words(m["content"])}
    replies = chat_replies(model, tokenizer, [conv for _, conv, _ in turns], sampling)
    f1 = [unigram_f1(r, ref) for r, (_, _, ref) in zip(replies, turns, strict=True)]
    return {"decoding": sampling.named(), "replies": len(replies), "f1": float(np.mean(f1)),
            "real_words": real_word_share(replies, vocabulary),
            "words_per_reply": float(np.mean([len(reply_words(r)) for r in replies])),
            "samples": [{"key": key, "prompt": conv[-1]["content"], "reply": r, "reference": ref,
                         "f1": round(f, 3)}
                        for (key, conv, ref), r, f in list(zip(turns, replies, f1, strict=True))[:samples]]}


def evaluate_text(model: GatoModel, tokenizer: TextTokenizer, trained: dict[str, Any], name: str,
                  progress: Any = None, batch_size: int = 8, options: EvalOptions | None = None
                  ) -> SourceReport:
    """Perplexity on the held-out split of a text or chat source: ``exp`` of the mean loss over the
    tokens training puts a loss on (a document's text; a chat's assistant turns); a chat source's
    replies scored too (:func:`score_replies`; ``options.episodes``: how many, 0 every held-out turn)."""
    entry = source_entry(trained, name)
    kind, cfg = entry["kind"], model.cfg
    if not isinstance(resolve_evaluation(kind), TextEvaluation):
        raise GatoError(f"{name}: cannot measure perplexity on a {kind!r} source")
    source = trained_source(entry, name)
    t0 = time.perf_counter()
    windows: list[TokenSequence] = []
    for _, seq in source.units("val", cfg, tokenizer, entry.get("val_fraction", 0.05), Counter()):
        # Windows overlap by one token, so that every token after the first is predicted once.
        for a in range(0, max(len(seq) - 1, 1), cfg.block_size - 1):  # text only: no patches to carry
            b = min(a + cfg.block_size, len(seq))
            windows.append(TokenSequence(seq.tokens[a:b], seq.targets[a:b], seq.local_pos[a:b],
                                         seq.patches[:0], seq.patch_pos[:0], np.zeros(1, np.int32)))
    if not windows:
        raise GatoError(f"{name} has no held-out text")
    device = next(model.parameters()).device
    nll, count, n_bytes = 0.0, 0, 0
    byte_len = torch.from_numpy(tokenizer.byte_lengths())
    model.eval()
    for k in range(0, len(windows), batch_size):
        batch = collate(list(enumerate(windows[k:k + batch_size])), cfg)
        batch = {key: v.to(device) for key, v in batch.items() if key != "source"}
        with torch.no_grad():
            loss = model(**batch, reduction="none")
        nll += float(loss.double().sum())
        count += int(batch["loss_mask"].sum())
        scored = batch["targets"][batch["loss_mask"]].cpu()
        text = scored[scored < len(byte_len)]
        n_bytes += int(byte_len[text].sum())
        if progress is not None:
            progress(None)
    report = SourceReport(name, [], None, None, None, time.perf_counter() - t0, 0)
    # Bits per byte compare runs with other vocabularies: the same total loss, per UTF-8 byte of the
    # scored text (end-of-turn tokens add their loss but no bytes).
    report.extra.update({"perplexity": math.exp(nll / max(count, 1)), "loss": nll / max(count, 1),
                         "bits_per_byte": nll / math.log(2) / max(n_bytes, 1), "bytes": n_bytes,
                         "tokens": count, "windows": len(windows)})
    if isinstance(source, Chats):
        limit = options.episodes if options is not None and options.episodes else 0
        report.extra["chat"] = score_replies(model, tokenizer, source, entry.get("val_fraction", 0.05),
                                             limit=limit)
        report.seconds = time.perf_counter() - t0
    return report


def text_text(summary: dict[str, Any]) -> str:
    """A text or chat source's metrics in one phrase: held-out perplexity and bits per byte and, for a
    chat source, its replies' unigram F1 and real-word share with the decoding named."""
    bpb = f", {summary['bits_per_byte']:.3f} bits/byte" if summary.get("bits_per_byte") is not None else ""
    text = f"perplexity {summary['perplexity']:.2f}{bpb} ({summary['tokens']:,} tokens)"
    chat = summary.get("chat")
    if not chat:
        return text
    real = "-" if chat.get("real_words") is None else f"{100 * chat['real_words']:.0f}%"
    return (f"{text}; replies F1 {chat['f1']:.3f}, {real} real words ({chat['replies']} held-out turns, "
            f"{chat['decoding']})")


class TextEvaluation(Evaluation):
    """A text or chat source: held-out perplexity (:func:`evaluate_text`) and, for a chat, its replies
    scored; asked from Python with ``Gato.chat``."""

    name, label = "text", "text"
    api = "chat"
    compared = ("perplexity", False, 1.0)

    def evaluate(self, model: GatoModel, tokenizer: TextTokenizer, trained: dict[str, Any], name: str,
                 options: EvalOptions, progress: Any = None) -> SourceReport:
        return evaluate_text(model, tokenizer, trained, name, progress, options=options)

    def headline(self, summary: dict[str, Any]) -> dict[str, Any]:
        out = {k: summary[k] for k in ("perplexity", "bits_per_byte") if summary.get(k) is not None}
        if summary.get("chat"):
            out["chat"] = {k: summary["chat"][k] for k in ("f1", "real_words", "decoding")}
        return out

    def metrics(self, summary: dict[str, Any]) -> str:
        return text_text(summary)

    def cells(self, summary: dict[str, Any]) -> dict[str, str]:
        return {**super().cells(summary), "kind": "chat" if summary.get("chat") else "text"}

    def section(self, summary: dict[str, Any], out: Path) -> list[str]:
        """A chat source's held-out turns: the model's reply beside the reference reply."""
        chat = summary.get("chat") or {}
        replies = chat.get("samples") or []
        if not replies:
            return []
        return [f"### {summary['source']}: replies", "",
                f"Held-out {summary['source']} turns, the model's reply against the reference reply "
                f"(unigram F1; {chat['decoding']}):", "",
                "| prompt | reply | reference | F1 |", "|---|---|---|---|",
                *(f"| {table_cell(r['prompt'])} | {table_cell(r['reply'])} | {table_cell(r['reference'])} "
                  f"| {r['f1']:.2f} |" for r in replies), ""]
