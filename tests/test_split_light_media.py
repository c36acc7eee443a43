"""A face under two lights on real footage: the split-light clip (samples/split_light_plate.py: the Pexels woman under a
warm key left of a hard shadow edge through her face and a cool fill right of it). The whole face is swapped -- the
skin in the shadow is skin, not an occluder the plate keeps -- and the swapped face carries the split."""

from __future__ import annotations

import numpy as np
import pytest
from media_run_helpers import only_track as _track, run_cli as _run, video_frames as _frames

FRAMES = 12
EDGE = 455.0  # the shadow edge's column: through the middle of the face over these frames


@pytest.fixture(scope="module")
def swapped(media, tmp_path_factory):
    import split_light_plate

    work = tmp_path_factory.mktemp("split")
    clip = split_light_plate.split_light_clip(media("pexels_clip"), work / "split.mp4", frames=FRAMES,
                                              edge=(EDGE,))
    _run(["run", clip, "-s", media("astronaut"), "-o", work / "out.mkv", "-q"])
    return _frames(clip), _frames(work / "out.mkv"), _track(work / "out.vidswap")


def _sides(image_shape, points, margin: int = 15, erode: int = 10):
    """The face's inner region (the landmarks' oval eroded by ``erode`` px) left of the edge and right of it, each
    ``margin`` px clear of it: two (H, W) bool masks."""
    from vidswap.eval.frame_metrics import eroded
    from vidswap.eval.metrics import polygon_mask
    from vidswap.faces.topology import load_topology

    face = eroded(polygon_mask(image_shape, points[load_topology().regions["face_oval"], :2]), erode)
    x = np.arange(image_shape[1])[None, :]
    return face & (x < EDGE - margin), face & (x > EDGE + margin)


def test_the_face_in_the_shadow_is_swapped_too(swapped):
    """On both sides of the edge the result differs from the plate by what a swap changes (mean 8-bit difference
    >= 8; measured ~20 lit and ~35 in the shadow over these frames): before, the skin in the shadow was taken for
    an occluder, the plate's own face stayed there (mean difference 3 on the 90-frame clip) and its brow region was
    pasted as an orange arc."""
    plates, results, track = swapped
    assert len(results) == FRAMES
    for k, (plate, result) in enumerate(zip(plates, results)):
        lit, shade = _sides(plate.shape, track.smoothed[track.index_of(k)])
        assert lit.sum() > 3000 and shade.sum() > 3000
        diff = np.abs(result.astype(np.float32) - plate.astype(np.float32)).mean(axis=2)
        assert diff[lit].mean() >= 8.0 and diff[shade].mean() >= 8.0, (k, diff[lit].mean(), diff[shade].mean())


def test_the_swapped_face_carries_the_split_light(swapped):
    """The lit side's mean luma over the shadow side's, in the result, is within 0.7-1.2 x the plate's (plate ~1.75;
    result ~1.33 over these 12 frames, ~1.58 over 90, where the track's light model has more of the face on both
    sides): the relit face takes the shadow, not one light over the whole face (that would be near 1, 0.57 x)."""
    plates, results, track = swapped
    luma = np.array([0.2126, 0.7152, 0.0722], np.float32)
    for k, (plate, result) in enumerate(zip(plates, results)):
        lit, shade = _sides(plate.shape, track.smoothed[track.index_of(k)])
        ratio = lambda im: float((im[lit] @ luma).mean() / (im[shade] @ luma).mean())  # noqa: E731
        assert ratio(plate) > 1.5
        assert 0.7 <= ratio(result) / ratio(plate) <= 1.2, (k, ratio(result), ratio(plate))
