"""Compositor: region/occlusion masks, colour match, blending, inverse-warp paste-back, grain, debug pictures.

Images are float32 ``(B, 3, H, W)`` RGB tensors (see :mod:`vidswap.composite.convert` for plate pixels),
masks ``(B, 1, H, W)`` in [0, 1], landmarks ``(B, 478, 3)`` in the pixels of the image they belong to.
Everything runs on the device of its inputs.
"""

from vidswap.composite.blend import alpha_blend, laplacian_blend, poisson_blend
from vidswap.composite.colour import (
    ColourParams,
    apply_stats_transfer,
    histogram_match,
    masked_lab_stats,
    pack_stats,
    smooth_stats,
    unpack_stats,
)
from vidswap.composite.compositor import (
    CompositeParams,
    CompositeResult,
    CropMasks,
    TrackState,
    build_masks,
    composite_track,
)
from vidswap.composite.convert import from_float, to_float
from vidswap.composite.debug import contact_sheet, strip
from vidswap.composite.grain import (
    GrainParams,
    GrainStats,
    apply_grain,
    grain_seed,
    measure_grain,
    measure_plate_grain,
    ring_mask,
)
from vidswap.composite.masks import (
    MaskParams,
    face_regions,
    feather_mask,
    polygon_mask,
    smooth_masks_temporal,
    swap_region_mask,
)
from vidswap.composite.occlusion import OcclusionParams, fit_skin_model, occlusion_visibility
from vidswap.composite.paste import PasteParams, paste_crop

__all__ = [
    "ColourParams",
    "CompositeParams",
    "CompositeResult",
    "CropMasks",
    "GrainParams",
    "GrainStats",
    "MaskParams",
    "OcclusionParams",
    "PasteParams",
    "TrackState",
    "alpha_blend",
    "apply_grain",
    "apply_stats_transfer",
    "build_masks",
    "composite_track",
    "contact_sheet",
    "face_regions",
    "feather_mask",
    "fit_skin_model",
    "from_float",
    "grain_seed",
    "histogram_match",
    "laplacian_blend",
    "masked_lab_stats",
    "measure_grain",
    "measure_plate_grain",
    "occlusion_visibility",
    "pack_stats",
    "paste_crop",
    "poisson_blend",
    "polygon_mask",
    "ring_mask",
    "smooth_masks_temporal",
    "smooth_stats",
    "strip",
    "swap_region_mask",
    "to_float",
    "unpack_stats",
]
