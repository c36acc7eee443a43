"""``vidswap train`` for MAttFace / IDATT (``method: idatt``): config, checkpoints, steps, trainer."""
