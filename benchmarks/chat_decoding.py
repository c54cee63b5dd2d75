"""How a chat reply is best decoded: greedy against sampled (temperature, top-p) with and without the
repetition rule, each scored on a model's held-out chat turns by unigram F1 against the reference reply
and by the share of real words (the numbers ``gato-mini eval`` reports for a chat source). A sampled
decoding is scored over several seeds (mean and range). The default chat decoding
(``gato_mini.agent.prompting.CHAT_SAMPLING``) is the one this table favours.

    python benchmarks/chat_decoding.py --model runs/quickstart/run/model [--source chat-chatterbot]

About a minute on the 2-core machine of docs/speed.md for the quickstart's model. Writes
``benchmarks/results/chat_decoding.json`` (or ``--json``) and prints a markdown table.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import argparse  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402

from _common import write  # noqa: E402

#: (temperature, top-p, no_repeat) of each decoding compared; a temperature above 0 is sampled.
DECODINGS = [(0.0, None, 0), (0.0, None, 2), (0.0, None, 3), (0.5, 0.9, 0), (0.5, 0.9, 3), (0.7, 0.9, 0),
             (0.7, 0.9, 3), (1.0, None, 0)]


def main() -> None:
    from gato_mini.agent.eval_common import source_entry, trained_source
    from gato_mini.agent.eval_text import score_replies
    from gato_mini.agent.prompting import CHAT_SAMPLING
    from gato_mini.data.sources import Chats
    from gato_mini.errors import GatoError
    from gato_mini.model.export import load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="an exported model folder trained on a chat source")
    ap.add_argument("--source", default="chat-chatterbot", help="its chat source (default: chat-chatterbot)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per sampled decoding (default: 3)")
    ap.add_argument("--json", default=None,
                    help="result file (default: benchmarks/results/chat_decoding.json)")
    args = ap.parse_args()
    try:
        model, tok, trained = load_model(args.model)
        entry = source_entry(trained, args.source)
        source = trained_source(entry, args.source)
        if not isinstance(source, Chats):
            raise GatoError(f"{args.source} is a {entry.get('kind')!r} source, not a chat source")
    except GatoError as exc:
        print(f"benchmarks/chat_decoding.py: error: {exc}", file=sys.stderr)
        sys.exit(2)
    rows, results = [], []
    for temperature, top_p, no_repeat in DECODINGS:
        sampled = temperature > 0
        runs = []
        t0 = time.perf_counter()
        for seed in range(args.seeds if sampled else 1):
            sampling = replace(CHAT_SAMPLING, temperature=temperature, top_p=top_p, no_repeat=no_repeat,
                               seed=seed if sampled else None)
            runs.append(score_replies(model, tok, source, entry.get("val_fraction", 0.05), sampling))
        f1 = [r["f1"] for r in runs]
        real = [r["real_words"] or 0.0 for r in runs]
        words = [r["words_per_reply"] for r in runs]
        result = {"decoding": runs[0]["decoding"], "temperature": temperature, "top_p": top_p,
                  "no_repeat": no_repeat, "replies": runs[0]["replies"], "seeds": len(runs),
                  "f1": sum(f1) / len(f1), "f1_range": [min(f1), max(f1)],
                  "real_words": sum(real) / len(real), "real_words_range": [min(real), max(real)],
                  "words_per_reply": sum(words) / len(words),
                  "seconds": round(time.perf_counter() - t0, 1), "sample": runs[0]["samples"][:3]}
        results.append(result)
        span = f" [{min(f1):.3f}, {max(f1):.3f}]" if len(f1) > 1 else ""
        rows.append(f"| {result['decoding']} | {result['f1']:.3f}{span} | "
                    f"{100 * result['real_words']:.1f}% | {result['words_per_reply']:.1f} |")
    best = max(results, key=lambda r: (round(r["f1"], 3), r["real_words"]))
    write("chat_decoding", {"model": args.model, "source": args.source, "decodings": results,
                            "best": best["decoding"], "default": CHAT_SAMPLING.named()}, args.json)
    turns = results[0]["replies"]
    print(f"| decoding ({turns} held-out turns) | unigram F1 | real words | words per reply |")
    print("|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nbest by F1 (then real words): {best['decoding']}; the default: {CHAT_SAMPLING.named()}")


if __name__ == "__main__":
    main()
