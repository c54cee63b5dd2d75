"""A source kind owns its whole life: a kind written inside this test (one class and its evaluation, never
touching the package) is prepared, trained, evaluated, printed and reported through the same code as the
built-in kinds; every built-in kind names an evaluation that exists."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
import yaml

from gato_mini.agent.eval_common import (
    EvalOptions,
    Evaluation,
    SourceReport,
    resolve_evaluation,
    source_entry,
    summary_evaluation,
    trained_source,
    write_json,
)
from gato_mini.agent.evaluate import evaluate_sources, print_eval, report_sections, score_cells
from gato_mini.data.sequence import document_sequence
from gato_mini.data.source import KINDS, Source, split_units
from gato_mini.data.windows import collate
from gato_mini.errors import GatoError
from gato_mini.model.export import load_model
from gato_mini.reports.figures import loss_groups
from gato_mini.reports.report import write_report
from gato_mini.terminal import terminal
from gato_mini.train.config import parse_run_config
from gato_mini.train.run import train


class CountingEvaluation(Evaluation):
    """The toy kind's evaluation: the model's loss on the held-out counting lines, and what share of
    their digits it predicts greedily (teacher-forced)."""

    name, label = "counting", "counting"
    api = "chat"
    compared = ("digits_right", True, 100.0)

    def evaluate(self, model, tokenizer, trained, name, options, progress=None) -> SourceReport:  # noqa: ANN001
        entry = source_entry(trained, name)
        source = trained_source(entry, name)
        val = entry["val_fraction"]
        units = [seq for _, seq in source.units("val", model.cfg, tokenizer, val, Counter())]
        batch = collate(list(enumerate(units)), model.cfg)
        batch = {k: v for k, v in batch.items() if k != "source"}
        with torch.no_grad():
            loss = float(model(**batch))
            logits = model.logits(**{k: v for k, v in batch.items() if k not in ("targets", "loss_mask")})
        mask = batch["loss_mask"]
        right = float((logits.argmax(-1) == batch["targets"])[mask].float().mean())
        if progress is not None:
            progress(None)
        return SourceReport(name, [], None, None, None, 0.0, extra={"counting_loss": loss,
                                                                       "digits_right": right,
                                                                       "lines": len(units)})

    def headline(self, summary: dict[str, Any]) -> dict[str, Any]:
        return {"digits_right": summary["digits_right"]}

    def metrics(self, summary: dict[str, Any]) -> str:
        right = 100 * summary["digits_right"]
        return f"counting loss {summary['counting_loss']:.2f}, {right:.0f}% digits right"

    def section(self, summary: dict[str, Any], out: Path) -> list[str]:
        return [f"### {summary['source']}: counting", "", f"{summary['lines']} held-out lines counted.", ""]


class Counting(Source):
    """Lines of digits counting up from a start, modulo 10: "3 4 5 6 7 8 9 0 1 2"."""

    name_of_kind = "toy-counting"
    defaults: ClassVar[dict[str, Any]] = {"count": 60, "length": 12}
    whole_numbers = ("count", "length")
    group, group_title = "counting", "counting lines"
    evaluation = CountingEvaluation

    def _input(self) -> Any:
        return "counting-v1"

    def _lines(self) -> list[tuple[str, str]]:
        n = self.options["length"]
        return [(f"line-{i}", " ".join(str((i + k) % 10) for k in range(n)))
                for i in range(self.options["count"])]

    def texts(self):  # noqa: ANN201
        yield from (line for _, line in self._lines())

    def units(self, split, cfg, tokenizer, val_fraction, skips):  # noqa: ANN001, ANN201
        return split_units(self._lines(), document_sequence, split, cfg, tokenizer, val_fraction)


@pytest.fixture
def counting_kind(monkeypatch):  # noqa: ANN201
    """The toy kind registered for one test (and gone after it): the one registration line."""
    monkeypatch.setitem(KINDS, Counting.name_of_kind, Counting)
    return Counting


def test_a_kind_written_outside_the_package_is_trained_evaluated_and_reported(counting_kind,
                                                                               tmp_path) -> None:
    raw = {"model": {"name": "tiny", "n_layer": 1, "n_embd": 32, "n_head": 2, "block_size": 64,
                     "text_vocab_size": 300},
           "data": {"root": str(tmp_path / "data"), "val_windows": 2, "val_fraction": 0.2, "workers": 1,
                    # "80": a YAML string, read as a number (the kind's whole_numbers)
                    "sources": {"count": {"kind": "toy-counting", "count": "80"}}},
           "train": {"out": str(tmp_path / "run"), "batch_size": 8, "lr": 3e-3, "warmup_steps": 5,
                     "checkpoint_every": 1000},
           "trainer": {"max_steps": 40, "val_check_interval": 40, "limit_val_batches": 1,
                       "log_every_n_steps": 5}}
    model, tok, trained = load_model(train(parse_run_config(yaml.safe_load(yaml.safe_dump(raw))),
                                           progress=False))
    assert trained["sources"]["count"]["kind"] == "toy-counting"
    assert isinstance(resolve_evaluation("toy-counting"), CountingEvaluation)

    reports = evaluate_sources(model, tok, trained, [("count", EvalOptions())], progress=False)
    write_json(reports, tmp_path / "eval.json", str(tmp_path / "run" / "model"))
    summary = json.loads((tmp_path / "eval.json").read_text())["sources"][0]
    lines = summary["lines"]  # the 20% of the 80 lines held out by their keys' hash
    assert summary["evaluation"] == "counting" and 8 <= lines <= 24
    assert summary["counting_loss"] < math.log(300)  # learned something of the lines in 40 steps
    assert isinstance(summary_evaluation(summary), CountingEvaluation)

    console = terminal(None)
    with console.capture() as captured:
        print_eval([summary], console)
    assert "% digits right" in captured.get() and "counting" in captured.get()

    cells = score_cells([summary])
    assert cells[0]["kind"] == "counting" and cells[0]["raw"] == "-"
    state = {"stages": {"train": {"seconds": 5.0}}}
    report = write_report(tmp_path, state, ["gato-mini", "quickstart"], cells,
                          report_sections([summary], tmp_path)).read_text()
    assert "### count: counting" in report and f"{lines} held-out lines counted." in report
    assert loss_groups()["counting"] == "counting lines"


def test_every_kind_names_an_evaluation_that_exists() -> None:
    for kind in KINDS:
        evaluation = resolve_evaluation(kind)
        assert isinstance(evaluation, Evaluation) and evaluation.name and evaluation.api, kind
        assert callable(evaluation.evaluate), kind
    names = {resolve_evaluation(k).name for k in KINDS}
    assert names == {"control", "captions", "text", "vqa"}


def test_a_summary_names_the_evaluation_that_reads_it() -> None:
    assert summary_evaluation({"source": "x", "evaluation": "captions"}).api == "caption"
    with pytest.raises(GatoError, match="names an evaluation 'nothing'"):
        summary_evaluation({"source": "x", "evaluation": "nothing"})
    with pytest.raises(GatoError, match="unknown source kind 'nope'"):
        resolve_evaluation("nope")
