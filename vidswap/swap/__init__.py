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

The built-in cores (``geometric``, ``passthrough``, ``inswapper``, ``simswap``, ``hyperswap``, ``ghost``,
``facedancer``, ``e4s-pti``, ``megafs``, ``e4s``, ``mfim``, ``idatt``) are listed in the registry by name, config
dataclass and builder, each imported when it is first asked for; this package imports nothing until one of its
names is used (``from vidswap.swap import SwapCore`` imports :mod:`vidswap.swap.base` then), so that building a job
config imports no torch.
"""

from __future__ import annotations

from vidswap.lazy_exports import lazy_exports

#: the names this package re-exports -> the module that declares them
_EXPORTS = {
    **dict.fromkeys(("SOURCE_NEEDS", "PassthroughCore", "Refiner", "SourceFace", "SourceIdentity", "SwapBatch",
                     "SwapCore", "SwapResult", "build_passthrough"), "vidswap.swap.base"),
    "PassthroughConfig": "vidswap.sections",
    **dict.fromkeys(("GeometricSwapConfig", "build_geometric"), "vidswap.swap.geometric"),
    **dict.fromkeys(("GhostConfig", "HyperswapConfig", "InswapperConfig", "SimswapConfig", "build_ghost",
                     "build_hyperswap", "build_inswapper", "build_simswap"), "vidswap.swap.learned"),
    **dict.fromkeys(("FaceDancerCoreConfig", "build_facedancer"), "vidswap.swap.facedancer"),
    **dict.fromkeys(("E4SPTIConfig", "build_e4s_pti"), "vidswap.swap.stylegan.core"),
    **dict.fromkeys(("IDATTCoreConfig", "build_idatt"), "vidswap.swap.stylegan.idatt_core"),
    **dict.fromkeys(("MegaFSCoreConfig", "build_megafs"), "vidswap.swap.stylegan.megafs_core"),
    **dict.fromkeys(("E4SCoreConfig", "build_e4s"), "vidswap.swap.stylegan.e4s_core"),
    **dict.fromkeys(("MFIMCoreConfig", "build_mfim"), "vidswap.swap.stylegan.mfim_core"),
    **dict.fromkeys(("CoreContext", "build_core", "core_config_type", "core_names", "register_core"),
                    "vidswap.swap.registry"),
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


__all__ = [
    "SOURCE_NEEDS", "CoreContext", "PassthroughConfig", "PassthroughCore", "Refiner", "SourceFace", "SourceIdentity",
    "SwapBatch", "SwapCore", "SwapResult", "build_core", "core_config_type", "core_names", "register_core",
]
