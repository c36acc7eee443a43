"""E4S training (``vidswap train`` with ``method: e4s`` in train.yaml): config, the reconstruction step of regional
GAN inversion (the paper's proxy task: no swap pairs needed), checkpoints and the run loop."""
