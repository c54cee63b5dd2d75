"""A trained model as a collection policy: the acting half of DAgger (Ross et al. 2011).

``gato-mini collect --model DIR`` lets the model act while the ``--policy`` (an expert, a task's other
demonstrator or the user's ``MODULE:CALLABLE``) labels every state the model reaches; the dataset logs
the labeller's actions (:func:`gato_mini.collect.rollout`). :class:`ModelPolicy` follows the policy
protocol of :mod:`gato_mini.envs.policies` (``reset(env, seed)``, ``__call__(obs, env)``) with one
:class:`~gato_mini.agent.agent.Agent` slot, greedy unless given a temperature, and unprompted unless
given a demonstration dataset (then prompted as ``gato-mini eval`` prompts: the end of its best
episode). Unprompted is the measured better default for DAgger: the pendulum after one round scored
73, 97 and 92 in three seedings with an unprompted acting model, 22, 65 and 94 with a prompted one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from gato_mini.agent.agent import Agent, AgentOptions
from gato_mini.agent.eval_control import show_fields, source_fields, source_image_size, source_prompt
from gato_mini.errors import GatoError
from gato_mini.fields import FieldSpec, as_observation_dict, same_spaces
from gato_mini.model.export import load_model
from gato_mini.model.generate import Sampling


def acting_source(trained: dict[str, Any], task_name: str, fields: dict[str, FieldSpec],
                  action: FieldSpec, folder: str | Path, env_id: str | None = None) -> str:
    """The source of a model (``trained``: its ``sources.json``) to act on the task ``task_name`` (env
    ``env_id``) with: the source of that name, else the one ``episodes`` source whose fields are the
    env's; of several, the first whose dataset was recorded in that env (one env's demonstrations and
    DAgger rounds are several sources). A one-line error when the model learned no such source."""
    entries = {k: v for k, v in trained.get("sources", {}).items() if v.get("kind") == "episodes"}

    if task_name in entries:
        if not same_spaces(source_fields(entries[task_name]), (fields, action)):
            raise GatoError(f"{task_name}: the env has {show_fields(fields, action)}, but the model {folder} "
                            f"was trained on {show_fields(*source_fields(entries[task_name]))}")
        return task_name
    names = [k for k, v in entries.items() if same_spaces(source_fields(v), (fields, action))]
    if not names:
        have = "; ".join(f"{k}: {show_fields(*source_fields(v))}" for k, v in entries.items()) or "none"
        raise GatoError(f"the model {folder} was not trained on the fields of {task_name} "
                        f"({show_fields(fields, action)}); its control sources: {have}")
    if len(names) > 1:
        same_env = [k for k in names if env_id is not None and _recorded_in(entries[k]) == env_id]
        if same_env:
            return same_env[0]
        raise GatoError(f"the model {folder} has several sources with the fields of {task_name} "
                        f"({', '.join(names)}); record with --task and one of these names")
    return names[0]


def _recorded_in(entry: dict[str, Any]) -> str | None:
    """The env id a source's dataset was recorded in (its stored env spec), or None."""
    try:
        return json.loads(entry["env_spec"])["id"]
    except (KeyError, TypeError, ValueError):
        return None


class ModelPolicy:
    """A model folder acting on a task it was trained on (see the module docstring): on one env through
    the policy protocol, or on ``num_envs`` envs at once, one agent slot each (:meth:`reset_slot`,
    :meth:`act_slots`; :func:`gato_mini.collect.rollouts` drives them). With several envs and a
    temperature, the draws come from one stream shared by the slots."""

    def __init__(self, folder: str | Path, task: Any, temperature: float = 0.0,
                 prompt_dataset: str | None = None, num_envs: int = 1) -> None:
        model, tokenizer, trained = load_model(folder)
        fields, action = task.fields()
        if action.modality == "text":
            raise GatoError(f"{task.name} is a captioning task: a model cannot act in it for collection")
        self.name = acting_source(trained, task.name, fields, action, folder, task.env_id)
        entry = trained["sources"][self.name]
        fields, action = source_fields(entry)  # as trained: vector fields carry their statistics
        # Unprompted unless a dataset is named: prompted with its own demonstrations, the acting model
        # visited fewer of the states it fails in, and DAgger taught less (docs/learning.md, session 11).
        prompt, self.prompt_name = None, None
        if prompt_dataset is not None:
            prompt, self.prompt_name = source_prompt(model.cfg, tokenizer, entry, self.name, (fields, action),
                                                     prompt_dataset)
        options = AgentOptions(Sampling(temperature=temperature), image_size=source_image_size(entry))
        self.num_envs = int(num_envs)
        self.agent = Agent(model, fields, action, self.num_envs, tokenizer, prompt, options)

    def reset(self, env: Any, seed: int | None = None) -> None:
        """A new episode: the context is the prompt again; sampling (temperature > 0) is reseeded."""
        self.agent.reset(0)
        self.agent.generator.manual_seed(0 if seed is None else int(seed))

    def __call__(self, obs: dict[str, Any], env: Any) -> Any:
        action = self.agent.act({0: as_observation_dict(obs, env.observation_space)})[0]
        return np.asarray(action).item() if np.ndim(action) == 0 else action

    def reset_slot(self, slot: int, seed: int | None = None) -> None:
        """A new episode in ``slot``: its context is the prompt again (the others' are left alone)."""
        self.agent.reset(slot)

    def act_slots(self, observations: dict[int, dict[str, Any]], env: Any) -> dict[int, Any]:
        """The model's actions for the slots given (slot -> observation) in one call; ``env``: any of the
        envs (their observation space)."""
        acts = self.agent.act({i: as_observation_dict(o, env.observation_space)
                               for i, o in observations.items()})
        return {i: np.asarray(a).item() if np.ndim(a) == 0 else a for i, a in acts.items()}
