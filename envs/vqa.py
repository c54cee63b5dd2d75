"""Visual questions as an environment: an episode shows one image and one question about it, the action
is the answer (as :mod:`~gato_mini.envs.caption` serves captioning), so that VQA is evaluated by the same
`Agent` and rollout loop as Atari, MuJoCo and captions:

* observation: ``{"image": uint8 (H, W[, C]), "question": str}``, the image fitted as the source trains on
  it (so it is tokenized identically) and the question's text;
* action: the answer, ``gymnasium.spaces.Text``;
* reward: VQA accuracy (:func:`~gato_mini.data.vqa.vqa_accuracy`, ``min(1, matching answers / 3)``);
  the episode ends after one step;
* ``info``: the answer, every answer given, ``exact_match`` (the most common answer, after VQA's
  normalization), the question's key and type.

Episode seeds pick questions: ``reset(seed=s)`` asks question ``s mod N``.
"""

from __future__ import annotations

from typing import Any

from gymnasium import spaces

from gato_mini.data.sources import KINDS, source_of
from gato_mini.data.vqa import Questions, VqaItem, majority_answer, normalize_answer, vqa_accuracy
from gato_mini.envs.caption import CHARSET, ImageEnv
from gato_mini.errors import GatoError


def question_items(kind: str, options: dict[str, Any] | None = None, split: str = "val",
                   val_fraction: float = 0.05, limit: int | None = None) -> list[VqaItem]:
    """The questions of one split of a visual-question source (the first ``limit``), each with every
    answer given to it."""
    source = source_of(kind, kind, options) if kind in KINDS else None
    if not isinstance(source, Questions):
        raise GatoError(f"{kind!r} is not a visual-question source kind")
    return source.items(split, val_fraction, limit)


class QuestionEnv(ImageEnv):
    """One image and one question per episode; the action is the answer (see the module docstring)."""

    item_name = "question"

    def extra_spaces(self) -> dict[str, spaces.Space]:
        return {"question": spaces.Text(max_length=4096, charset=CHARSET)}

    def extra(self, item: VqaItem) -> dict[str, Any]:
        return {"question": item.question}

    def step(self, action: Any):
        item, answer = self.current(), str(action)
        info = {"answer": answer, "answers": list(item.answers), "question": item.question,
                "type": item.qtype,
                "exact_match": normalize_answer(answer) == normalize_answer(majority_answer(item.answers)),
                "key": item.key}
        return self.observation(), vqa_accuracy(answer, item.answers), True, False, info
