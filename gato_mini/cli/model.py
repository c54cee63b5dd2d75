"""``gato-mini train``, ``eval``, ``caption`` and ``chat``: a model trained, then played, prompted and
talked to. Each command's code is imported when it runs, so ``gato-mini --help`` stays fast."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from gato_mini.cli.data import recipes_epilog
from gato_mini.errors import GatoError

if TYPE_CHECKING:  # imported where used, so that --help stays fast
    from gato_mini.agent.eval_common import EvalOptions


def add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True,
                   help="training config (model, data, train, trainer): a YAML path or a recipe name, "
                        "e.g. tiny")
    p.add_argument("--out", help="the run's folder: checkpoints, logs, the exported model (default: the "
                   "config's train.out)")
    p.add_argument("--ckpt-path", dest="ckpt_path",
                   help="resume from this checkpoint (opened with weights_only=True)")
    p.add_argument("--resume", action="store_true",
                   help="resume from the newest checkpoint in OUT/checkpoints (starts afresh if none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = ("Any --SECTION.KEY VALUE overrides the config, e.g. --trainer.max_steps 200 "
                "--train.lr 3e-4.\n\n"
                + recipes_epilog())


def run_train(args: argparse.Namespace) -> None:
    from gato_mini.model.model import count_params
    from gato_mini.train.config import load_run_config
    from gato_mini.train.run import latest_checkpoint, train, trainer_settings

    overrides = list(args.overrides) + (["--train.out", args.out] if args.out else [])
    run = load_run_config(args.config, overrides)
    ckpt_path = args.ckpt_path
    if args.resume:
        if ckpt_path:
            raise GatoError("give --resume or --ckpt-path, not both")
        found = latest_checkpoint(Path(run.train.out) / "checkpoints")
        print(f"resuming from {found}" if found else f"no checkpoint in {run.train.out}/checkpoints: "
              "starting afresh", file=sys.stderr)
        ckpt_path = str(found) if found else None
    m, steps = run.model, trainer_settings(run, False)["max_steps"]
    # a run sized in time stops on its clock (or at trainer.max_steps, when one is given, if sooner)
    cap = f" (at most {steps} steps)" if "max_steps" in run.trainer else ""
    length = (f"{run.train.minutes:g} minutes{cap} in steps" if run.train.minutes
              else f"{run.train.target_tokens:,} target tokens{cap} in steps" if run.train.target_tokens
              else f"{steps} steps")
    print(f"training {m.n_layer} layers x {m.n_embd} ({count_params(m) / 1e6:.1f}M parameters) for {length} "
          f"of {run.train.batch_size} x {m.block_size} tokens into {run.train.out}")
    model_dir = train(run, ckpt_path, progress=not args.no_progress)
    print(f"exported the model to {model_dir}")


def add_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="an exported model folder (e.g. runs/tiny/model)")
    p.add_argument("--source", "--task", dest="source", action="append", required=True, metavar="NAME",
                   help="a source the model was trained on: an episodes source (plays its task), a caption "
                        "source (captions its held-out images), a visual-question source (answers its "
                        "held-out questions), a text or chat source (held-out perplexity); repeat for "
                        "several (--task: its older name)")
    # The defaults are the evaluations' (Evaluation.defaults; not imported here: --help stays fast); a
    # test checks this text against them.
    p.add_argument("--episodes", type=int, help="episodes per episodes source (default: 10); images "
                   "per caption source (default: every held-out image); questions per visual-question "
                   "source (default: every held-out question)")
    p.add_argument("--num-envs", type=int, help="environments run at once (default: 4; 16 for captions "
                   "and questions)")
    p.add_argument("--seed", type=int, default=1000, help="episode i uses seed SEED + i (default: 1000)")
    p.add_argument("--prompt-dataset", help="Minari dataset to prompt with (one source only; default: "
                   "runs/episodes/<source>/expert-v0 when it exists)")
    p.add_argument("--prompt-tokens", type=int, help="prompt budget in tokens (default: block_size / 4)")
    p.add_argument("--no-prompt", action="store_true", help="no demonstration prompt")
    p.add_argument("--temperature", type=float, default=0.0, help="0 for greedy (default)")
    p.add_argument("--value-point", choices=("median", "mode"), default="median",
                   help="a greedy continuous action: the median (default) or the mode (argmax) of the "
                        "predicted bins")
    p.add_argument("--no-cache", action="store_true", help="recompute the whole context every step (slow)")
    p.add_argument("--max-steps", type=int, help="episode step cap (default: the task's)")
    p.add_argument("--step-timeout", type=float, default=60.0,
                   help="seconds an environment may take to answer a reset or step before its episode "
                        "fails (control envs run in their own processes); 0: in this process, no limit "
                        "(default: 60)")
    p.add_argument("--no-offline", action="store_true", help="skip the teacher-forced action metrics on "
                   "held-out logged episodes (control tasks)")
    p.add_argument("--env", metavar="ENV_ID", help="evaluate an episodes source on this gymnasium env "
                   "(default: the registered task of that name, else the env its dataset stored the spec of)")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (it registers your envs); repeat for several")
    p.add_argument("--video", help="record the first episode of the first source as a .gif (or .mp4)")
    p.add_argument("--out", help="JSON results (default: eval.json beside the model folder)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def eval_options(args: argparse.Namespace) -> EvalOptions:
    """``gato-mini eval``'s flags as one checked :class:`~gato_mini.agent.eval_common.EvalOptions`."""
    from gato_mini.agent.eval_common import EvalOptions

    if (args.prompt_dataset or args.env) and len(args.source) > 1:
        raise GatoError("--prompt-dataset and --env go with a single --source")
    return EvalOptions(episodes=args.episodes, num_envs=args.num_envs, seed=args.seed,
                       prompt_dataset=args.prompt_dataset, use_prompt=not args.no_prompt,
                       prompt_tokens=args.prompt_tokens, temperature=args.temperature,
                       value_point=args.value_point, use_cache=not args.no_cache, max_steps=args.max_steps,
                       step_timeout=args.step_timeout,
                       offline=not args.no_offline, env_id=args.env, imports=tuple(args.imports),
                       reference_cache=Path(args.model) / "references.json").checked()


def run_eval(args: argparse.Namespace) -> int:
    from gato_mini.agent.eval_common import write_json
    from gato_mini.agent.evaluate import evaluate_sources, print_eval
    from gato_mini.model.export import load_model

    options = eval_options(args)  # every number checked before the model loads
    model, tokenizer, trained = load_model(args.model)
    out = Path(args.out) if args.out else Path(args.model).resolve().parent / "eval.json"
    # the first source records the video; a caption source's grid of samples goes beside the JSON
    plan = [(name, replace(options, video=args.video if k == 0 else None,
                           samples=str(out.with_name(f"{out.stem}-{name}-samples.png"))))
            for k, name in enumerate(args.source)]
    reports = evaluate_sources(model, tokenizer, trained, plan, not args.no_progress)
    write_json(reports, out, args.model)
    print_eval(reports)
    print(f"wrote {out}")
    failed = sum(len(r.failed) for r in reports)
    if failed:
        print(f"gato-mini eval: {failed} episode(s) failed; see 'error' in {out}", file=sys.stderr)
        return 1
    return 0


def add_sampling(p: argparse.ArgumentParser, max_tokens: int, no_repeat: int = 0) -> None:
    p.add_argument("--max-tokens", type=int, default=max_tokens, help=f"token limit (default: {max_tokens})")
    p.add_argument("--temperature", type=float, default=0.0, help="0 for greedy (default)")
    p.add_argument("--top-k", type=int, help="sample among the k most likely tokens")
    p.add_argument("--top-p", type=float, help="sample among the most likely tokens up to this probability")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.add_argument("--no-repeat", type=int, default=no_repeat, metavar="N",
                   help=f"never repeat an N-token sequence within one text; 0 is off (default: {no_repeat})")


def sampling_flags(args: argparse.Namespace, temperature: float | None = None, seed: int | None = None):
    """The sampling flags of ``caption`` and ``chat`` as one checked ``Sampling``."""
    from gato_mini.model.generate import Sampling

    return Sampling(args.max_tokens, args.temperature if temperature is None else temperature, args.top_k,
                    args.top_p, args.seed if seed is None else seed, args.no_repeat).checked()


def add_caption(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="an exported model folder")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    p.add_argument("--samples", type=int, default=1, help="captions per image (sampled when > 1)")
    p.add_argument("--image-size", type=int, default=None,
                   help="images are fitted into SIZE x SIZE (default: the size the model's caption sources "
                        "were trained at, from its sources.json; 64 for a model trained on none)")
    add_sampling(p, 32)


def run_caption(args: argparse.Namespace) -> None:
    from gato_mini.agent.eval_captions import caption_image_size
    from gato_mini.agent.prompting import caption
    from gato_mini.data.captions import load_image
    from gato_mini.model.export import load_model
    from gato_mini.options import checked, count

    checked(args.samples, count("--samples", hi=10_000))
    checked(args.image_size, count("--image-size", hi=4096))
    sampling_flags(args)  # every number checked before the model loads
    model, tokenizer, trained = load_model(args.model)
    size, note = (((args.image_size, args.image_size), None) if args.image_size
                  else caption_image_size(trained))
    size = size or (64, 64)
    if note:
        print(note, file=sys.stderr)
    images = [(path, load_image(Path(path), size)) for path in args.images]
    for path, image in images:
        for k in range(args.samples):
            temp = args.temperature if args.samples == 1 or args.temperature > 0 else 0.8
            text = caption(model, tokenizer, image, sampling_flags(args, temp, args.seed + k))
            print(f"{path}: {text}" if args.samples == 1 else f"{path} [{k + 1}]: {text}", flush=True)


def add_ask(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="an exported model folder")
    p.add_argument("image", metavar="IMAGE", help="an image file (PNG, JPEG, ...)")
    p.add_argument("question", metavar="QUESTION",
                   help='a question about it, e.g. "what colour is the circle?"')
    p.add_argument("--image-size", type=int, default=None,
                   help="the image is fitted into SIZE x SIZE (default: the size the model's visual-question "
                        "sources were trained at, from its sources.json; 64 for a model trained on none)")
    add_sampling(p, 16)  # prompting.ANSWER_SAMPLING


def run_ask(args: argparse.Namespace) -> None:
    from gato_mini.agent.eval_vqa import question_image_size
    from gato_mini.agent.prompting import answer
    from gato_mini.api import fit_picture
    from gato_mini.model.export import load_model
    from gato_mini.options import checked, count

    checked(args.image_size, count("--image-size", hi=4096))
    sampling = sampling_flags(args)  # every number checked before the model loads
    if not args.question.strip():
        raise GatoError("the question is empty")
    if not Path(args.image).is_file():
        raise GatoError(f"image not found: {args.image}")
    model, tokenizer, trained = load_model(args.model)
    size = (args.image_size, args.image_size) if args.image_size else question_image_size(trained) or (64, 64)
    print(answer(model, tokenizer, fit_picture(args.image, size), args.question, sampling), flush=True)


def add_chat(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="an exported model folder")
    p.add_argument("--system", help="a system message that opens the conversation")
    add_sampling(p, 64, no_repeat=2)  # prompting.CHAT_SAMPLING, the decoding chosen by measurement


def run_chat(args: argparse.Namespace) -> None:
    from gato_mini.agent.prompting import ChatSession
    from gato_mini.model.export import load_model

    sampling = sampling_flags(args)  # checked before the model loads
    model, tokenizer, _ = load_model(args.model)
    session = ChatSession(model, tokenizer, args.system, sampling)
    interactive = sys.stdin.isatty()
    if interactive:
        print("gato-mini chat: type a message; /reset starts over, /quit leaves.")
    while True:
        if interactive:
            print("you> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            break
        line = line.rstrip("\n")
        if line.strip() == "/quit":
            break
        if line.strip() == "/reset":
            session.reset()
            print("(conversation reset)", flush=True)
            continue
        try:
            if interactive:  # stream the reply as it comes
                print("gato> ", end="", flush=True)
                session.reply(line, on_token=lambda s: print(s, end="", flush=True))
                print(flush=True)
            else:  # scripted: exactly one line per reply (newlines inside it written as \\n)
                print(session.reply(line).replace("\\", "\\\\").replace("\n", "\\n"), flush=True)
        except GatoError as exc:  # a bad turn does not end the session
            print(f"gato-mini chat: {exc}", file=sys.stderr, flush=True)
