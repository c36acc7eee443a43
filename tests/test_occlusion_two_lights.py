"""The skin-colour occlusion test on a face under two lights (vidswap.composite.occlusion): the skin under the
second light is skin; hair, a beard and a face mask are not; a face under one light is tested exactly as before."""

import torch
from test_composite_masks import circle

from vidswap.composite.masks import below_eyes, face_size, feather_mask, polygon_mask
from vidswap.composite.occlusion import fit_skin_model, occlusion_visibility, skin_distance, skin_sample_mask

SIZE = 160
EYE_ROWS = (58, 66)  # the eyes' rows in these scenes: below them, row 67 on


def _scene(edge: float | None = 80.0):
    """(1, 3, H, W) a disc of skin on a green ground, lit warm left of column ``edge`` and by a cool, dim light right
    of it (a 4-px blend across the edge; None: the warm light everywhere), with a little noise; the face polygon,
    its mask (bool) and the below-the-eyes mask."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    c, r = SIZE / 2, SIZE * 0.375
    inside = (xx - c) ** 2 + (yy - c) ** 2 < r * r
    skin = torch.tensor([0.85, 0.62, 0.50]).view(3, 1, 1)
    warm, cool = torch.tensor([1.0, 0.95, 0.85]).view(3, 1, 1), torch.tensor([0.30, 0.36, 0.62]).view(3, 1, 1)
    lit = torch.ones(SIZE, SIZE) if edge is None else ((edge - xx) / 4.0 + 0.5).clamp(0.0, 1.0)
    light = cool + (warm - cool) * lit
    face = skin * light + 0.01 * torch.randn(3, SIZE, SIZE, generator=g)
    img = torch.where(inside, face, torch.tensor([0.2, 0.35, 0.25]).view(3, 1, 1)).clamp(0, 1)[None]
    poly = circle(c, c, r)[None]
    eyes = torch.zeros(1, 1, SIZE, SIZE)
    eyes[..., EYE_ROWS[0]:EYE_ROWS[1] + 1, 50:110] = 1.0
    return img, poly, inside, below_eyes(eyes)


def _strands(img: torch.Tensor, rows: slice, inside: torch.Tensor) -> torch.Tensor:
    """``img`` with dark hair strands (alternating dark and darker 1-px columns, a brown cast) over ``rows`` of the
    face."""
    out = img.clone()
    cols = torch.arange(SIZE)
    hair = torch.where((cols % 2 == 0)[None, :], torch.tensor(0.22), torch.tensor(0.08))  # (1, W)
    colour = torch.tensor([1.0, 0.8, 0.6]).view(3, 1, 1) * hair
    region = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    region[rows] = True
    region &= inside
    out[0] = torch.where(region, colour.expand(3, SIZE, SIZE), out[0])
    return out, region


def _fit(img, poly, below=None):
    fs = face_size(poly)
    face = polygon_mask(poly, img.shape[-2:])
    model = fit_skin_model(img, skin_sample_mask(face, fs), below_eyes=below)
    return model, occlusion_visibility(img, face, model, fs), face, fs


def test_below_eyes_is_the_rows_under_the_lowest_eye_pixel():
    eyes = torch.zeros(2, 1, 10, 6)
    eyes[0, 0, 3:5, 1:3] = 1.0
    out = below_eyes(eyes)
    assert out.shape == (2, 1, 10, 6)
    assert torch.equal(out[0, 0, :, 0], torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 1, 1.0]))
    assert torch.equal(out[0, 0], out[0, 0, :, :1].expand(-1, 6))  # whole rows
    assert out[1].sum() == 0  # no eyes: nowhere


def test_a_face_under_two_lights_is_all_skin():
    img, poly, inside, below = _scene()
    model, vis, face, fs = _fit(img, poly, below)
    assert model.second is not None and bool(model.second[0])
    assert vis[0, 0][inside].min().item() == 1.0  # both sides and the blend along the edge
    # the single-light test (no second model) took one side for an occluder
    _, vis_one, _, _ = _fit(img, poly)
    assert (vis_one[0, 0][inside] < 0.99).float().mean().item() > 0.3


def test_an_occluder_on_a_face_under_two_lights_is_still_found():
    img, poly, inside, below = _scene()
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    hand = (xx >= 90) & (xx < 130) & (yy >= 70) & (yy < 110)  # a blue block on the shadow side
    img = torch.where(hand, torch.tensor([0.30, 0.30, 0.75]).view(3, 1, 1), img[0])[None]
    model, vis, face, fs = _fit(img, poly, below)
    assert bool(model.second[0])
    alpha = feather_mask(face, fs) * vis
    assert alpha[0, 0][hand & inside].max().item() < 0.02
    far = inside & ~hand & ((xx < 82) | (yy < 62))
    assert vis[0, 0][far].min().item() == 1.0


def test_a_fringe_above_the_eyes_is_no_second_light():
    img, poly, inside, below = _scene(edge=None)
    img, fringe = _strands(img, slice(20, 56), inside)  # above the eyes only
    model, vis, face, fs = _fit(img, poly, below)
    assert model.second is None
    assert vis[0, 0][fringe].mean().item() < 0.05  # the plate's hair stays


def test_a_beard_is_no_second_light():
    img, poly, inside, below = _scene(edge=None)
    img, beard = _strands(img, slice(92, 140), inside)  # below the eyes, strands
    model, vis, face, fs = _fit(img, poly, below)
    assert model.second is None
    assert vis[0, 0][beard].mean().item() < 0.05


def test_a_face_mask_is_no_second_light():
    """A smooth, pale blue mask over the lower face (a fifth of the skin samples and more, below the skin above it)
    stays an occluder: a second light's skin lies beside the first's, not below it."""
    img, poly, inside, below = _scene(edge=None)
    yy = torch.arange(SIZE)[:, None].expand(SIZE, SIZE)
    mask = inside & (yy >= 90)
    img = torch.where(mask, torch.tensor([0.70, 0.80, 0.92]).view(3, 1, 1), img[0])[None]
    model, vis, face, fs = _fit(img, poly, below)
    samples = skin_sample_mask(face, fs)[0, 0] > 0.5
    assert (samples & mask).sum() >= 0.2 * samples.sum()
    assert model.second is None
    assert vis[0, 0][mask & (yy >= 96)].max().item() < 0.05


def test_a_face_under_one_light_is_tested_as_before():
    img, poly, inside, below = _scene(edge=None)
    model, vis, face, fs = _fit(img, poly, below)
    plain, vis_plain, _, _ = _fit(img, poly)
    assert model.second is None
    assert torch.equal(model.mean, plain.mean) and torch.equal(model.cov, plain.cov)
    assert torch.equal(vis, vis_plain) and torch.equal(skin_distance(img, model), skin_distance(img, plain))


def test_each_face_is_tested_on_its_own():
    """A batch of a face under two lights and one under one light gives each the model it gets alone."""
    two, poly, _, below = _scene()
    one, _, _, _ = _scene(edge=None)
    both = torch.cat([two, one])
    fs = face_size(poly).expand(2)
    face = polygon_mask(poly.expand(2, -1, -1), both.shape[-2:])
    model = fit_skin_model(both, skin_sample_mask(face, fs), below_eyes=below.expand(2, -1, -1, -1))
    alone = [fit_skin_model(x, skin_sample_mask(face[:1], fs[:1]), below_eyes=below) for x in (two, one)]
    assert model.second.tolist() == [True, False] and alone[1].second is None
    assert torch.allclose(model.mean[0], alone[0].mean[0])
    assert torch.allclose(model.second_mean[0], alone[0].second_mean[0])
    assert torch.equal(model.mean[1], alone[1].mean[0]) and torch.equal(model.cov[1], alone[1].cov[0])
