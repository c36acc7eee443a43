"""Compositor: region/occlusion masks, colour match, blending, inverse-warp paste-back, grain, debug pictures.

Images are float32 ``(B, 3, H, W)`` RGB tensors (see :mod:`vidswap.composite.convert` for plate pixels),
masks ``(B, 1, H, W)`` in [0, 1], landmarks ``(B, 478, 3)`` in the pixels of the image they belong to.
Everything runs on the device of its inputs.

This package imports nothing until one of its names is used (``from vidswap.composite import paste_crop``
imports :mod:`vidswap.composite.paste` then, PEP 562), so that the torch-free modules in it (the patch file
names, mattes) can be imported without torch and kornia, as a pass-through run does.
"""

from __future__ import annotations

from vidswap.lazy_exports import lazy_exports

#: the names this package re-exports -> the module that declares them
_EXPORTS = {
    **dict.fromkeys(("alpha_blend", "laplacian_blend", "poisson_blend"), "vidswap.composite.blend"),
    **dict.fromkeys(("ColourParams", "apply_stats_transfer", "histogram_match", "masked_lab_stats", "pack_stats",
                     "smooth_stats", "unpack_stats"), "vidswap.composite.colour"),
    **dict.fromkeys(("CompositeParams", "CompositeResult", "CropMasks", "TrackState", "build_masks",
                     "composite_track"), "vidswap.composite.compositor"),
    **dict.fromkeys(("from_float", "to_float"), "vidswap.composite.convert"),
    **dict.fromkeys(("contact_sheet", "strip"), "vidswap.composite.debug"),
    **dict.fromkeys(("GrainParams", "GrainStats", "apply_grain", "grain_seed", "measure_grain", "measure_plate_grain",
                     "ring_mask", "StoredGrain", "track_grain"), "vidswap.composite.grain"),
    **dict.fromkeys(("MaskParams", "face_regions", "feather_mask", "polygon_mask", "smooth_masks_temporal",
                     "swap_region_mask"), "vidswap.composite.masks"),
    **dict.fromkeys(("OcclusionParams", "fit_skin_model", "occlusion_visibility"), "vidswap.composite.occlusion"),
    **dict.fromkeys(("PasteParams", "paste_crop"), "vidswap.composite.paste"),
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


__all__ = sorted(_EXPORTS)
