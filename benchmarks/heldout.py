"""Held-out loss per source of trained models, on one set of validation windows for all of them.

The A/B of learning settings at reduced scale (docs/learning.md, "Session 13"): train each variant
on the same prepared data (``gato-mini train --config ...``), then compare their models here on
the same held-out windows (``--windows`` per source, drawn once from the data's validation shards
with ``--seed``). Loss is nats per target token (the training loss, on held-out data), per source;
the first model is the baseline and each other gets its ratio to it.

    python benchmarks/heldout.py --config RUN/config.yaml --model A/model --model B/model [--windows 32]
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import argparse  # noqa: E402

import torch  # noqa: E402
from _common import write  # noqa: E402

from gato_mini.data.datamodule import ValWindows, open_sampler  # noqa: E402
from gato_mini.data.windows import collate  # noqa: E402
from gato_mini.errors import GatoError  # noqa: E402
from gato_mini.model.export import load_model  # noqa: E402
from gato_mini.train.config import load_run_config  # noqa: E402
from gato_mini.train.lit import MODEL_KEYS, source_sums  # noqa: E402


def heldout_losses(model: torch.nn.Module, names: list[str], windows: ValWindows, batch: int = 16
                   ) -> dict[str, float]:
    """Mean loss per target token of each source (``names``, by source id) over ``windows``."""
    sums, counts = torch.zeros(len(names)), torch.zeros(len(names))
    with torch.no_grad():
        for i in range(0, len(windows), batch):
            b = collate([windows[j] for j in range(i, min(i + batch, len(windows)))], model.cfg)
            per = model(**{k: b[k] for k in MODEL_KEYS}, targets=b["targets"], loss_mask=b["loss_mask"],
                        reduction="none")
            s, n = source_sums(per, b["loss_mask"], b["source"], len(names))
            sums, counts = sums + s, counts + n
    return {name: round(float(sums[k] / counts[k]), 4) for k, name in enumerate(names) if counts[k] > 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="a run's config.yaml: its data root and sources")
    parser.add_argument("--model", action="append", required=True, help="a model folder (repeat)")
    parser.add_argument("--windows", type=int, default=32, help="held-out windows per source")
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.windows < 1:
        parser.error(f"--windows must be at least 1, got {args.windows}")
    try:
        run = load_run_config(args.config)
        sampler = open_sampler(run.data, run.model, "val")
        windows = ValWindows(sampler, args.windows, seed=args.seed)
        losses = {folder: heldout_losses(load_model(folder)[0], [s.name for s in sampler.sources], windows)
                  for folder in args.model}
    except GatoError as exc:
        parser.error(str(exc))  # one line, exit 2
    base = losses[args.model[0]]
    ratios = {folder: {k: round(v / base[k], 3) for k, v in loss.items() if k in base}
              for folder, loss in losses.items() if folder != args.model[0]}
    write("heldout", {"config": args.config, "windows_per_source": args.windows, "seed": args.seed,
                      "loss": losses, "over_first": ratios,
                      "note": "nats per target token on held-out windows; over_first < 1 is better"},
          args.out)


if __name__ == "__main__":
    main()
