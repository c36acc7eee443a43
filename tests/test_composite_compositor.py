"""The compositor stage end to end on a synthetic face: colour fixed, occluder kept, plate untouched outside."""

import numpy as np
import pytest
import torch
from kornia.geometry.transform import invert_affine_transform, warp_affine

from vidswap.composite.compositor import CompositeParams, composite_track
from vidswap.composite.colour import ColourParams
from vidswap.composite.convert import from_float, to_float
from vidswap.composite.grain import GrainStats, synthesize_grain
from vidswap.composite.paste import PasteParams

CH, CW = 136, 128  # crop size
PH, PW = 240, 320  # plate size


def circle(cx, cy, r, n=48, ry=None):
    t = torch.arange(n, dtype=torch.float32) * (2 * np.pi / n)
    return torch.stack([cx + r * torch.cos(t), cy + (ry or r) * torch.sin(t)], dim=-1)


def synthetic_face():
    pts = torch.zeros(478, 3)
    regions, start = {}, 0
    shapes = {
        "face_oval": circle(64, 68, 44, 36, ry=54),
        "left_eye": circle(46, 56, 9, 16, ry=4),
        "right_eye": circle(82, 56, 9, 16, ry=4),
        "left_brow": circle(46, 43, 11, 10, ry=2.5),
        "right_brow": circle(82, 43, 11, 10, ry=2.5),
        "nose": torch.tensor([[64.0, 58], [72, 82], [56, 82]]),
        "lips_outer": circle(64, 98, 14, 20, ry=6),
    }
    for name, poly in shapes.items():
        pts[start : start + len(poly), :2] = poly
        regions[name] = np.arange(start, start + len(poly))
        start += len(poly)
    return pts, regions


def scene(frames=3, occluder=True):
    """Plates (uint16) with a skin-coloured face, grain and optionally a blue 'hand'; the matching crops."""
    pts, regions = synthetic_face()
    crop_to_plate = torch.tensor([[1.5, 0.0, 70.0], [0.0, 1.5, 15.0]])
    yy, xx = torch.meshgrid(torch.arange(PH).float(), torch.arange(PW).float(), indexing="ij")
    cx, cy = 64 * 1.5 + 70, 68 * 1.5 + 15
    inside = ((xx - cx) / 70) ** 2 + ((yy - cy) / 85) ** 2 < 1
    bg = torch.stack([0.25 + 0.2 * xx / PW, 0.35 + 0 * xx, 0.3 + 0.2 * yy / PH])
    skin = torch.tensor([0.80, 0.58, 0.47]).view(3, 1, 1) * (1 - 0.1 * (xx - cx) / 70)
    base = torch.where(inside, skin, bg)
    hand = (xx > cx + 20) & (xx < cx + 75) & (yy > cy - 5) & (yy < cy + 30)
    if occluder:
        base = torch.where(hand, torch.tensor([0.25, 0.3, 0.7]).view(3, 1, 1), base)
    truth = GrainStats(
        torch.tensor([[0.01, 0.01, 0.01]]), torch.eye(3)[None], torch.tensor([0.8]), torch.tensor([True])
    )
    plates = torch.stack([base + synthesize_grain(truth, (PH, PW), [f])[0] for f in range(frames)]).clamp(0, 1)
    plates_u16 = from_float(plates, np.uint16)
    plate = to_float(plates_u16)
    m = crop_to_plate.expand(frames, 2, 3).clone()
    target = warp_affine(plate, invert_affine_transform(m), (CH, CW), align_corners=True)
    lm = pts.expand(frames, -1, -1).clone()
    return plates_u16, plate, target, lm, regions, m, hand


def test_composite_track_fixes_colour_keeps_occluder_and_plate():
    plates_u16, plate, target, lm, regions, m, hand = scene()
    # The "swap": same face, wrong colour (cool and bright), as a generator without colour match would give.
    render = (target * torch.tensor([0.8, 1.0, 1.25]).view(1, 3, 1, 1) + 0.08).clamp(0, 1)
    params = CompositeParams(paste=PasteParams(mode="alpha"))
    res = composite_track(plate, target, render, lm, regions, m, frames=[1001, 1002, 1003], params=params)
    out = from_float(res.frames, np.uint16)
    assert res.frames.shape == plate.shape and res.alpha.shape == (3, 1, CH, CW)
    # Untouched plate where the pasted alpha is 0 (computed independently of the result).
    a_plate = warp_affine(res.alpha, m, (PH, PW), align_corners=True)
    zero = (a_plate[:, 0] <= 1.0 / 4096).numpy()
    assert zero.mean() > 0.7
    np.testing.assert_array_equal(out[zero], plates_u16[zero])
    # Colour: inside the visible face the result is close to the plate, the raw render is not.
    core = (a_plate[:, 0] > 0.99).numpy()
    assert core.sum() > 3000
    err_out = np.abs(out[core].astype(np.float64) - plates_u16[core]).mean() / 65535
    raw = warp_affine(render, m, (PH, PW), align_corners=True)
    err_raw = (raw - plate).abs().permute(0, 2, 3, 1).numpy()[core].mean()
    assert err_raw > 0.07 and err_out < 0.025
    # The blue hand in front of the face is left alone.
    hand_face = hand.expand(3, -1, -1).numpy() & (a_plate[:, 0] == 0).numpy()
    assert hand_face.sum() > 1000
    hand_alpha = a_plate[:, 0].numpy()[hand.expand(3, -1, -1).numpy()]
    assert np.quantile(hand_alpha, 0.95) < 0.05


@pytest.mark.parametrize("mode", ["laplacian", "poisson"])
def test_composite_track_other_blends_and_causal_chunks(mode):
    plates_u16, plate, target, lm, regions, m, _ = scene(frames=4, occluder=False)
    render = (target * 0.9 + 0.05).clamp(0, 1)
    params = CompositeParams(temporal="ema", paste=PasteParams(mode=mode), colour=ColourParams(method="reinhard"))
    first = composite_track(plate[:2], target[:2], render[:2], lm[:2], regions, m[:2], [0, 1], params=params)
    second = composite_track(
        plate[2:], target[2:], render[2:], lm[2:], regions, m[2:], [2, 3], params=params, state=first.state
    )
    whole = composite_track(plate, target, render, lm, regions, m, [0, 1, 2, 3], params=params)
    assert torch.allclose(torch.cat([first.frames, second.frames]), whole.frames, atol=1e-5)
    a_plate = warp_affine(whole.alpha, m, (PH, PW), align_corners=True)
    zero = (a_plate[:, 0] <= 1.0 / 4096).numpy()
    out = from_float(whole.frames, np.uint16)
    np.testing.assert_array_equal(out[zero], plates_u16[zero])


def test_regional_swap_and_histogram_option():
    _, plate, target, lm, regions, m, _ = scene(frames=2, occluder=False)
    render = (target * 0.7).clamp(0, 1)
    params = CompositeParams(regions=("eyes", "mouth"), colour=ColourParams(method="histogram"), grain=None)
    res = composite_track(plate, target, render, lm, regions, m, [0, 1], params=params)
    ys, xs = torch.nonzero(res.alpha[0, 0] > 0, as_tuple=True)
    assert ys.min() >= 45 and xs.min() >= 30 and xs.max() <= 98  # eyes and mouth only, not the cheeks
    assert res.alpha[0, 0, 75, 40].item() == 0.0


def test_colour_match_with_the_analysis_stats_does_not_move_with_the_occluder():
    """With the plate's statistics from the analysis (whole face skin, smoothed), the render's are taken over the
    same skin whatever covers it: the colour-matched face is the same with or without an occluder (a hand moving
    over the face does not pump its colour). Measured here instead, the occluder is left out and moves them."""
    from vidswap.composite.colour import masked_lab_stats, pack_stats
    from vidswap.composite.compositor import build_masks

    _, plate, target, lm, regions, m, _ = scene(frames=2, occluder=False)
    yy = torch.arange(CH, dtype=torch.float32).view(1, 1, CH, 1)
    render = (target * (0.7 + 0.5 * yy / CH) + 0.03).clamp(0, 1)  # a face lit from below: its mean moves with a hole
    occluder = torch.zeros(2, 1, CH, CW)
    occluder[0, :, 80:, :] = 1.0  # a hand over the lower face of the first frame
    params = CompositeParams(paste=PasteParams(mode="alpha"), grain=None)
    stats = pack_stats(*masked_lab_stats(target, build_masks(target, lm, regions, params).stats))
    kw = dict(params=params, plate_stats=stats)
    free = composite_track(plate, target, render, lm, regions, m, [0, 1], **kw)
    held = composite_track(plate, target, render, lm, regions, m, [0, 1], occluder=occluder, **kw)
    assert torch.equal(held.crop, free.crop)
    assert float(held.alpha[0, :, 90:].max()) == 0.0  # the occluder is still cut out of the paste
    measured = composite_track(plate, target, render, lm, regions, m, [0, 1], params=params, occluder=occluder)
    assert float((measured.crop[0] - composite_track(plate, target, render, lm, regions, m, [0, 1],
                                                     params=params).crop[0]).abs().max()) > 0.01


def test_track_grain_goes_on_the_face_only_and_auto_without_one_adds_none():
    """The analysis's track grain (one item, every frame): added under the paste alpha only, the same for the same
    frames and seed, new in every frame; ``auto`` (``auto_range`` set) without one is the render without grain,
    and ``true`` without one measures each frame's ring instead."""
    from vidswap.composite.grain import GrainParams

    _, plate, target, lm, regions, m, _ = scene(frames=2, occluder=False)
    render = (target * 0.9 + 0.05).clamp(0, 1)
    base = dict(paste=PasteParams(mode="alpha"), colour=ColourParams(method="none"))
    clean = composite_track(plate, target, render, lm, regions, m, [5, 6], params=CompositeParams(grain=None, **base))
    auto = CompositeParams(grain=GrainParams(auto_range=(0.55, 0.75)), **base)
    grain = GrainStats(torch.tensor([[0.02, 0.02, 0.02]]), torch.eye(3)[None], torch.tensor([0.0]),
                       torch.tensor([True]))
    got = composite_track(plate, target, render, lm, regions, m, [5, 6], params=auto, track_grain=grain)
    again = composite_track(plate, target, render, lm, regions, m, [5, 6], params=auto, track_grain=grain)
    assert torch.equal(got.frames, again.frames)
    a_plate = warp_affine(got.alpha, m, (PH, PW), align_corners=True)[:, 0]
    outside, core = a_plate == 0, a_plate > 0.99
    assert torch.equal(got.frames.permute(0, 2, 3, 1)[outside], clean.frames.permute(0, 2, 3, 1)[outside])
    added = (got.frames - clean.frames).permute(0, 2, 3, 1)[core]
    assert abs(float(added.std()) / 0.02 - 1.0) < 0.05  # the track's std, full weight where alpha is 1
    d0, d1 = (got.frames - clean.frames)[0], (got.frames - clean.frames)[1]
    assert not torch.equal(d0, d1)  # new grain in every frame
    none = composite_track(plate, target, render, lm, regions, m, [5, 6], params=auto)
    assert torch.equal(none.frames, clean.frames)
    forced = composite_track(plate, target, render, lm, regions, m, [5, 6],
                             params=CompositeParams(grain=GrainParams(), **base))
    assert not torch.equal(forced.frames, clean.frames)  # the scene's plates are grainy: each frame's ring reads it
