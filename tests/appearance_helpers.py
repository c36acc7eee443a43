"""Small appearance records the relit tests share."""

from __future__ import annotations

import numpy as np

from vidswap.appearance.track import TrackAppearance


def plain_track_model(size: int, level: float = 0.3, frames: int = 8) -> TrackAppearance:
    """A track appearance model of plain skin: mean and broad light ``level`` everywhere, every texel seen, ambient
    light only (SH band 0 = 1), no edge blur measured; ``size`` texels a side."""
    lighting = np.zeros((1, 9), np.float32)
    lighting[0, 0] = 1.0
    plain = np.full((3, size, size), level, np.float16)
    return TrackAppearance(mean=plain, weight=np.ones((1, size, size), np.float16), broad=plain.copy(),
                           lighting=lighting, edge_blur=np.array([np.nan], np.float32), frames=frames)
