"""The exported model folder, and loading it without unpickling anything.

A model folder holds:

* ``config.json``: the :class:`~gato_mini.config.GatoConfig`;
* ``tokenizer.json``: the text tokenizer the data was built with;
* ``model.safetensors``: the weights (safetensors: tensors only, no code);
* ``sources.json``: the sources the model was trained on, with the observation
  and action fields of each and a task's reference scores (:func:`sources_entry` writes it). Older
  folders name it ``tasks.json``; :func:`load_model` reads either.

:func:`load_model` checks each file and raises a one-line
:class:`~gato_mini.errors.FileFormatError` naming a missing or corrupt one.
:func:`read_checkpoint` opens a Lightning checkpoint with ``weights_only=True``.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from gato_mini.config import GatoConfig
from gato_mini.data.datacfg import DataConfig
from gato_mini.data.minari_io import dataset_folder
from gato_mini.envs.registry import TASKS
from gato_mini.errors import ConfigError, FileFormatError, GatoError
from gato_mini.model.model import GatoModel, check_fits
from gato_mini.references import episodes_env
from gato_mini.tokenizers.text import TextTokenizer

SOURCES_FILE = "sources.json"
OLD_SOURCES_FILE = "tasks.json"  # its older name, still read
FILES = ("config.json", "tokenizer.json", "model.safetensors", SOURCES_FILE)


def sources_entry(data: DataConfig, targets: dict[str, float] | None = None) -> dict[str, Any]:
    """What ``sources.json`` says about the sources a model was trained on (``data``: its data config,
    prepared): each source's kind, fields, options and split, its references (a registered task's,
    or what eval needs to measure them for a user's env) and, with ``targets``, the target tokens
    training took the loss on (``target_tokens``)."""
    index = json.loads((Path(data.root) / "data.json").read_text())
    out: dict[str, Any] = {}
    for s in data.sources:
        entry = dict(index["sources"][s.name])
        entry.pop("shards", None)
        # Options and the split fraction let `gato-mini eval` rebuild the held-out split.
        entry["options"] = {k: str(v) if isinstance(v, Path) else v for k, v in s.options.items()}
        if entry["options"].get("dataset") and entry.get("kind") == "episodes":
            # the dataset's own folder, absolute (a path or a Minari id), so eval (offline metrics,
            # prompts) works from any working directory
            entry["options"]["dataset"] = str(dataset_folder(entry["options"]["dataset"]).parent.resolve())
        entry["val_fraction"] = data.val_fraction
        if s.name in TASKS:
            entry["references"] = {k: r.to_dict() for k, r in TASKS[s.name].references().items()}
        elif entry.get("kind") == "episodes":
            entry.update(episodes_env(s.options["dataset"]))  # what eval needs for an env of the user's
        if targets is not None:
            entry["target_tokens"] = int(round(targets.get(s.name, 0.0)))
        out[s.name] = entry
    return {"sources": out}


def _state_dict(model: GatoModel, state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """What ``model.safetensors`` holds: the model's own state, or ``state`` (its whole state gathered
    from the shards of a sharded run), checked name by name and shape by shape against the config."""
    if state is None:
        state = model.state_dict()
    else:
        with torch.device("meta"):
            want = {k: tuple(v.shape) for k, v in GatoModel(model.cfg).state_dict().items()}
        have = {k: tuple(v.shape) for k, v in state.items()}
        if have != want:
            wrong = sorted(set(have) ^ set(want)) or sorted(k for k in have if have[k] != want[k])
            raise GatoError(f"the gathered weights do not match the model config (first differences: "
                            f"{', '.join(wrong[:3])}); the run's shards were not gathered whole")
    sd = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    if model.cfg.tie_embeddings:
        sd.pop("lm_head.weight", None)  # the same tensor as wte.weight
    return sd


def finish_interrupted_export(out: Path) -> None:
    """Complete an export killed between its two renames (``out`` moved aside, the new folder not yet
    in place). The new folder was whole before the first rename, so it takes ``out``'s place."""
    tmp, old = out.parent / f".tmp-{out.name}", out.parent / f".old-{out.name}"
    if not out.exists() and old.is_dir() and tmp.is_dir():
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)


def export_model(out: str | Path, model: GatoModel, tokenizer: str | Path, sources: dict[str, Any],
                 state: dict[str, torch.Tensor] | None = None) -> Path:
    """Write a model folder (into a temporary folder first, then renamed into place). ``state``: the
    model's whole state dict when ``model`` holds only a shard of it (FSDP, gathered to rank 0).

    A kill at any point leaves either the previous folder or the new one: before the renames the
    previous folder is untouched; between them, :func:`finish_interrupted_export` completes the swap.
    """
    from safetensors.torch import save_file

    out = Path(out)
    weights = _state_dict(model, state)  # a mismatch stops before anything is written
    finish_interrupted_export(out)
    tmp = out.parent / f".tmp-{out.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.cfg.to_json(tmp / "config.json")
    shutil.copy(tokenizer, tmp / "tokenizer.json")
    save_file(weights, str(tmp / "model.safetensors"), metadata={"format": "gato-mini"})
    (tmp / SOURCES_FILE).write_text(json.dumps(sources, indent=1) + "\n")
    if out.exists():
        old = out.parent / f".old-{out.name}"
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)
    return out


def load_model(path: str | Path, device: str | torch.device = "cpu"
               ) -> tuple[GatoModel, TextTokenizer, dict[str, Any]]:
    """(model in eval mode, tokenizer, the trained sources: ``sources.json``) from a model folder."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    finish_interrupted_export(path)
    if not path.is_dir():
        raise FileFormatError(f"model folder not found: {path}")
    listing = path / SOURCES_FILE
    if not listing.is_file() and (path / OLD_SOURCES_FILE).is_file():
        listing = path / OLD_SOURCES_FILE
    for name in FILES:
        if not (path / name).is_file() and name != SOURCES_FILE:
            raise FileFormatError(f"model folder {path} lacks {name}")
    if not listing.is_file():
        raise FileFormatError(f"model folder {path} lacks {SOURCES_FILE}")
    cfg = GatoConfig.from_json(path / "config.json")
    tokenizer = TextTokenizer.load(path / "tokenizer.json", cfg)
    try:
        sources = json.loads(listing.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{listing} is not valid JSON: {exc}") from None
    except RecursionError:
        raise FileFormatError(f"{listing} is nested too deeply") from None
    check_fits(cfg, f"{path / 'config.json'}", copies=2)  # the loaded state and the model
    try:
        state = load_file(str(path / "model.safetensors"), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise FileFormatError(f"{path / 'model.safetensors'} is corrupt: {exc}") from None
    model = GatoModel(cfg)
    if cfg.tie_embeddings:
        state["lm_head.weight"] = state.get("wte.weight", torch.empty(0))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise FileFormatError(f"{path / 'model.safetensors'} does not match config.json: {first}") from None
    return model.to(device).eval(), tokenizer, sources


def read_checkpoint(path: str | Path, mmap: bool = False) -> dict[str, Any]:
    """A Lightning checkpoint loaded with ``weights_only=True``; pickled objects are refused.

    ``mmap``: map the tensors instead of reading them (cheap, to look at the step of a large file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        if found is None:  # not a pickle at all
            raise FileFormatError(f"{path} is not a readable checkpoint (not a torch file)") from None
        raise FileFormatError(f"refusing to load {path}: it holds a pickled {found.group(1)}, not only "
                              "tensors and plain containers") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        why = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise FileFormatError(f"{path} is not a readable checkpoint: {why}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
        raise FileFormatError(f"{path} is not a gato-mini training checkpoint")
    return ckpt


def check_checkpoint_matches(ckpt: dict[str, Any], cfg: GatoConfig, path: str | Path) -> None:
    """Refuse a checkpoint of another architecture, naming the first differing key."""
    theirs = ckpt["hyper_parameters"].get("model_config") or {}
    mine = cfg.to_dict()
    diff = [k for k in mine if theirs.get(k) != mine[k]]
    if diff:
        k = diff[0]
        raise ConfigError(f"checkpoint {path} is of another architecture: {k}={theirs.get(k)!r}, "
                          f"the config has {k}={mine[k]!r}")
