"""The colour match in the window paste-back reads, and the box paste-back writes: same pasted plates."""

import numpy as np
import torch

from test_composite_compositor import scene
from vidswap.composite.colour_window import crop_windows
from vidswap.composite.compositor import CompositeParams, composite_track
from vidswap.composite.convert import from_float
from vidswap.composite.paste import PasteParams, paste_crop


def test_crop_windows_exact():
    reach = torch.zeros(3, 1, 64, 64)
    reach[0, 0, 10:20, 30:50] = 0.5
    reach[1, 0, 0, 63] = 1.0  # at the corner: the margin is clipped
    wins = crop_windows(reach, [False, False, True])
    assert wins[0] == (slice(9, 21), slice(29, 51))
    assert wins[1] == (slice(0, 2), slice(62, 64))
    assert wins[2] == (slice(0, 64), slice(0, 64))  # whole crop asked for
    assert crop_windows(torch.zeros(1, 1, 8, 8), [False]) == [None]


def test_windowed_colour_match_pastes_the_same_plates():
    plates_u16, plate, target, lm, regions, m, _ = scene(frames=2, occluder=False)
    render = (target * torch.tensor([0.8, 1.0, 1.25]).view(1, 3, 1, 1) + 0.08).clamp(0, 1)
    params = CompositeParams(paste=PasteParams(mode="alpha"), temporal="none")
    whole = composite_track(plate, target, render, lm, regions, m, [0, 1], params=params)
    win = composite_track(plate, target, render, lm, regions, m, [0, 1], params=params, window=True)
    a, b = from_float(whole.frames, np.uint16).astype(int), from_float(win.frames, np.uint16).astype(int)
    assert np.abs(a - b).max() <= 257  # 1 code value of 8 bits (the statistics' sums in another order)
    assert (a != b).mean() < 1e-3
    assert torch.equal(whole.alpha, win.alpha)
    # inside the window the colour-matched crop, outside it the render's own colours
    changed = (win.crop != render).any(dim=1)
    assert changed.any() and not changed[..., 0, :].any() and not changed[..., :, 0].any()
    inside = whole.alpha[:, 0] > 0
    assert torch.allclose(win.crop.permute(0, 2, 3, 1)[inside], whole.crop.permute(0, 2, 3, 1)[inside], atol=2e-6)


def test_paste_returns_the_boxes_it_wrote():
    plate = torch.rand(2, 3, 90, 120, generator=torch.Generator().manual_seed(3))
    crop = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    alpha = torch.zeros(2, 1, 32, 32)
    alpha[:, :, 8:24, 10:20] = 1.0
    m = torch.tensor([[[1.5, 0.0, 20.0], [0.0, 1.5, 10.0]], [[1.0, 0.0, 200.0], [0.0, 1.0, 10.0]]])
    out, a_plate, boxes = paste_crop(plate, crop, alpha, m, return_alpha=True, return_boxes=True)
    assert torch.equal(out, paste_crop(plate, crop, alpha, m)) and a_plate.shape == (2, 1, 90, 120)
    assert boxes[1] is None  # lands beyond the plate's right edge
    x0, y0, x1, y1 = boxes[0]
    # alpha columns 10..19 grown by 1 -> plate 1.5 * (9, 20) + 20 = 33.5, 50; rows 7, 24 -> 20.5, 46; then the 2-px margin
    assert (x0, y0, x1, y1) == (31, 18, 53, 49)
    keep = torch.ones(90, 120, dtype=torch.bool)
    keep[y0:y1, x0:x1] = False
    assert torch.equal(out[0][:, keep], plate[0][:, keep]) and not torch.equal(out[0], plate[0])
    assert torch.equal(out[1], plate[1])
    shrink = torch.tensor([[[0.5, 0.0, 20.0], [0.0, 0.5, 10.0]]])  # blurred before the warp: the whole plate
    assert paste_crop(plate[:1], crop[:1], alpha[:1], shrink, return_boxes=True)[1] == [(0, 0, 120, 90)]


def test_grown_windows_and_blur_reach_exact():
    from vidswap.composite.colour_window import blur_reach, grow_windows
    wins = [(slice(9, 21), slice(29, 51)), None, (slice(0, 2), slice(62, 64))]
    assert grow_windows(wins, [3, 5, 4], (64, 64)) == [(slice(6, 24), slice(26, 54)), None,
                                                        (slice(0, 6), slice(58, 64))]
    # sigma = 0.01 * size: 1.0 -> 3, 1.01 -> ceil(3.03) = 4, 0 -> 0
    assert blur_reach(torch.tensor([100.0, 101.0, 0.0]), 0.01) == [3, 4, 0]
    assert blur_reach(torch.tensor([100.0]), 0.0) == [0]


def test_windowed_colour_match_with_the_kept_contrast_pastes_the_same_plates(monkeypatch):
    """The kept contrast's blurred base, computed in the window grown by the blur's radius, is the whole crop's
    inside the paste's window: the same pasted plates as the whole-crop match."""
    from vidswap.composite import compositor
    from vidswap.composite.contrast import KeepContrastParams
    plates_u16, plate, target, lm, regions, m, _ = scene(frames=2, occluder=False)
    g = torch.Generator().manual_seed(5)
    noise = torch.rand(target.shape[0], 1, *target.shape[2:], generator=g)  # fine detail for the kept band
    render = ((target - 0.5) * 1.5 + 0.5 + 0.3 * (noise - 0.5)).clamp(0, 1)  # more contrast: L* gain < 1
    params = CompositeParams(paste=PasteParams(mode="alpha"), temporal="none",
                             keep_contrast=KeepContrastParams(strength=0.6, band=0.05))
    whole = composite_track(plate, target, render, lm, regions, m, [0, 1], params=params)
    win = composite_track(plate, target, render, lm, regions, m, [0, 1], params=params, window=True)
    assert not torch.equal(win.crop, whole.crop)  # windowed: the render's own colours outside the window
    a, b = from_float(whole.frames, np.uint16).astype(int), from_float(win.frames, np.uint16).astype(int)
    assert np.abs(a - b).max() <= 257 and (a != b).mean() < 1e-3
    inside = whole.alpha[:, 0] > 0
    assert torch.allclose(win.crop.permute(0, 2, 3, 1)[inside], whole.crop.permute(0, 2, 3, 1)[inside], atol=2e-6)
    # the growth matters: the base blurred in the paste's window alone differs from the whole crop's inside it
    monkeypatch.setattr(compositor, "blur_reach", lambda size, band: [0] * size.shape[0])
    short = composite_track(plate, target, render, lm, regions, m, [0, 1], params=params, window=True)
    assert (short.crop - whole.crop).abs().permute(0, 2, 3, 1)[inside].max() > 1e-3
