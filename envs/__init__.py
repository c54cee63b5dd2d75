"""The task suite: task registry, wrapper stacks and scripted experts.

Installed as ``gato_mini.envs``. Each task maps a name (``atari-pong``,
``mujoco-reacher``, ...) to a gymnasium env and its wrappers, how each
observation key is tokenized, an expert policy and reference scores. The env
suite knows nothing about the model.
"""
