"""Evaluating a text or chat source: perplexity and bits per byte on its held-out split, over the
tokens training puts a loss on (a document's text; a chat's assistant turns)."""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any

import numpy as np
import torch

from gato_mini.agent.eval_common import SourceReport, source_entry, trained_source
from gato_mini.data.sequence import TokenSequence
from gato_mini.data.sources import KINDS
from gato_mini.data.windows import collate
from gato_mini.errors import GatoError
from gato_mini.model.model import GatoModel
from gato_mini.tokenizers.text import TextTokenizer


def evaluate_text(model: GatoModel, tokenizer: TextTokenizer, trained: dict[str, Any], name: str,
                  progress: Any = None, batch_size: int = 8) -> SourceReport:
    """Perplexity on the held-out split of a text or chat source: ``exp`` of the mean loss over the
    tokens training puts a loss on (a document's text; a chat's assistant turns)."""
    entry = source_entry(trained, name)
    kind, cfg = entry["kind"], model.cfg
    if kind not in KINDS or KINDS[kind].group != "text":
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
    return report
