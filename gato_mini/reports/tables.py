"""Terminal tables for the informational commands (``tokens``, ``sizes``)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from gato_mini.config import NAMED_SIZES, SPECIAL_TOKENS, GatoConfig
from gato_mini.tokenizers import TextTokenizer, Vocab

_WHAT = {
    "text": "text, byte-level BPE",
    "discrete": "discrete values 0..1023 (buttons, discrete observations)",
    "continuous": "continuous values, 1024 uniform bins over [-1, 1] (mu-law fields first)",
    "special": "special tokens",
}


def print_token_space(size: str, tokenizer_path: str | None = None, console: Console | None = None) -> None:
    """Print the id ranges of a named size (and how many text ids a tokenizer uses)."""
    cfg = GatoConfig.from_name(size)
    text = TextTokenizer.load(tokenizer_path, cfg) if tokenizer_path else None
    vocab = Vocab(cfg, text)
    table = Table(title=f"gato-mini token space ({size}): {cfg.vocab_size} ids, "
                        f"embedding table padded to {cfg.padded_vocab_size}")
    for col in ("ids", "count", "what"):
        table.add_column(col)
    for r in vocab.ranges:
        what = _WHAT[r.kind]
        if r.kind == "text" and text is not None:
            what += f" ({text.n_text} used by {tokenizer_path})"
        table.add_row(f"[{r.start}, {r.stop})", str(len(r)), what)
    for k, name in enumerate(SPECIAL_TOKENS):
        table.add_row(str(cfg.special_offset + k), "1", f"  {name}")
    (console or Console()).print(table)


def print_sizes(console: Console | None = None) -> None:
    """Print every named size with its shape and parameter count."""
    table = Table(title="gato-mini model sizes")
    for col in ("name", "layers", "width", "heads", "FFN (GEGLU)", "context", "text vocab", "params"):
        table.add_column(col, justify="right" if col != "name" else "left", no_wrap=True)
    for name in NAMED_SIZES:
        cfg = GatoConfig.from_name(name)
        table.add_row(name, str(cfg.n_layer), str(cfg.n_embd), str(cfg.n_head),
                      str(cfg.intermediate_size), str(cfg.block_size), str(cfg.text_vocab_size),
                      f"{cfg.num_params() / 1e6:.1f}M")
    (console or Console()).print(table)
