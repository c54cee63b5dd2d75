"""`gato-mini eval`: a model plays tasks; raw and normalized scores, JSON, an optional video.

Three kinds of task, one table and one JSON file, each kind with its evaluator
(the group of its source, :mod:`gato_mini.data.sources`):

* control (an ``episodes`` source): episodes in the env (:mod:`~gato_mini.agent.eval_control`);
* captions (a ``caption-*`` source): the held-out images through the caption env
  and the same `Agent` (:mod:`~gato_mini.agent.eval_captions`);
* text and chat (``text*``/``chat*`` sources): perplexity on the held-out
  split (:mod:`~gato_mini.agent.eval_text`).

What they share (the report, the defaults per kind, the JSON) is in
:mod:`~gato_mini.agent.eval_common`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gato_mini.agent.eval_captions import evaluate_captions
from gato_mini.agent.eval_common import TaskReport, source_group
from gato_mini.agent.eval_control import evaluate_control
from gato_mini.agent.eval_text import evaluate_text
from gato_mini.errors import GatoError
from gato_mini.model.model import GatoModel
from gato_mini.tokenizers.text import TextTokenizer


def evaluate_task(model: GatoModel, tokenizer: TextTokenizer, tasks: dict[str, Any], task: str, episodes: int,
                  num_envs: int, seed: int = 0, prompt_dataset: str | None = None, use_prompt: bool = True,
                  prompt_tokens: int | None = None, temperature: float = 0.0, use_cache: bool = True,
                  max_steps: int | None = None, video: str | None = None, progress: Any = None,
                  samples: str | None = None, step_timeout: float | None = 60.0,
                  offline: bool = True, env_id: str | None = None, imports: tuple[str, ...] = (),
                  reference_cache: Path | None = None) -> TaskReport:
    """Evaluate ``task``: run ``episodes`` episodes on ``num_envs`` environments at once (control and
    caption tasks; ``episodes`` 0 means every held-out image), or held-out perplexity (text and chat).

    ``samples``: where a caption task's grid image of samples goes. ``step_timeout``: control envs run
    in their own processes and an env that does not answer a reset or step within this many seconds
    fails its episode (its process is killed); None or 0 runs them in this process, with no limit.
    ``offline``: also the teacher-forced action metrics on held-out logged episodes
    (:mod:`gato_mini.agent.offline`), under ``extra["offline"]``. ``env_id``/``imports``: the gymnasium
    env to evaluate an ``episodes`` source on instead of the registry's or the dataset's stored one
    (:func:`source_task`). ``reference_cache``: where the measured references of an env outside the
    registry, or of a registry task at a ``max_steps`` below its own cap, are kept
    (:func:`measured_references`): a normalized score always compares like with like.
    """
    if num_envs < 1 or episodes < 0:
        raise GatoError(f"--num-envs must be at least 1 and --episodes at least 0, got {num_envs} and "
                        f"{episodes}")
    group = source_group(tasks, task)
    if group == "captions":
        return evaluate_captions(model, tokenizer, tasks, task, episodes, num_envs, seed, temperature,
                                 use_cache, samples, progress)
    if group == "text":
        return evaluate_text(model, tokenizer, tasks, task, progress)
    return evaluate_control(model, tokenizer, tasks, task, episodes, num_envs, seed, prompt_dataset,
                            use_prompt, prompt_tokens, temperature, use_cache, max_steps, video, progress,
                            step_timeout, offline, env_id, imports, reference_cache)
