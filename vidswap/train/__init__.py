"""Trainers: data, objectives, optimisation loops and checkpoints.

* :mod:`vidswap.train.tune` -- per-clip tuning (PTI) of the refinement generator on the shot's own frames
  (the ``tune`` pass)

Nothing is imported here, so ``import vidswap.train.tune.params`` (the ``tune`` config section) stays light.
"""
