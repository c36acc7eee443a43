"""The analysis's face crops at a bounded resolution: warp_to_crop's 2x2 box halvings counted from the matrices
(crop_halvings, halved_matrices) and done on the plate region in integers before it goes to float
(halved_region), so region_crops' float work follows the crop's size, not the plate's."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidswap.composite.convert import to_float
from vidswap.composite.roi import halved_region, region_crops
from vidswap.faces.align import crop_halvings, halved_matrices, warp_to_crop


def _float_halvings(image: np.ndarray, k: int) -> torch.Tensor:
    out = to_float(image)[None]
    for _ in range(k):
        out = F.avg_pool2d(out, 2, ceil_mode=True)
    return out[0]


def test_crop_halvings_counts_until_half_scale_or_small_image():
    scale = lambda s: torch.tensor([[[s, 0.0, 0.0], [0.0, s, 0.0]]])  # noqa: E731
    assert crop_halvings(scale(1.0), (100, 100)) == 0
    assert crop_halvings(scale(0.5), (100, 100)) == 0
    assert crop_halvings(scale(0.49), (100, 100)) == 1
    assert crop_halvings(scale(0.2), (100, 100)) == 2  # 0.2 -> 0.4 -> 0.8
    assert crop_halvings(scale(0.1), (1000, 1000)) == 3  # 0.1 -> 0.2 -> 0.4 -> 0.8
    assert crop_halvings(scale(0.1), (7, 100)) == 2  # 7 -> 4 -> 2: stops once the short side is under 4
    # the largest scale of the batch decides (one halving chain for every crop of a frame)
    both = torch.cat([scale(0.1), scale(0.3)])
    assert crop_halvings(both, (1000, 1000)) == 1


def test_halved_matrices_map_halved_pixels_to_the_same_crop_point():
    m = torch.tensor([[[0.3, 0.05, -7.0], [-0.05, 0.3, 4.0]]], dtype=torch.float64)
    h = halved_matrices(m, 2)
    # pixel (x, y) of the image halved twice covers full-size pixels 4x .. 4x + 3: its centre is 4x + 1.5
    for x, y in ((0.0, 0.0), (3.0, 5.0), (10.0, 2.0)):
        full = m[0] @ torch.tensor([4 * x + 1.5, 4 * y + 1.5, 1.0], dtype=torch.float64)
        torch.testing.assert_close(h[0] @ torch.tensor([x, y, 1.0], dtype=torch.float64), full)
    assert torch.equal(halved_matrices(m, 0), m)


@pytest.mark.parametrize("dtype, top", [(np.uint8, 256), (np.uint16, 65536)])
@pytest.mark.parametrize("shape", [(64, 96), (37, 53), (5, 3), (130, 67), (8, 13)])
def test_halved_region_equals_float_box_halvings(dtype, top, shape):
    """Full blocks summed in integers, partial last rows / columns (ceil mode) averaged as avg_pool2d does."""
    image = np.random.default_rng(sum(shape)).integers(0, top, (*shape, 3)).astype(dtype)
    for k in range(4):
        got, want = halved_region(image, k), _float_halvings(image, k)
        assert got.shape == want.shape and got.dtype == torch.float32
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_halved_region_float_plate_and_exact_values():
    image = np.random.default_rng(1).normal(0.5, 0.7, (21, 18, 3)).astype(np.float16)  # EXR-like, out of [0, 1]
    torch.testing.assert_close(halved_region(image, 2), _float_halvings(image, 2), atol=1e-6, rtol=0)
    # a 2x3 image halved once: one full block and a partial column of two pixels
    tiny = np.array([[[0], [255], [51]], [[255], [0], [102]]], np.uint8)
    assert halved_region(tiny, 1)[0].tolist() == [[pytest.approx(0.5), pytest.approx(0.3)]]


def test_region_crops_of_a_large_face_equal_whole_frame_crops():
    """A face much larger than the crop (a 4K close-up): the halvings happen on the region, not the frame."""
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (600, 900, 3), dtype=np.uint8)
    m = torch.tensor([[[0.12, 0.02, -30.0], [-0.02, 0.12, -12.0]],
                      [[0.2, 0.0, -100.0], [0.0, 0.2, -50.0]]], dtype=torch.float32)
    whole = warp_to_crop(to_float(image)[None].expand(2, -1, -1, -1), m, 48)
    region = region_crops(image, m, 48)
    assert region.shape == (2, 3, 48, 48)
    torch.testing.assert_close(region, whole, atol=2e-4, rtol=0)


def test_analysis_key_covers_the_sampling_revision(monkeypatch):
    """A change to how the analysis samples the plate is a new cache key (no stale shared analysis is reused)."""
    import vidswap.faces.analysis_key as keyed  # where the key reads the revision

    def key():
        return keyed.analysis_key("clip", [0, 1, 2], keyed.AnalysisConfig(), keyed.SmoothingConfig(), {})

    base = key()
    monkeypatch.setattr(keyed, "SAMPLING_REVISION", keyed.SAMPLING_REVISION + 1)
    assert key() != base
