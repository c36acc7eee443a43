"""Learned one-shot swappers from user-supplied ONNX files (``swap.core: inswapper | simswap``).

* :mod:`vidswap.swap.learned.runtime`  -- onnxruntime sessions: explicit provider, checked; batched runs
* :mod:`vidswap.swap.learned.identity` -- the source vector (ArcFace, emap, embedding converter)
* :mod:`vidswap.swap.learned.swapper`  -- the cores and their config sections
"""

from vidswap.swap.learned.runtime import LearnedSession, ProviderError
from vidswap.swap.learned.swapper import (
    InswapperConfig,
    InswapperCore,
    LearnedIdentity,
    SimswapConfig,
    SimswapCore,
    build_inswapper,
    build_simswap,
)

__all__ = ["InswapperConfig", "InswapperCore", "LearnedIdentity", "LearnedSession", "ProviderError",
           "SimswapConfig", "SimswapCore", "build_inswapper", "build_simswap"]
