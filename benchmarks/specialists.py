"""What one set of weights costs: a specialist beside every source of a generalist (Gato's central claim,
measured at this scale).

For each finished quickstart folder given (a generalist: ``gato-mini quickstart --out DIR``), every source
it evaluates gets a specialist: the same model config trained on that source alone (a task together with
its DAgger rounds' episodes) for as many target tokens as the generalist trained on it (its
``sources.json`` counts them), with the same schedule shape (``train.target_tokens``: warmup, the peak
rate, a cosine decay over the last share), the same tokenizer and shards, the same seed, and evaluated as
the quickstart evaluated the generalist (held-out seeds, images and text, the same references). The
table and the JSON hold, per source, the generalist's score, the specialist's and their ratio (the share
of the specialist's score the generalist keeps; for perplexity the specialist's over the generalist's),
each with its range over the runs, and the optimizer steps each took: equal target tokens are not equal
steps (a text window is nearly all targets, an Atari window a few actions among its patches), so a
text specialist takes its tokens in a tenth of the generalist's steps.

    python benchmarks/specialists.py --generalist runs/qs-1 --generalist runs/qs-2 --out runs/specialists

Run time on the 2-core machine of docs/speed.md: about the generalists' training minutes again plus two
minutes of evaluation per generalist (the specialists of one generalist train on its tokens in total;
about 17 minutes a run for the default quickstart). Specialists already trained under ``--out`` are
reused, so an interrupted benchmark goes on where it stopped. Writes ``benchmarks/results/specialists.json``
(or ``--json``) and prints the markdown table docs/learning.md shows. It runs outside the test suites.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import yaml  # noqa: E402
from _common import write  # noqa: E402

from gato_mini.errors import GatoError  # noqa: E402

#: The command beside this Python (a virtual environment's, whether or not it is on PATH).
EXE = shutil.which("gato-mini", path=os.path.dirname(sys.executable)) or "gato-mini"
#: A chat source is compared on its replies' F1 too.
CHAT_F1 = ("chat_f1", True, 100.0)


def specialist_plan(trained: dict[str, Any], members: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    """Per evaluated source, what its specialist trains on: ``members[name]`` (the training sources that
    are that source: itself and its DAgger rounds) with their weights, and the target tokens the
    generalist (``trained``: its ``sources.json``) trained on them together."""
    sources = trained["sources"]
    plan = {}
    for name, names in members.items():
        missing = [n for n in names if n not in sources]
        if missing:
            raise GatoError(f"the generalist was not trained on {', '.join(missing)}")
        uncounted = [n for n in names if "target_tokens" not in sources[n]]
        if uncounted:
            raise GatoError(f"the generalist's sources.json does not count the target tokens of "
                            f"{', '.join(uncounted)}: it was trained before they were counted; train it "
                            "again")
        plan[name] = {"sources": list(names),
                      "target_tokens": sum(int(sources[n]["target_tokens"]) for n in names)}
        if plan[name]["target_tokens"] <= 0:
            raise GatoError(f"the generalist trained on no target token of {name}")
    return plan


def specialist_config(run: dict[str, Any], names: list[str], tokens: int, generalist: Path, out: Path
                      ) -> dict[str, Any]:
    """The generalist's resolved run config (``run``) for a specialist of ``names``: only those sources
    (their weights kept), the generalist's tokenizer, sized in ``tokens`` target tokens, in ``out``."""
    cfg = json.loads(json.dumps(run))  # a deep copy
    cfg["data"]["sources"] = {n: cfg["data"]["sources"][n] for n in names}
    cfg["data"]["root"] = str(out / "data")
    cfg["data"]["tokenizer"] = str(generalist / "data" / "tokenizer.json")
    for key in ("minutes", "pause_minutes"):
        cfg["train"].pop(key, None)
    cfg["train"].update({"target_tokens": int(tokens), "out": str(out / "run")})
    cfg.setdefault("trainer", {}).pop("max_steps", None)
    return cfg


def link_shards(generalist: Path, names: list[str], out: Path) -> None:
    """The generalist's shards of ``names`` under ``out/data`` (hard links: nothing is tokenized again,
    and the generalist's folder is never written)."""
    for n in names:
        dst = out / "data" / "shards" / n
        if not dst.exists():
            shutil.copytree(generalist / "data" / "shards" / n, dst, copy_function=os.link)


def score(summary: dict[str, Any], metric: list[Any]) -> dict[str, float]:
    """The compared numbers of one source's eval summary (``metric``: its evaluation's
    ``Evaluation.compared``: summary key, higher is better, scale)."""
    key, _, scale = metric
    out = {key: summary[key] * scale} if summary.get(key) is not None else {}
    if summary.get("chat"):
        out[CHAT_F1[0]] = summary["chat"]["f1"] * CHAT_F1[2]
        if summary["chat"].get("real_words") is not None:
            out["chat_real_words"] = 100 * summary["chat"]["real_words"]
    return out


def ratio(gen: float, spec: float, higher: bool) -> float | None:
    """The share of the specialist's score the generalist keeps (None where the specialist scores
    nothing to keep: at or below the baseline)."""
    if higher:
        return gen / spec if spec > 0 else None
    return spec / gen if gen > 0 else None


def _quickstart(generalist: Path):  # noqa: ANN202 (a Quickstart)
    """The generalist's quickstart, rebuilt from its folder with the config it ran with (to evaluate a
    specialist as it evaluated the generalist)."""
    from gato_mini.quickstart import Quickstart

    argv = json.loads((generalist / "quickstart.json").read_text()).get("runs", [{}])[-1].get("argv", [])
    config = argv[argv.index("--config") + 1] if "--config" in argv else None
    return Quickstart(generalist, 20, config, progress=False)


def run_one(generalist: Path, out: Path) -> dict[str, Any]:
    """Train and evaluate the specialists of one generalist; their scores beside its own."""
    from gato_mini.agent.eval_common import source_evaluation, write_json
    from gato_mini.agent.evaluate import evaluate_sources
    from gato_mini.model.export import load_model, read_checkpoint

    missing = [f for f in ("quickstart.json", "eval.json", "run/config.yaml", "run/model/sources.json")
               if not (generalist / f).is_file()]
    if missing:
        raise GatoError(f"{generalist} holds no finished quickstart (no {missing[0]}): run `gato-mini "
                        f"quickstart --out {generalist}` to the end first")
    qs = _quickstart(generalist)
    trained = json.loads((generalist / "run" / "model" / "sources.json").read_text())
    evaluated = [name for name, _ in qs._eval_plan(trained)]
    rounds = len(qs.state.data.get("train", {}).get("dagger_rounds", []))
    dagger = qs.plan.dagger
    members = {name: [name] + ([dagger.source(name, k) for k in range(1, rounds + 1)]
                               if dagger and name in dagger.collect else []) for name in evaluated}
    plan = specialist_plan(trained, members)
    run = yaml.safe_load((generalist / "run" / "config.yaml").read_text())
    gen_evals = {s["source"]: s for s in json.loads((generalist / "eval.json").read_text())["sources"]}
    last = generalist / "run" / "checkpoints" / "last.ckpt"
    generalist_steps = read_checkpoint(last, mmap=True)["global_step"]
    rows = {}
    for name, spec in plan.items():
        folder = out / name
        model_dir = folder / "run" / "model"
        if not model_dir.is_dir():
            if (folder / "run").exists():
                shutil.rmtree(folder / "run")  # an unfinished specialist starts again
            link_shards(generalist, spec["sources"], folder)
            config = folder / "config.yaml"
            config.write_text(yaml.safe_dump(specialist_config(run, spec["sources"], spec["target_tokens"],
                                                               generalist, folder), sort_keys=False))
            print(f"specialist {name}: {', '.join(spec['sources'])}, {spec['target_tokens']:,} target tokens",
                  flush=True)
            code = subprocess.run([EXE, "train", "--config", str(config), "--no-progress"]).returncode
            if code:
                raise GatoError(f"training the {name} specialist failed (exit {code}); see above")
        model, tok, spec_trained = load_model(model_dir)
        options = dict(qs._eval_plan(spec_trained))[name]
        reports = evaluate_sources(model, tok, spec_trained,
                                   [(name, replace(options, video=None, samples=None))], progress=False)
        write_json(reports, folder / "eval.json", str(model_dir))
        metric = list(source_evaluation(trained, name).compared)
        counted = spec_trained["sources"]
        steps = read_checkpoint(folder / "run" / "checkpoints" / "last.ckpt", mmap=True)["global_step"]
        rows[name] = {"metric": metric, "target_tokens": spec["target_tokens"], "sources": spec["sources"],
                      "specialist_target_tokens": sum(counted[n]["target_tokens"] for n in spec["sources"]),
                      "specialist_steps": int(steps), "generalist_steps": int(generalist_steps),
                      "generalist": score(gen_evals[name], metric),
                      "specialist": score(reports[0].summary(), metric)}
    return {"generalist": str(generalist), "out": str(out), "sources": rows}


def over_runs(runs: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """Per source and metric: the generalist's and the specialist's mean and range over the runs, the
    ratio's too; the markdown rows, and the mean ratio over the sources (the README's line)."""
    def span(xs: list[float]) -> dict[str, float]:
        return {"mean": sum(xs) / len(xs), "low": min(xs), "high": max(xs)}

    def cell(s: dict[str, float], fmt: str = "{:.1f}") -> str:
        if len({round(s["low"], 6), round(s["high"], 6)}) == 1:
            return fmt.format(s["mean"])
        return f"{fmt.format(s['mean'])} [{fmt.format(s['low'])}, {fmt.format(s['high'])}]"

    table: dict[str, Any] = {}
    rows = ["| source | metric | generalist | specialist | generalist / specialist | target tokens | "
            "specialist's steps (the generalist's) |", "|---|---|---|---|---|---|---|"]
    kept: list[float] = []
    for name, first in runs[0]["sources"].items():
        main, main_higher, _ = first["metric"]
        extra = [k for k in (CHAT_F1[0], "chat_real_words") if k in first["generalist"]]
        for key in [main, *extra]:
            higher = main_higher if key == main else True
            pairs = [(r["sources"][name]["generalist"].get(key), r["sources"][name]["specialist"].get(key))
                     for r in runs if name in r["sources"]]
            pairs = [(g, s) for g, s in pairs if g is not None and s is not None]
            if not pairs:
                continue
            ratios = [ratio(g, s, higher) for g, s in pairs]
            entry = {"generalist": span([g for g, _ in pairs]), "specialist": span([s for _, s in pairs]),
                     "ratio": span([x for x in ratios if x is not None]) if all(x is not None for x in ratios)
                     else None, "runs": len(pairs)}
            table.setdefault(name, {})[key] = entry
            if entry["ratio"] is not None and key != "chat_real_words":
                kept.append(entry["ratio"]["mean"])
            tokens = span([float(r["sources"][name]["target_tokens"]) for r in runs if name in r["sources"]])
            steps = [(r["sources"][name]["specialist_steps"], r["sources"][name]["generalist_steps"])
                     for r in runs if name in r["sources"]]
            label = {"normalized_mean": "normalized", "exact_match": "exact match %", "perplexity":
                     "perplexity (lower is better)", CHAT_F1[0]: "reply F1 x100",
                     "chat_real_words": "real words %"}[key]
            rows.append(f"| {name} | {label} | {cell(entry['generalist'])} | {cell(entry['specialist'])} | "
                        f"{cell(entry['ratio'], '{:.2f}') if entry['ratio'] else '-'} | "
                        f"{cell(tokens, '{:,.0f}')} | {', '.join(f'{a:,} ({b:,})' for a, b in steps)} |")
    summary = {"sources": table, "mean_ratio": sum(kept) / len(kept) if kept else None, "runs": len(runs)}
    if kept:
        rows += ["", f"Over {len(runs)} run(s), the generalist keeps {100 * summary['mean_ratio']:.0f}% of "
                     f"its specialists' scores (the mean of {len(kept)} ratios; a specialist at or below its "
                     f"baseline has no ratio)."]
    return summary, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generalist", action="append", required=True,
                    help="a finished quickstart folder; repeat for several runs (intervals over them)")
    ap.add_argument("--out", required=True,
                    help="where the specialists are trained (one folder per generalist)")
    ap.add_argument("--json", default=None, help="result file (default: benchmarks/results/specialists.json)")
    args = ap.parse_args()
    try:
        runs = [run_one(Path(g).resolve(), Path(args.out).resolve() / f"run{k + 1}")
                for k, g in enumerate(args.generalist)]
    except GatoError as exc:
        print(f"benchmarks/specialists.py: error: {exc}", file=sys.stderr)
        sys.exit(2)
    summary, rows = over_runs(runs)
    write("specialists", {"runs_detail": runs, "over_runs": summary}, args.json)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
