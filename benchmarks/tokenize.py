"""Tokenizer throughput: continuous values/s, 84x84 frames patchified/s, text MB/s.

Each rate comes with a baseline measured in the same run, so the ratio holds
on a noisy shared machine: a plain copy of the same bytes (how close the
tokenizer is to memory speed) and, for text, one-at-a-time vs batched encoding.

    python benchmarks/tokenize.py [--out FILE]
"""

from __future__ import annotations

import os
import sys

# This file's name shadows the standard library's ``tokenize`` (which numpy's
# imports need): move the script's folder from the front of sys.path to the end.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import argparse  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import best_rate, write  # noqa: E402

from gato_mini.config import GatoConfig  # noqa: E402
from gato_mini.tokenizers import TextTokenizer, continuous, image  # noqa: E402


def pydoc_text() -> list[str]:
    """Python's help topics: always installed, about 0.5 MB of English and code."""
    from pydoc_data.topics import topics

    return [topics[k] for k in sorted(topics)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="JSON file to write (default benchmarks/results/tokenize.json)")
    args = parser.parse_args()
    cfg = GatoConfig.from_name("tiny")
    rng = np.random.default_rng(0)

    n = 1_000_000
    values = rng.normal(0, 0.5, n)
    big = rng.normal(0, 30, n)
    cont = {
        "values_per_s_direct_numpy": best_rate(lambda: continuous.encode(values, cfg), n),
        "values_per_s_mu_law_numpy": best_rate(lambda: continuous.encode(big, cfg, mu_law_field=True), n),
        "values_per_s_mu_law_torch": best_rate(
            lambda: continuous.encode(torch.from_numpy(big), cfg, mu_law_field=True), n),
        "baseline_copy_values_per_s": best_rate(lambda: values.copy(), n),
    }
    cont["copy_over_mu_law_ratio"] = cont["baseline_copy_values_per_s"] / cont["values_per_s_mu_law_numpy"]

    # The codec that runs on the data path and in the agent: uint8 frames -> uint8 patches.
    frames = rng.integers(0, 256, (256, 84, 84, 3), dtype=np.uint8)
    gray = frames[..., :1].copy()  # (N, H, W, 1)
    gray_cfg = GatoConfig.from_name("tiny", image_channels=1)
    atari = np.ascontiguousarray(np.resize(frames[:64], (64, 210, 160, 3)))  # full-size frames to shrink
    img = {
        "codec": "gato_mini.tokenizers.image.encode (uint8 -> uint8 patches, as shards and the agent use it)",
        "frames_per_s_rgb_84x84": best_rate(lambda: image.encode(frames, cfg), len(frames)),
        "frames_per_s_gray_84x84_to_rgb_model": best_rate(lambda: image.encode(gray, cfg), len(frames)),
        "frames_per_s_gray_84x84_gray_model": best_rate(lambda: image.encode(gray, gray_cfg), len(frames)),
        "frames_per_s_rgb_210x160_resized_80x80": best_rate(lambda: image.encode(atari, cfg, size=(80, 80)),
                                                            len(atari)),
        "baseline_copy_frames_per_s": best_rate(lambda: frames.copy(), len(frames)),
        "patches_per_frame": int(image.encode(frames[0], cfg).shape[0]),
    }
    img["copy_over_rgb_ratio"] = img["baseline_copy_frames_per_s"] / img["frames_per_s_rgb_84x84"]

    docs = pydoc_text()
    mb = sum(len(d.encode()) for d in docs) / 1e6
    tok = TextTokenizer.train(docs, vocab_size=cfg.text_vocab_size)
    ids = sum(len(x) for x in tok.encode_batch(docs))
    text = {
        "corpus": "pydoc_data.topics",
        "corpus_mb": round(mb, 3),
        "text_tokens": tok.n_text,
        "bytes_per_token": round(mb * 1e6 / ids, 3),
        "mb_per_s_batched": best_rate(lambda: tok.encode_batch(docs), mb, repeats=3),
        "mb_per_s_one_at_a_time": best_rate(lambda: [tok.encode(d) for d in docs], mb, repeats=3),
    }
    text["batched_over_single_ratio"] = text["mb_per_s_batched"] / text["mb_per_s_one_at_a_time"]
    write("tokenize", {"continuous": cont, "image": img, "text": text}, args.out)


if __name__ == "__main__":
    main()
