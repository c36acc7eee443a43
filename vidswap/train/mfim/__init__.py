"""MFIM training (``vidswap train`` with ``method: mfim`` in train.yaml): config, one optimisation step (encoder
and discriminator), checkpoints, and the plug-in on the shared run driver (:mod:`vidswap.train.loop`)."""
