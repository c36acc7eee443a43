"""The geometric swap core (``swap.core: geometric``, the default): reenactment + texture rendering.

* :mod:`~vidswap.swap.geometric.core`      -- ``GeometricSwapCore``, its config and identity
* :mod:`~vidswap.swap.geometric.reenact`   -- ``x = s·R·(x_c + δ) + t`` driving, shape mixing, multi-photo sources,
  inner (eye / mouth) masks
* :mod:`~vidswap.appearance.raster`    -- batched z-buffered triangle rasteriser and polygon filler (torch)
* :mod:`~vidswap.appearance.texture`   -- source-side texture confidence and the texture renderer
* :mod:`~vidswap.swap.geometric.synthetic` -- synthetic meshes and textures for tests and benchmarks
"""

from vidswap.swap.geometric.core import GeometricIdentity, GeometricSwapConfig, GeometricSwapCore
from vidswap.swap.registry import CoreContext


def build_geometric(config: GeometricSwapConfig, context: CoreContext) -> GeometricSwapCore:
    """The registry's builder: the core on the context's topology, identities prepared on its device."""
    return GeometricSwapCore(config, context.topology, device=context.device)


__all__ = ["GeometricIdentity", "GeometricSwapConfig", "GeometricSwapCore", "build_geometric"]
