"""`gato-mini quickstart`: from a fresh machine to a trained generalist agent and its report.

Stages, in order, each with a progress bar or a live status line:

1. ``collect``: expert episodes of the configured tasks (two Atari games and two
   continuous-control tasks by default) into ``DIR/episodes``;
2. ``prepare``: the text tokenizer and the shards of every source (episodes,
   ``caption-shapes``, pydoc text, chat) into ``DIR/data``;
3. ``train``: the ``tiny`` model on all of it at once, for as many steps as fit
   the time budget (measured from the step time of a real batch), into ``DIR/run``;
4. ``eval``: every control task on held-out seeds, caption exact match and
   BLEU-4, text and chat perplexity, a GIF of an Atari episode;
5. ``samples``: captions of a few held-out images and a short chat;
6. ``report``: ``DIR/report.md`` with the score table, figures and versions.

``DIR/quickstart.json`` records every finished stage with its wall time, so a
rerun skips what is done: collected datasets are reused, shards rebuild only
when stale, training resumes from its newest checkpoint (the step count of the
first attempt is kept, so the learning-rate schedule is the same), and
evaluation is not repeated. A stage interrupted with Ctrl-C leaves only whole
files behind (datasets, shards, checkpoints and models are written then renamed).
"""

from __future__ import annotations

import json
import math
import platform
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any

from gato_mini.agent.eval_common import (
    EvalOptions,
    QuickstartAsk,
    source_evaluation,
    summary_evaluation,
    write_json,
)
from gato_mini.agent.eval_control import acting_seconds, source_references, source_task
from gato_mini.agent.evaluate import evaluate_sources, print_eval, report_sections, score_cells
from gato_mini.agent.policy import ModelPolicy
from gato_mini.agent.prompting import ChatSession
from gato_mini.collect import Acting, run_episodes
from gato_mini.config_files import resolve_config
from gato_mini.data.datamodule import open_sampler
from gato_mini.data.minari_io import read_collection
from gato_mini.data.prepare import prepare
from gato_mini.data.windows import collate
from gato_mini.envs.registry import TASKS, get_task
from gato_mini.errors import ConfigError, GatoError
from gato_mini.model.export import load_model, read_checkpoint, sources_entry
from gato_mini.options import checked, number
from gato_mini.procs import folder_lock, write_atomic
from gato_mini.quickstart_plan import default_config, load_config, run_name
from gato_mini.reports.aggregate import eval_summaries
from gato_mini.reports.report import duration, write_report
from gato_mini.reports.tables import print_prepare
from gato_mini.tokenizers.text import TextTokenizer
from gato_mini.train.config import parse_run_config
from gato_mini.train.run import latest_checkpoint, lit_module, train, trainer_settings

STAGES = ("collect", "prepare", "train", "eval", "samples", "report")
MIN_FREE_BYTES = 1 << 30  # the default run writes about 0.5 GB
EVAL_STEP_TIMES = 160  # slow steps: evaluation took 105-160 step times; fast: the reserve (docs/speed.md)
# A measured reserve (quickstart.reserve_minutes: auto): the control tasks' predicted acting, plus
# captions, text, offline metrics, loading and the report counted as EVAL_REST_STEP_TIMES step times (about
# 35 here, docs/speed.md "The evaluation reserve, measured"), all times EVAL_MARGIN, plus 10 s.
# LEAST_RESERVE_MINUTES: the smallest reserve assumed before anything is measured (to refuse a --minutes
# that cannot hold a run).
EVAL_REST_STEP_TIMES = 40
EVAL_MARGIN = 1.15
LEAST_RESERVE_MINUTES = 0.25


class State:
    """``DIR/quickstart.json``: finished stages, their wall times, and values to keep across reruns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {"stages": {}, "runs": []}
        if path.is_file():
            try:
                self.data = json.loads(path.read_text())
            except json.JSONDecodeError:
                raise GatoError(f"{path} is corrupt; delete it to start the quickstart over") from None

    def done(self, stage: str) -> bool:
        return bool(self.data["stages"].get(stage, {}).get("done"))

    def finish(self, stage: str, seconds: float, **extra: Any) -> None:
        self.data["stages"][stage] = {"done": True, "seconds": round(seconds, 1), **extra}
        self.save()

    def save(self) -> None:
        write_atomic(self.path, json.dumps(self.data, indent=1))


def check_out_dir(out: Path) -> None:
    """DIR must be creatable, writable and have room; each failure is one line."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise GatoError(f"cannot write to {out}: {exc.strerror or exc}; choose another --out") from None
    free = shutil.disk_usage(out).free
    if free < MIN_FREE_BYTES:
        raise GatoError(f"only {free / 2**30:.2f} GiB free in {out}; the quickstart needs about 1 GiB: "
                        "free some space or choose another --out")


def versions() -> dict[str, str]:
    """Versions of Python and the packages that decide results."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("gato-mini", "torch", "lightning", "gymnasium", "ale-py", "mujoco", "minari", "tokenizers",
                 "torchmetrics", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


class Quickstart:
    """The six stages over one output folder (see the module docstring)."""

    def __init__(self, out: str | Path, minutes: float, config: str | Path | None = None,
                 progress: bool = True, argv: list[str] | None = None) -> None:
        from rich.console import Console

        checked(minutes, number("--minutes", 0, open_lo=True, hi=7 * 24 * 60, optional=False,
                                says="a positive number"))
        self.out = Path(out).resolve()
        self.minutes = float(minutes)
        self.config_path = resolve_config(config) if config else default_config()
        check_out_dir(self.out)
        self.plan, self.raw = load_config(self.config_path, self.out)
        self.progress = progress
        self.console = Console()
        self.state = State(self.out / "quickstart.json")
        self.argv = argv or ["gato-mini", "quickstart", "--out", str(out), "--minutes", str(minutes)]
        self.t0 = time.perf_counter()
        self.spent_before = sum(s.get("seconds", 0) for s in self.state.data["stages"].values())

    def least_minutes(self) -> float:
        """A lower bound on the minutes the stages before training take, plus the evaluation reserve
        and the shortest training run: recording at 2,000 steps/s (faster than any task records here)
        the datasets not already in ``out``, and 20 s of data preparation."""
        if self.state.done("train") or "max_steps" in self.raw["trainer"]:
            return 0.0
        steps = sum(rec.episodes * (rec.max_steps or get_task(task).max_steps)
                    for task, rec in self.plan.collect.items()
                    if not self.state.done("collect") and not self.plan.dataset(self.out, task).is_dir())
        before = steps / 2000 + (0 if self.state.done("prepare") else 20)
        return (before + 30 + self.spent_before) / 60 + self._least_reserve()

    def _least_reserve(self) -> float:
        """The evaluation reserve in minutes as known before it is measured: the configured one, or
        :data:`LEAST_RESERVE_MINUTES` when it is measured (``reserve_minutes: auto``)."""
        r = self.plan.reserve_minutes
        return LEAST_RESERVE_MINUTES if r is None else r

    # --- the driver -------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Every stage not done yet; returns the final scores. A second quickstart on the same folder
        (another terminal) stops in one line while this one runs."""
        with folder_lock(self.out, "quickstart"):
            return self._run()

    def _run(self) -> dict[str, Any]:
        least = self.least_minutes()
        if self.minutes < least:  # known before anything runs
            raise GatoError(f"--minutes {self.minutes:g} cannot hold recording and data "
                            f"({least - self._least_reserve() - 0.5:.1f} min at least), 30 s of training "
                            "and an evaluation reserve of "
                            f"{'at least ' if self.plan.reserve_minutes is None else ''}"
                            f"{self._least_reserve():g} min: give --minutes "
                            f"{math.ceil(least)} or more")
        self.state.data["runs"].append({"argv": self.argv, "started": time.strftime("%Y-%m-%d %H:%M:%S")})
        self.state.data["versions"] = versions()
        self.state.save()
        steps: list[tuple[str, Callable[[], dict[str, Any] | None]]] = [
            ("collect", self.collect), ("prepare", self.prepare), ("train", self.train),
            ("eval", self.evaluate), ("samples", self.samples), ("report", self.report)]
        for k, (stage, fn) in enumerate(steps, 1):
            if stage != "report" and stage != "prepare" and self.state.done(stage):
                self.console.print(f"[bold][{k}/6] {stage}[/bold]: done in an earlier run, skipped")
                continue
            self.console.rule(f"[bold][{k}/6] {stage}")
            start = time.perf_counter()
            try:
                extra = fn() or {}
            except (KeyboardInterrupt, SystemExit):  # Lightning turns Ctrl-C into SystemExit(1)
                print(f"gato-mini quickstart: interrupted during {stage}; run the same command again to "
                      "continue (finished stages and checkpoints are kept)", file=sys.stderr)
                raise KeyboardInterrupt from None
            self.state.finish(stage, time.perf_counter() - start, **extra)
        return self.state.data.get("scores", {})

    def _elapsed(self) -> float:
        return time.perf_counter() - self.t0

    # --- stages -------------------------------------------------------------------------
    def collect(self) -> dict[str, Any]:
        made = {}
        for task, rec in self.plan.collect.items():
            path = self.plan.dataset(self.out, task)
            cap = rec.max_steps or get_task(task).max_steps
            if path.is_dir():
                have = read_collection(path) or {}
                noise = (have.get("noise") or {}).get("scale", 0.0)
                wanted = (rec.policy, rec.episodes, cap, rec.noise)
                if (have.get("policy"), have.get("episodes"), have.get("step_cap"), noise) == wanted:
                    self.console.print(f"{task}: reusing {path}")
                    continue
                self.console.print(f"{task}: {path} was recorded with other settings; recording it again")
            r = run_episodes(task, rec, out=self.out / "episodes", progress=self.progress)
            made[task] = {"episodes": rec.episodes, "steps": r.steps, "return": round(r.mean, 2),
                          "noise": rec.noise}
            noisy = f" (DART noise {rec.noise}: noisy actions executed, clean ones logged)" \
                if rec.noise else ""
            self.console.print(f"{task}: {rec.episodes} {rec.policy} episodes{noisy}, {r.steps} "
                               f"steps, mean return {r.mean:.1f} -> {path}")
        return {"collected": made}

    def _run_config(self, max_steps: int | None = None, minutes: float | None = None,
                    pause: float | None = None, rounds: int = 0):  # noqa: ANN202
        """The run config (a RunConfig) sized in steps (``max_steps``) or in time (``minutes``, paused at
        ``pause`` of them), with the episodes of the first ``rounds`` DAgger rounds as sources."""
        raw = json.loads(json.dumps(self.raw))
        if max_steps is not None:
            raw["trainer"]["max_steps"] = max_steps
        if minutes is not None:
            raw["train"]["minutes"] = minutes
        if pause is not None:
            raw["train"]["pause_minutes"] = pause
        dagger, sources = self.plan.dagger, raw["data"].get("sources")
        for k in range(1, rounds + 1):
            for task in dagger.collect:
                weight = dagger.weights[task] or float((sources.get(task) or {}).get("weight", 1.0))
                sources[dagger.source(task, k)] = {"kind": "episodes", "weight": weight,
                                                   "dataset": str(dagger.dataset(self.out, task, k)),
                                                   "stats_dataset": str(self.plan.dataset(self.out, task))
                                                   if task in self.plan.collect else None}
        try:
            return parse_run_config(raw)
        except ConfigError as exc:
            raise ConfigError(f"{self.config_path}: {exc}") from None

    def prepare(self) -> dict[str, Any]:
        run = self._run_config(1)
        result = prepare(run.data, run.model, progress=self.progress)
        print_prepare(result, self.console)
        return {"tokens": sum(sum(r.tokens.values()) for r in result.sources)}

    def _step_seconds(self, run) -> tuple[float, Any]:  # noqa: ANN001
        """(seconds per optimizer step, the model it stepped) of the run's own LightningModule (its
        forward, compiled where the run compiles, its loss and its AdamW groups): the mean over 5
        different batches of the mixture, after a warm-up step. One batch is not enough: a batch's cost
        depends on its sources (an Atari row holds 10 patches a timestep, a text row none);
        docs/speed.md, "The quickstart's step-time probe", has what one batch missed by."""
        import numpy as np
        import torch

        sampler = open_sampler(run.data, run.model, "train")
        rng = np.random.default_rng(0)
        gpu = torch.cuda.is_available() and run.trainer.get("accelerator", "auto") in ("auto", "gpu", "cuda")
        device = "cuda" if gpu else "cpu"
        lit = lit_module(run, max_steps=6).to(device).train()
        optimizer = lit.configure_optimizers()["optimizer"]
        times = []
        for _ in range(6):
            batch = collate([sampler.sample(rng) for _ in range(run.train.batch_size)], run.model)
            inputs = {k: v.to(device) for k, v in batch.items()}
            t = time.perf_counter()
            loss, _ = lit.loss(inputs)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        return float(np.mean(times[1:])), lit.model.eval()

    def _eval_seconds(self, run, model, step_s: float) -> tuple[float, dict[str, float]]:  # noqa: ANN001
        """The seconds to keep for evaluation and the report, measured: the references evaluation
        compares with are measured now where it would measure them (cached where it reads them), and
        each control task's episodes are timed at its own envs, caps and batch with the untrained
        ``model`` (:func:`~gato_mini.agent.eval_control.acting_seconds`); the rest (captions, text,
        offline metrics, loading, the report) is counted in step times. Returns (seconds, the parts)."""
        trained = sources_entry(run.data)
        tok = TextTokenizer.load(Path(run.data.root) / "tokenizer.json", run.model)
        parts: dict[str, float] = {}
        for name, o in self._eval_plan(trained):
            if not source_evaluation(trained, name).plays:
                continue
            t = time.perf_counter()
            source_references(source_task(trained, name, o.env_id, o.imports)[0], trained, name, o)
            references = time.perf_counter() - t
            parts[name] = round(acting_seconds(model, tok, trained, name, o), 1)
            self.console.print(f"{name}: references {references:.0f} s (now, not at eval); "
                               f"{o.episodes} episodes will take about {parts[name]:.0f} s")
        parts["the rest"] = round(EVAL_REST_STEP_TIMES * step_s, 1)
        return EVAL_MARGIN * sum(parts.values()) + 10, parts

    def _check_budget(self, budget: float, reserve: float) -> None:
        """Refuse a training budget under 30 s, naming the evaluation reserve that was kept."""
        if budget < 30:
            raise GatoError(f"--minutes {self.minutes:g} leaves {max(budget, 0):.0f} s for training "
                            f"{run_name(self.raw)} after collection, data and a {reserve / 60:.1f}-minute "
                            "reserve for evaluation; give more minutes")

    def train(self) -> dict[str, Any]:
        info = self.state.data.setdefault("train", {})
        reserve = info.get("eval_reserve_seconds", self._least_reserve() * 60)
        budget = self.minutes * 60 - self.spent_before - self._elapsed() - reserve
        if "max_steps" not in info and "minutes" not in info:
            if "max_steps" in self.raw["trainer"]:
                info["max_steps"] = int(self.raw["trainer"]["max_steps"])
            else:
                self._check_budget(budget, reserve)
                self.console.print("measuring the step time on a real batch ...")
                run = self._run_config(1)
                step_s, model = self._step_seconds(run)
                if self.plan.reserve_minutes is None:
                    self.console.print("measuring what evaluation will take ...")
                    reserve, info["eval_prediction"] = self._eval_seconds(run, model, step_s)
                else:
                    # Evaluation is inference with the same model, so its time grows with the step time
                    # (docs/speed.md, "The quickstart's step-time probe"): the larger of the configured
                    # reserve and EVAL_STEP_TIMES step times.
                    reserve = max(self.plan.reserve_minutes * 60, EVAL_STEP_TIMES * step_s)
                del model
                budget = self.minutes * 60 - self.spent_before - self._elapsed() - reserve
                self._check_budget(budget, reserve)
                info["eval_reserve_seconds"] = round(reserve)
                # Sized in time: the run trains until its minutes are spent, the rate decaying over
                # the last fifth of them, however fast the steps turn out (the probe read a step a
                # quarter slower than training ran, and a third of the budget went unspent). The last
                # part's Lightning setup and the export come outside the clock (6 s here): keep 2%, at
                # least 15 s (the earlier parts' setup and the DAgger rounds come out of the minutes).
                planned = budget - max(15.0, 0.02 * budget)
                info["minutes"] = info["planned_minutes"] = round(planned / 60, 3)
                info["expected_steps"] = max(1, int(planned / step_s))
                info["measured_step_seconds"] = round(step_s, 4)
            info["budget_seconds"] = round(budget)
            self.state.save()
        rounds = info.setdefault("dagger_rounds", [])
        at = self.plan.dagger.at if self.plan.dagger and "minutes" in info else []
        start = time.perf_counter() - info.get("wall_seconds", 0.0)
        while True:
            k = len(rounds)
            pause = at[k] * info["planned_minutes"] if k < len(at) else None
            if pause is not None and pause >= info["minutes"]:  # the rounds took the time it would start at
                pause = None
            model_dir = self._train_part(info, budget, k, pause)
            if pause is None:
                break
            rounds.append({**self._dagger_round(k + 1, model_dir), "at_minutes": round(pause, 2)})
            # Whatever was not training (the rounds, each part's setup and export) comes out of training's
            # minutes, so the schedule still ends when the budget does.
            last = latest_checkpoint(self.out / "run" / "checkpoints")
            spent = float(read_checkpoint(last, mmap=True).get("time_budget_spent", 0.0)) if last else 0.0
            info["wall_seconds"] = round(time.perf_counter() - start, 1)
            info["minutes"] = round(info["planned_minutes"] - max(0.0, info["wall_seconds"] - spent) / 60, 3)
            self.state.save()
        last = latest_checkpoint(self.out / "run" / "checkpoints")
        steps = int(read_checkpoint(last, mmap=True).get("global_step", 0)) if last else None
        info["steps"] = steps
        self.state.save()
        return {"steps": steps, "model": str(model_dir)}

    def _train_part(self, info: dict[str, Any], budget: float, rounds: int, pause: float | None) -> Path:
        """Train (or resume) the run with the episodes of ``rounds`` DAgger rounds, until its minutes or
        steps are spent or, with ``pause``, until that many minutes (a DAgger round comes next)."""
        if "minutes" in info:
            run = self._run_config(minutes=info["minutes"], pause=pause, rounds=rounds)
            interval, what = max(1, info["expected_steps"] // 4), f"{info['minutes']:.1f} min"
            if pause is not None:
                what = f"{pause:.1f} of {info['minutes']:.1f} min (then DAgger round {rounds + 1})"
        else:
            run = self._run_config(info["max_steps"])
            interval, what = max(1, info["max_steps"] // 4), f"{info['max_steps']} steps"
        run.trainer.setdefault("val_check_interval", interval)
        info["optimizer"], info["precision"] = run.train.optimizer, trainer_settings(run, False)["precision"]
        run.trainer.setdefault("max_time", {"seconds": int(max(budget, 60) * 1.15) + 60})  # a hard stop
        ckpt = latest_checkpoint(self.out / "run" / "checkpoints")
        self.console.print(f"training {run.model.name} for {what} "
                           f"(budget {budget / 60:.1f} min){'; resuming from ' + str(ckpt) if ckpt else ''}")
        return train(run, str(ckpt) if ckpt else None, progress=self.progress)

    def _dagger_round(self, k: int, model_dir: Path) -> dict[str, Any]:
        """DAgger round ``k``: the model trained so far acts in each task of ``quickstart.dagger``, its
        demonstrator labels every state reached (:func:`~gato_mini.collect.run_episodes` with a batched
        :class:`~gato_mini.agent.policy.ModelPolicy`); returns what was recorded and the seconds it took."""
        dagger, start, made = self.plan.dagger, time.perf_counter(), {}
        for task, rec in dagger.collect.items():
            def acting(t):  # noqa: ANN001, ANN202
                return Acting(ModelPolicy(model_dir, t, num_envs=dagger.num_envs),
                              f"the quickstart's model at DAgger round {k} ({model_dir}, greedy)")
            # episode seeds of round k follow the demonstrations' and the earlier rounds'
            rec = replace(rec, share=dagger.policy_share, seed=k * 100_000)
            path = dagger.dataset(self.out, task, k)
            r = run_episodes(task, rec, out=path.parents[1], progress=self.progress, acting=acting)
            made[task] = {"episodes": rec.episodes, "steps": r.steps, "return": round(r.mean, 2),
                          "dataset": str(path)}
            self.console.print(f"DAgger round {k}, {task}: the model acted ({dagger.policy_share:g} of "
                               f"steps by the {rec.policy}), return {r.mean:.1f}; {r.steps} steps labelled "
                               f"-> {path}")
        return {"round": k, "seconds": round(time.perf_counter() - start, 1), "collected": made}

    def _eval_plan(self, trained: dict[str, Any]) -> list[tuple[str, EvalOptions]]:
        """(source, how it is evaluated) for every source of ``trained`` (a ``sources.json``), in the
        order of the eval table: the recorded tasks first. A DAgger round's episodes are the same task
        and are not evaluated apart."""
        p = self.plan
        atari = [t for t in p.collect if TASKS[t].family == "atari"]
        rounds = len(self.state.data.get("train", {}).get("dagger_rounds", []))
        dagger = {p.dagger.source(t, k) for t in p.dagger.collect for k in range(1, rounds + 1)} \
            if p.dagger else set()  # more episodes of a task evaluated under its own name
        order = [s for s in trained["sources"] if s in p.collect] + \
                [s for s in trained["sources"] if s not in p.collect and s not in dagger]
        # references measured at eval are kept in DIR (a model folder is replaced at each export), so
        # the ones measured before training to size the reserve are not measured again
        base = EvalOptions(seed=1000, num_envs=p.eval_num_envs, reference_cache=self.out / "references.json")
        plan = []
        for name in order:
            ask = QuickstartAsk(
                episodes=p.eval_episodes, images=p.caption_images, num_envs=p.eval_num_envs, out=self.out,
                questions=p.questions,
                dataset=str(p.dataset(self.out, name)) if name in p.collect else None,
                max_steps=p.eval_max_steps.get(name),
                video=str(self.out / f"{name}.gif") if atari and name == atari[0] else None)
            plan.append((name, source_evaluation(trained, name).for_quickstart(base, ask, name)))
        return plan

    def evaluate(self) -> dict[str, Any]:
        model, tok, trained = load_model(self.out / "run" / "model")
        reports = evaluate_sources(model, tok, trained, self._eval_plan(trained), self.progress)
        write_json(reports, self.out / "eval.json", str(self.out / "run" / "model"))
        print_eval(reports, self.console)
        summaries = [r.summary() for r in reports]
        self.state.data["scores"] = {s["source"]: summary_evaluation(s).headline(s) for s in summaries}
        return {}

    def samples(self) -> dict[str, Any]:
        model, tok, _ = load_model(self.out / "run" / "model")
        session = ChatSession(model, tok)  # decoded as `gato-mini chat` decodes
        chat = []
        for prompt in self.plan.chat:
            reply = session.reply(prompt)
            chat.append({"user": prompt, "assistant": reply})
            self.console.print(f"[bold]user[/bold]: {prompt}\n[bold]gato-mini[/bold]: {reply}")
        evals = eval_summaries(json.loads((self.out / "eval.json").read_text()))
        shown = {t["source"]: summary_evaluation(t).samples(t) for t in evals}
        for c in (c for cs in shown.values() for c in cs):
            self.console.print(c["shown"])
        made = {"chat": chat, "chat_decoding": session.sampling.named(),
                "sources": {k: v for k, v in shown.items() if v}}
        write_atomic(self.out / "samples.json", json.dumps(made, indent=1))
        return {}

    def report(self) -> dict[str, Any]:
        evals = eval_summaries(json.loads((self.out / "eval.json").read_text()))
        path = write_report(self.out, self.state.data, self.argv, score_cells(evals),
                            report_sections(evals, self.out))
        self.console.print(f"wrote {path}")
        return {}


def main(out: str, minutes: float, config: str | None, progress: bool, argv: list[str]) -> int:
    """Run (or resume) the quickstart; prints the score table at the end."""
    qs = Quickstart(out, minutes, config, progress, argv)
    qs.run()
    print_eval(eval_summaries(json.loads((qs.out / "eval.json").read_text())), qs.console)
    stages = qs.state.data["stages"]
    qs.console.print(" · ".join(f"{k} {duration(v['seconds'])}" for k, v in stages.items())
                     + f" · total {duration(sum(v['seconds'] for v in stages.values()))}")
    qs.console.print(f"report: {qs.out / 'report.md'}")
    return 0
