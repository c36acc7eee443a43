"""Learned one-shot swappers from user-supplied ONNX files
(``swap.core: inswapper | simswap | hyperswap | ghost``).

* :mod:`vidswap.swap.learned.runtime`  -- onnxruntime sessions: explicit provider, checked; batched runs
* :mod:`vidswap.swap.learned.identity` -- the source vector (ArcFace, emap, embedding converter, GHOST's raw vector)
* :mod:`vidswap.swap.learned.restore`  -- restorers (GFPGAN / GPEN / CodeFormer) and the BiSeNet parser in the crop
* :mod:`vidswap.swap.learned.swapper`  -- the cores, their config sections, pixel boost
"""

from vidswap.swap.learned.runtime import LearnedSession, ProviderError
from vidswap.swap.learned.swapper import (
    GhostConfig,
    GhostCore,
    HyperswapConfig,
    HyperswapCore,
    InswapperConfig,
    InswapperCore,
    LearnedIdentity,
    LearnedSwapCore,
    SimswapConfig,
    SimswapCore,
    build_ghost,
    build_hyperswap,
    build_inswapper,
    build_simswap,
)

__all__ = ["GhostConfig", "GhostCore", "HyperswapConfig", "HyperswapCore", "InswapperConfig", "InswapperCore",
           "LearnedIdentity", "LearnedSession", "LearnedSwapCore", "ProviderError",
           "SimswapConfig", "SimswapCore", "build_ghost", "build_hyperswap", "build_inswapper",
           "build_simswap"]
