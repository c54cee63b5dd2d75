"""`gato-mini prepare`: train the text tokenizer and tokenize every source into shards, once.

What is rebuilt is decided by fingerprints, like ``make``:

* the tokenizer depends on the vocabulary size and on every text-bearing
  source's fingerprint (its options plus the names, sizes and modification
  times of its input files, or the version of the package that ships it);
* a shard depends on its source's fingerprint, the id layout of the model
  config, the split fraction, and the tokenizer's content hash when its
  tokens contain text.

Re-running on unchanged inputs reads nothing and writes nothing. Sources are
tokenized in parallel processes (``data.workers``) with one progress bar each.
``<root>/data.json`` lists what was built, for training and for the exported
model.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gato_mini.config import SPECIAL_TOKENS, GatoConfig
from gato_mini.data.datacfg import DataConfig, SourceConfig
from gato_mini.data.shards import FORMAT, ShardWriter, layout, read_meta
from gato_mini.data.sources import Source, make_source
from gato_mini.errors import ConfigError
from gato_mini.procs import die_with_parent, folder_lock, write_atomic
from gato_mini.terminal import progress_bar
from gato_mini.tokenizers.text import TextTokenizer

SPLITS = ("train", "val")
TOKENIZER_VERSION = 1


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    """Content hash of a file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def shard_dir(root: Path, source: str, split: str) -> Path:
    """Where the shard of one source and split lives."""
    return Path(root) / "shards" / source / split


@dataclass
class SourceReport:
    """What happened to one source in a prepare run."""

    name: str
    status: str  # "built" | "up to date"
    units: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    patches: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class PrepareResult:
    """Outcome of :func:`prepare`."""

    root: Path
    tokenizer: Path
    tokenizer_trained: bool
    sources: list[SourceReport]

    @property
    def built_tokens(self) -> int:
        return sum(sum(r.tokens.values()) for r in self.sources if r.status == "built")

    @property
    def build_seconds(self) -> float:
        return sum(r.seconds for r in self.sources if r.status == "built")

    def summary(self) -> str:
        """One line: where the data is, and what was reused and what built."""
        built = [r.name for r in self.sources if r.status == "built"]
        kept = len(self.sources) - len(built)
        parts = [f"tokenizer {'trained now' if self.tokenizer_trained else 'reused'}"]
        if kept:
            parts.append(f"{kept} source{'s' if kept > 1 else ''} reused")
        if built:
            parts.append(f"built {', '.join(built)}")
        return f"data in {self.root}: {'; '.join(parts)}"


# --- tokenizer ----------------------------------------------------------------
def _tokenizer(data: DataConfig, cfg: GatoConfig, sources: list[Source], say: Callable[[str], None]
               ) -> tuple[Path, bool]:
    root = Path(data.root)
    path = root / "tokenizer.json"
    if data.tokenizer is not None:  # the user's own (e.g. a pretrained model's): copy it in
        TextTokenizer.load(data.tokenizer, cfg)
        if not path.is_file() or file_sha256(path) != file_sha256(Path(data.tokenizer)):
            path.write_bytes(Path(data.tokenizer).read_bytes())
        return path, False
    text_sources = sorted((s for s in sources if s.trains_tokenizer), key=lambda s: s.name)
    fp = _digest({"vocab": cfg.text_vocab_size, "specials": SPECIAL_TOKENS, "version": TOKENIZER_VERSION,
                  "sources": [[s.name, s.fingerprint()] for s in text_sources]})
    meta = root / "tokenizer.meta.json"
    why = f"none in {root} yet"
    if path.is_file() and meta.is_file():
        try:
            if json.loads(meta.read_text()).get("fingerprint") == fp:
                TextTokenizer.load(path, cfg)
                return path, False
            why = f"the one in {root} was trained on other text or sizes"
        except (json.JSONDecodeError, UnicodeDecodeError):
            why = f"the one in {root} is unreadable"
    say(f"training the text tokenizer ({cfg.text_vocab_size} tokens) on "
        f"{', '.join(s.name for s in text_sources) or 'bytes only (no text sources)'}: {why}")

    def texts():
        for s in text_sources:
            yield from s.texts()

    tok = TextTokenizer.train(texts(), cfg.text_vocab_size)
    tok.save(path)
    meta.write_text(json.dumps({"fingerprint": fp, "sources": [s.name for s in text_sources]}))
    return path, True


# --- one source -----------------------------------------------------------------
_QUEUE: Any = None


def _init_worker(queue: Any) -> None:
    global _QUEUE
    _QUEUE = queue
    if queue is not None:
        die_with_parent()



def _build(config: SourceConfig | Source, cfg: GatoConfig, tokenizer: str, root: str,
           fingerprint: str, val_fraction: float) -> SourceReport:
    """Tokenize one source, both splits (in a worker process, from its config; or inline, from the
    parent's :class:`Source`, so its inputs are opened once per prepare)."""
    t0 = time.perf_counter()
    source = config if isinstance(config, Source) else make_source(config)
    config = source.config
    tok = TextTokenizer.load(tokenizer, cfg)
    report = SourceReport(config.name, "built")
    skips: Counter = Counter()
    fields = source.field_dicts(cfg, val_fraction)
    for split in SPLITS:
        split_skips: Counter = Counter()
        with ShardWriter(shard_dir(Path(root), config.name, split), cfg) as writer:
            for _key, seq in source.units(split, cfg, tok, val_fraction, split_skips):
                writer.add(seq)
                if _QUEUE is not None:
                    _QUEUE.put((config.name, 1))
            writer.commit({"source": config.name, "kind": config.kind, "mode": source.mode,
                           "split": split, "fingerprint": fingerprint, "fields": fields,
                           "skipped": dict(split_skips)})
            report.units[split] = writer.n_units
            report.tokens[split] = writer.n_tokens
            report.patches += writer.n_patches
        if split == "train":  # readers re-read the inputs per split; count skips once
            skips += split_skips
    report.skipped = dict(skips)
    report.seconds = time.perf_counter() - t0
    return report


def source_fingerprint(source: Source, cfg: GatoConfig, tokenizer_sha: str, val_fraction: float) -> str:
    """The digest a source's shards are stamped with."""
    return _digest({"format": FORMAT, "source": source.fingerprint(), "layout": layout(cfg),
                    "tokenizer": tokenizer_sha if source.uses_text else None, "val_fraction": val_fraction})


def prepare(data: DataConfig, cfg: GatoConfig, progress: bool = True, force: bool = False,
            say: Callable[[str], None] = print, checked: bool = False, wait: float = 0.0) -> PrepareResult:
    """Build whatever is missing or stale under ``data.root``; see the module docstring. ``checked``:
    the caller has checked the sources' inputs already (``train`` does, before Lightning starts).
    ``wait``: seconds to wait for another run preparing the same folder, then find its shards (the
    nodes of a distributed run on a shared folder: one builds, the others wait); 0 refuses at once."""
    root = Path(data.root)
    sources = [make_source(s) for s in data.sources]
    for s in sources if not checked else ():
        s.check(cfg)  # missing or too large inputs fail before anything is written
    # Two prepares on one folder: the second stops in one line, or waits and then finds the shards.
    with folder_lock(root, "prepare", wait=wait, every_rank=True):
        root.mkdir(parents=True, exist_ok=True)
        tok_path, trained = _tokenizer(data, cfg, sources, say)
        tok_sha = file_sha256(tok_path)
        reports: dict[str, SourceReport] = {}
        todo: list[tuple[Source, str]] = []
        for s in sources:
            fp = source_fingerprint(s, cfg, tok_sha, data.val_fraction)
            metas = [read_meta(shard_dir(root, s.name, split)) for split in SPLITS]
            if not force and all(m is not None and m.get("fingerprint") == fp for m in metas):
                counts = dict(zip(SPLITS, (m["counts"] for m in metas), strict=True))
                units = {sp: c["units"] for sp, c in counts.items()}
                reports[s.name] = SourceReport(s.name, "up to date", units,
                                               {sp: c["tokens"] for sp, c in counts.items()},
                                               sum(c["patches"] for c in counts.values()),
                                               dict(metas[0].get("skipped", {})))
            else:
                todo.append((s, fp))
        if todo:
            for r in _run_builds(todo, cfg, tok_path, root, data, progress):
                reports[r.name] = r
        result = PrepareResult(root, tok_path, trained, [reports[s.name] for s in sources])
        _write_index(data, cfg, sources, tok_sha, root)
        return result


def _run_builds(todo: list[tuple[Source, str]], cfg: GatoConfig, tok_path: Path, root: Path,
                data: DataConfig, progress: bool) -> list[SourceReport]:
    args = [(s.config, cfg, str(tok_path), str(root), fp, data.val_fraction) for s, fp in todo]
    workers = min(data.workers, len(todo))
    bar = progress_bar("units", enabled=progress)
    with bar:
        tasks = {s.name: bar.add_task(s.name, total=s.expected_units()) for s, _ in todo}
        if workers <= 1:
            out = []
            for (source, _), a in zip(todo, args, strict=True):
                _init_worker(None)
                out.append(_build(source, *a[1:]))
                done = sum(out[-1].units.values())
                bar.update(tasks[a[0].name], completed=done, total=done)
            return out
        ctx = mp.get_context("fork")
        queue = ctx.Queue()  # not a Manager: its server process would outlive a killed parent
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(queue,))
        with pool:
            futures = [pool.submit(_build, *a) for a in args]
            while not all(f.done() for f in futures):
                _drain(queue, bar, tasks)
                time.sleep(0.1)
            _drain(queue, bar, tasks)
            out = [f.result() for f in futures]  # re-raises a worker's error (a GatoError stays one)
        for r in out:
            bar.update(tasks[r.name], completed=sum(r.units.values()), total=sum(r.units.values()))
        return out


def _drain(queue: Any, bar: Any, tasks: dict[str, Any]) -> None:
    counts: Counter = Counter()
    while not queue.empty():
        name, n = queue.get()
        counts[name] += n
    for name, n in counts.items():
        bar.advance(tasks[name], n)


def _write_index(data: DataConfig, cfg: GatoConfig, sources: list[Source], tok_sha: str, root: Path) -> None:
    index = {"tokenizer": "tokenizer.json", "tokenizer_sha256": tok_sha, "layout": layout(cfg),
             "sources": {s.name: {"kind": s.kind, "mode": s.mode, "weight": s.config.weight,
                                  "shards": {sp: str(shard_dir(Path("."), s.name, sp)) for sp in SPLITS},
                                  "fields": read_meta(shard_dir(root, s.name, "train"))["fields"]}
                         for s in sources}}
    text = json.dumps(index, indent=1)
    final = root / "data.json"
    if final.is_file() and final.read_text() == text:
        return  # unchanged: a no-op run writes nothing
    write_atomic(final, text)


def _other_layout(index: dict[str, Any], cfg: GatoConfig) -> str:
    """``"key=value, ..."`` of the layout values the shards were built with that differ from ``cfg``."""
    mine, theirs = layout(cfg), index.get("layout", {})
    return ", ".join(f"{k}={theirs.get(k)}" for k in mine if theirs.get(k) != mine[k])


def check_shards(data: DataConfig, cfg: GatoConfig, prepared: bool = True) -> str | None:
    """The one check of shards against a model config: shards under ``data.root`` built for another id
    layout or tokenizer are a :class:`ConfigError` (training never silently rebuilds or reads another
    run's data). ``prepared=False`` (before ``prepare``): a folder with no shards yet passes. With
    ``prepared=True`` the shards must exist, hold every source and match ``tokenizer.json``; returns
    its path."""
    root = Path(data.root)
    index_path = root / "data.json"
    if not index_path.is_file():
        if not prepared:
            return None
        raise ConfigError(f"no prepared data in {root}; run `gato-mini prepare --config ...` first")
    index = json.loads(index_path.read_text())
    was = _other_layout(index, cfg)
    if was:
        raise ConfigError(f"the shards in {root} were built for another model config ({was}); point "
                          f"data.root elsewhere or rebuild them with `gato-mini prepare --force`")
    if data.tokenizer is not None and file_sha256(Path(data.tokenizer)) != index.get("tokenizer_sha256"):
        raise ConfigError(f"the shards in {root} were built with another tokenizer than {data.tokenizer}; "
                          "point data.root elsewhere or rebuild them with `gato-mini prepare --force`")
    if not prepared:
        return None
    tok = root / "tokenizer.json"
    if not tok.is_file() or file_sha256(tok) != index["tokenizer_sha256"]:
        raise ConfigError(f"{tok} is not the tokenizer the shards in {root} were built with; re-run prepare")
    missing = [s.name for s in data.sources if s.name not in index["sources"]]
    if missing:
        raise ConfigError(f"source(s) {', '.join(missing)} are not prepared in {root}; re-run prepare")
    return str(tok)
