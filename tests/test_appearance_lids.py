"""The relit render's lids: the source's glints compressed where the lids bend with the plate's eye contour."""

from __future__ import annotations

import torch

from vidswap.appearance.relight import RelightParams, lid_glints


def _detail() -> torch.Tensor:
    """(1, 4, 1, 4) detail: white glint 2.0, coloured glint (4, 2, 2), skin-dark 0.9, a glint off the lids."""
    rgb = torch.tensor([[2.0, 4.0, 0.9, 2.0], [2.0, 2.0, 0.9, 2.0], [2.0, 2.0, 0.9, 2.0]])
    weight = torch.tensor([[0.3, 0.6, 0.9, 1.0]])
    return torch.cat([rgb, weight], 0)[None, :, None, :]


def test_lid_glints_compresses_above_the_knee_inside_the_lids_only():
    lids = torch.tensor([1.0, 1.0, 1.0, 0.0]).view(1, 1, 1, 4)
    out = lid_glints(_detail(), lids, knee=1.1, slope=0.2)
    # white glint: 1.1 + (2.0 - 1.1) x 0.2 = 1.28 on every channel
    torch.testing.assert_close(out[0, :3, 0, 0], torch.full((3,), 1.28))
    # coloured glint: luminance 0.2126 x 4 + 0.7152 x 2 + 0.0722 x 2 = 2.4252 -> 1.1 + 1.3252 x 0.2 = 1.36504,
    # colour ratios kept (red twice green and blue)
    lum = 0.2126 * out[0, 0, 0, 1] + 0.7152 * out[0, 1, 0, 1] + 0.0722 * out[0, 2, 0, 1]
    torch.testing.assert_close(lum, torch.tensor(1.36504))
    torch.testing.assert_close(out[0, 0, 0, 1] / out[0, 1, 0, 1], torch.tensor(2.0))
    # below the knee and outside the lids: unchanged; the weight channel passes
    torch.testing.assert_close(out[0, :3, 0, 2], torch.full((3,), 0.9))
    torch.testing.assert_close(out[0, :3, 0, 3], torch.full((3,), 2.0))
    torch.testing.assert_close(out[0, 3], _detail()[0, 3])


def test_lid_glints_blends_by_the_mask_and_slope_one_is_identity():
    half = torch.full((1, 1, 1, 4), 0.5)
    out = lid_glints(_detail(), half, knee=1.1, slope=0.2)
    # gain 1 + (1.28 / 2 - 1) x 0.5 = 0.82 -> 1.64
    torch.testing.assert_close(out[0, :3, 0, 0], torch.full((3,), 1.64))
    same = lid_glints(_detail(), torch.ones(1, 1, 1, 4), knee=1.1, slope=1.0)
    torch.testing.assert_close(same, _detail())
    assert RelightParams().lid_glint_slope < 1.0  # on by default
