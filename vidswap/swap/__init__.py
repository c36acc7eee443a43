"""Swap backends behind one contract, registered by name (``swap.core``).

* :mod:`vidswap.swap.base`      -- the contract: records, ``SwapCore`` (name, crop spec, needs, prepare / swap),
  ``PassthroughCore``, the ``Refiner`` protocol
* :mod:`vidswap.swap.registry`  -- name -> builder and config dataclass; each core validates its own section
* :mod:`vidswap.swap.geometric` -- reenactment + texture rendering (the default core)
* :mod:`vidswap.swap.learned`   -- one-shot swappers from user-supplied ONNX files (inswapper, simswap, hyperswap,
  ghost)
* :mod:`vidswap.swap.generator` -- the refinement generator tuned per clip (:mod:`vidswap.train.tune`)
* :mod:`vidswap.swap.facedancer` -- a FaceDancer generator trained by ``vidswap train`` (:mod:`vidswap.train.facedancer`)
* :mod:`vidswap.swap.stylegan.core` -- ``e4s-pti``: a StyleGAN2 checkpoint, W+ inversion and per-clip PTI
* :mod:`vidswap.swap.stylegan.e4s_core` -- ``e4s``: E4S's regional encoder and mask-guided StyleGAN2 (``vidswap train``)
* :mod:`vidswap.swap.stylegan.mfim_core` -- ``mfim``: S-space codes + style maps, ID mixing (``vidswap train``)
* :mod:`vidswap.swap.stylegan.idatt_core` -- ``idatt``: pSp encoder + cross-attention identity transfer, two-stage
  blending (``vidswap train``)

Importing this package registers the built-in cores (``geometric``, ``passthrough``, ``inswapper``, ``simswap``,
``hyperswap``, ``ghost``, ``facedancer``, ``e4s-pti``, ``megafs``, ``mfim``).
"""

from vidswap.swap.base import (
    SOURCE_NEEDS,
    PassthroughConfig,
    PassthroughCore,
    Refiner,
    SourceFace,
    SourceIdentity,
    SwapBatch,
    SwapCore,
    SwapResult,
)
from vidswap.swap.geometric import GeometricSwapConfig, build_geometric
from vidswap.swap.learned import (
    GhostConfig,
    HyperswapConfig,
    InswapperConfig,
    SimswapConfig,
    build_ghost,
    build_hyperswap,
    build_inswapper,
    build_simswap,
)
from vidswap.swap.facedancer import FaceDancerCoreConfig, build_facedancer
from vidswap.swap.stylegan.core import E4SPTIConfig, build_e4s_pti
from vidswap.swap.stylegan.idatt_core import IDATTCoreConfig, build_idatt
from vidswap.swap.stylegan.megafs_core import MegaFSCoreConfig, build_megafs
from vidswap.swap.stylegan.e4s_core import E4SCoreConfig, build_e4s
from vidswap.swap.stylegan.mfim_core import MFIMCoreConfig, build_mfim
from vidswap.swap.registry import CoreContext, build_core, core_config_type, core_names, register_core


def _passthrough(config: PassthroughConfig, context: CoreContext) -> PassthroughCore:
    return PassthroughCore(config)


register_core("geometric", build_geometric, GeometricSwapConfig)
register_core("passthrough", _passthrough, PassthroughConfig)
register_core("inswapper", build_inswapper, InswapperConfig)
register_core("simswap", build_simswap, SimswapConfig)
register_core("hyperswap", build_hyperswap, HyperswapConfig)
register_core("ghost", build_ghost, GhostConfig)
register_core("facedancer", build_facedancer, FaceDancerCoreConfig)
register_core("e4s-pti", build_e4s_pti, E4SPTIConfig)
register_core("megafs", build_megafs, MegaFSCoreConfig)
register_core("e4s", build_e4s, E4SCoreConfig)
register_core("mfim", build_mfim, MFIMCoreConfig)
register_core("idatt", build_idatt, IDATTCoreConfig)

__all__ = [
    "SOURCE_NEEDS", "CoreContext", "PassthroughConfig", "PassthroughCore", "Refiner", "SourceFace", "SourceIdentity",
    "SwapBatch", "SwapCore", "SwapResult", "build_core", "core_config_type", "core_names", "register_core",
]
