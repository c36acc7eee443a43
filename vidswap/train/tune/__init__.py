"""Per-clip tuning of the refinement generator (pivotal tuning, PTI) on the clip's own frames.

* :mod:`~vidswap.train.tune.params`    -- ``TuneParams``, the ``tune`` config section
* :mod:`~vidswap.train.tune.data`      -- training crops of the clip (``batch_from_track``, the render's recipe)
* :mod:`~vidswap.train.tune.objective` -- the training set (renders, flows, embeddings) and the loss terms
* :mod:`~vidswap.train.tune.loop`      -- the optimisation loop, validation and early stopping
* :mod:`~vidswap.train.tune.cache`     -- cache keys, tuned weights in the job folder, the per-track refiner
* :mod:`~vidswap.train.tune.plot`      -- loss curves

Nothing is imported here (the config module imports ``params`` alone).
"""
