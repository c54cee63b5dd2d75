"""Run recipes (YAML files), installed as the package ``gato_mini.configs``.

Training recipes (``tiny.yaml``, ``small.yaml``, GPU recipes for Gato's sizes)
are added with training; they are found through ``importlib.resources`` so
they work from a wheel as well as from a checkout.
"""
