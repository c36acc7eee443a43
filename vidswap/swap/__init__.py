"""The swap core: reenactment geometry, mesh texture rendering and the swap-core plug-in interface.

* :mod:`vidswap.swap.render`  -- batched z-buffered triangle rasteriser and texture renderer (torch, any device)
* :mod:`vidswap.swap.reenact` -- ``x = s·R·(x_c + δ) + t`` driving, shape mixing, multi-photo sources, inner masks
* :mod:`vidswap.swap.core`    -- ``SwapCore`` protocol, records, ``GeometricSwapCore``, crop frames
"""

from vidswap.swap.core import (
    GeometricSwapConfig,
    GeometricSwapCore,
    SourceFace,
    SourceIdentity,
    SwapBatch,
    SwapCore,
    SwapResult,
    crop_frame_from_landmarks,
    transform_landmarks,
    warp_to_crop,
)

__all__ = [
    "GeometricSwapConfig",
    "GeometricSwapCore",
    "SourceFace",
    "SourceIdentity",
    "SwapBatch",
    "SwapCore",
    "SwapResult",
    "crop_frame_from_landmarks",
    "transform_landmarks",
    "warp_to_crop",
]
