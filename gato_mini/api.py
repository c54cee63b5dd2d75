"""gato-mini from Python: load a model folder, then play, act, caption and chat, each in one line.

    import gato_mini

    gato = gato_mini.load("runs/quickstart/run/model")    # the folder `gato-mini train` exports
    report = gato.evaluate("atari-pong", episodes=4)       # what `gato-mini eval --source atari-pong` runs
    print(report.summary()["normalized_mean"])
    print(gato.caption("scene.png"))                       # what `gato-mini caption` runs
    print(gato.ask("scene.png", "what colour is the circle?"))  # what `gato-mini ask` runs
    print(gato.chat("Hello, how are you?"))                # one turn of `gato-mini chat`
    agent, env = gato.agent("control-pendulum")            # step an env yourself:
    obs, _ = env.reset(seed=0); agent.reset(0)
    action = agent.act({0: obs})[0]

Every call goes through the code the commands run (:func:`~gato_mini.agent.evaluate.evaluate_source`,
:func:`~gato_mini.agent.eval_control.source_agent`, :func:`~gato_mini.agent.prompting.caption`,
:func:`~gato_mini.agent.prompting.answer`,
:class:`~gato_mini.agent.prompting.ChatSession`); nothing here acts or scores on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from gato_mini.agent.agent import Agent
from gato_mini.agent.eval_captions import caption_image_size
from gato_mini.agent.eval_common import EvalOptions, SourceReport, source_evaluation
from gato_mini.agent.eval_control import source_agent
from gato_mini.agent.eval_vqa import question_image_size
from gato_mini.agent.evaluate import evaluate_source
from gato_mini.agent.prompting import ANSWER_SAMPLING, CHAT_SAMPLING, ChatSession, answer, caption
from gato_mini.data.captions import load_image
from gato_mini.errors import GatoError
from gato_mini.model.export import load_model
from gato_mini.model.generate import Sampling
from gato_mini.model.model import GatoModel
from gato_mini.tokenizers import image as image_tokens
from gato_mini.tokenizers.text import TextTokenizer


@dataclass
class Gato:
    """A loaded model folder (:func:`load`): the model, its text tokenizer and the sources it learned."""

    folder: Path
    model: GatoModel
    tokenizer: TextTokenizer
    trained: dict[str, Any]
    _chat: ChatSession | None = field(default=None, repr=False)

    @property
    def sources(self) -> list[str]:
        """The names of the sources the model was trained on (``sources.json``)."""
        return list(self.trained.get("sources", {}))

    def entry(self, source: str) -> str:
        """The method of this object that asks the model for what it learned of ``source`` (its kind's
        evaluation says: ``agent`` for a control task, ``caption``, ``chat``...)."""
        return source_evaluation(self.trained, source).api

    def evaluate(self, source: str, episodes: int | None = None, seed: int = 1000, env: str | None = None,
                 **options: Any) -> SourceReport:
        """Score the model on one source as ``gato-mini eval --source SOURCE`` does: episodes on held-out
        seeds for a control task (``env``: another gymnasium id to play it on), held-out images for a
        caption source, held-out perplexity for text. ``options``: any other field of
        :class:`~gato_mini.agent.eval_common.EvalOptions` (``num_envs``, ``max_steps``, ``video``...);
        environments run in this process unless ``step_timeout`` is given."""
        options.setdefault("step_timeout", None)
        opts = EvalOptions(episodes=episodes, seed=seed, env_id=env,
                           reference_cache=self.folder / "references.json", **options)
        return evaluate_source(self.model, self.tokenizer, self.trained, source, opts)

    def agent(self, source: str, env: str | None = None, num_envs: int = 1, temperature: float = 0.0,
              seed: int = 0, value_point: str = "median") -> tuple[Agent, Any]:
        """(an :class:`~gato_mini.agent.agent.Agent` of ``num_envs`` slots, one env of the task) for the
        control source ``source``, prompted as eval prompts: call ``agent.reset(i)`` at each episode's
        start and ``agent.act({i: obs})`` for each step's actions. ``env``: another gymnasium id with the
        same spaces. The env is built with the task's wrappers, so its observations are the dicts of fields
        the agent reads, as in training. ``value_point``: a greedy continuous action is the median (or
        ``"mode"``) of its predicted bins."""
        evaluation = source_evaluation(self.trained, source)
        if evaluation.api != "agent":
            raise GatoError(f"{source} is not a control source; ask it with gato.{evaluation.api}()")
        options = EvalOptions(seed=seed, temperature=temperature, env_id=env,
                              value_point=value_point).checked()
        spec, agent, _ = source_agent(self.model, self.tokenizer, self.trained, source, num_envs, options)
        return agent, spec.make()

    def caption(self, picture: str | Path | np.ndarray, temperature: float = 0.0, seed: int = 0,
                max_tokens: int = 32) -> str:
        """A caption for an image file or an RGB array (height, width, 3), fitted to the size the
        model's caption sources were trained at, as ``gato-mini caption`` fits it."""
        pixels = fit_picture(picture, caption_image_size(self.trained)[0] or (64, 64))
        sampling = Sampling(max_tokens, temperature, seed=seed).checked()
        return caption(self.model, self.tokenizer, pixels, sampling)

    def ask(self, picture: str | Path | np.ndarray, question: str, temperature: float = 0.0, seed: int = 0,
            max_tokens: int = ANSWER_SAMPLING.max_tokens) -> str:
        """The answer to ``question`` about an image file or an RGB array (height, width, 3), fitted to
        the size the model's visual-question sources were trained at, as ``gato-mini ask`` answers."""
        pixels = fit_picture(picture, question_image_size(self.trained) or (64, 64))
        sampling = replace(ANSWER_SAMPLING, max_tokens=max_tokens, temperature=temperature,
                           seed=seed).checked()
        return answer(self.model, self.tokenizer, pixels, question, sampling)

    def chat(self, message: str, system: str | None = None, reset: bool = False, temperature: float = 0.0,
             max_tokens: int = 64) -> str:
        """The model's reply to ``message``, continuing this object's conversation (``reset``: start a
        new one, opened by ``system``), as ``gato-mini chat`` replies."""
        sampling = replace(CHAT_SAMPLING, max_tokens=max_tokens, temperature=temperature).checked()
        if reset or self._chat is None or self._chat.system != system:
            self._chat = ChatSession(self.model, self.tokenizer, system, sampling)
        self._chat.sampling = sampling
        return self._chat.reply(message)


def fit_picture(picture: str | Path | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An image file, or an RGB uint8 array (height, width, 3), fitted inside ``size`` as training fitted
    its images (aspect kept, black padding): what ``caption`` and ``ask`` read, from Python or the
    command line."""
    if isinstance(picture, (str, Path)):
        return load_image(Path(picture), size)
    pixels = np.asarray(picture)
    if pixels.ndim != 3 or pixels.shape[-1] != 3 or pixels.dtype != np.uint8:
        raise GatoError(f"an image is a uint8 array (height, width, 3), got {pixels.dtype} {pixels.shape}")
    return image_tokens.letterbox(pixels, size)


def load(folder: str | Path, device: str = "cpu") -> Gato:
    """A model folder (``config.json``, ``tokenizer.json``, ``model.safetensors``, ``sources.json``),
    loaded without unpickling anything; a one-line error names a missing or corrupt file."""
    model, tokenizer, trained = load_model(folder, device)
    return Gato(Path(folder), model, tokenizer, trained)
