"""Per-region swap (composite.regions): selection, its validation and its feathering, on synthetic shapes with
exact answers (the real-clip end-to-end check is in test_regions_e2e.py)."""

import pytest
import torch

from test_composite_masks import synthetic_face

from vidswap.composite.compositor import CompositeConfig
from vidswap.composite.masks import SWAP_REGIONS, MaskParams, face_regions, feather_mask, polygon_mask, region_polygon
from vidswap.composite.regions import check_regions, covers_face, region_alpha, selection_mask, soften_selection
from vidswap.errors import ConfigError

PARAMS = MaskParams(antialias=False)


@pytest.fixture(scope="module")
def face():
    lm, loops = synthetic_face()
    return lm, loops, face_regions(lm, loops, (136, 128), PARAMS)


def inside(lm, loops, name):
    """(H, W) bool: the pixel centres inside one ungrown contour."""
    return polygon_mask(region_polygon(lm, loops[name]), (136, 128), antialias=False)[0, 0] > 0


@pytest.mark.parametrize("names", [["ears"], ["eyes", "lips"], []])
def test_unknown_or_empty_selection_is_a_config_error(names):
    with pytest.raises(ConfigError) as err:
        check_regions(names)
    assert err.value.exit_code == 2
    assert "eyes, brows, nose, mouth, skin" in str(err.value)
    with pytest.raises(ConfigError):
        CompositeConfig(regions=tuple(names))


def test_covers_face():
    assert covers_face(("face",)) and covers_face(SWAP_REGIONS) and covers_face(("mouth", "skin", "nose", "eyes",
                                                                                   "brows", "eyes"))
    assert not covers_face(("eyes", "brows", "nose", "mouth")) and not covers_face(("skin",))


def test_selection_is_the_union_of_its_parts(face):
    _, _, fr = face
    assert torch.equal(selection_mask(fr, ["eyes", "brows"]), torch.maximum(fr["eyes"], fr["brows"]))
    assert torch.equal(selection_mask(fr, ["face"]), fr["face"])
    assert torch.equal(selection_mask(fr, list(SWAP_REGIONS)), fr["face"])
    # skin without the nose leaves the nose out; with it, skin already holds the nose
    assert torch.equal(selection_mask(fr, ["skin"]), fr["skin"] * (1 - fr["nose"]))
    assert torch.equal(selection_mask(fr, ["skin", "nose"]), fr["skin"])
    # keeping the mouth: everything but the grown mouth
    assert torch.equal(selection_mask(fr, ["eyes", "brows", "nose", "skin"]), fr["face"] * (1 - fr["mouth"]))


def test_whole_face_alpha_is_the_face_feather_unchanged(face):
    _, _, fr = face
    before = feather_mask(fr["face"], fr["size"], PARAMS.erosion, PARAMS.feather)  # today's path
    for names in (SWAP_REGIONS, ("face",), ("skin", "eyes", "brows", "nose", "mouth")):
        assert torch.equal(region_alpha(fr, names, PARAMS), before)


def test_soften_ramps_across_the_boundary_only():
    sel = torch.zeros(1, 1, 40, 60)
    sel[..., 30:] = 1.0  # boundary between columns 29 and 30
    out = soften_selection(sel, 100.0, 0.075)  # grow 8 px: radius 5 px
    row = out[0, 0, 20]
    assert torch.equal(row[:25], torch.zeros(25)) and torch.equal(row[35:], torch.ones(25))
    assert torch.allclose(row[25:30] + row[30:35].flip(0), torch.ones(5), atol=1e-6)  # symmetric about the boundary
    assert bool((row[26:34].diff() > 0).all())
    assert torch.equal(soften_selection(sel, 100.0, 0.0), sel)


def test_eyes_and_brows_only(face):
    lm, loops, fr = face
    alpha = region_alpha(fr, ["eyes", "brows"], PARAMS)
    whole = region_alpha(fr, ["face"], PARAMS)
    for name in ("left_eye", "right_eye", "left_brow", "right_brow"):
        m = inside(lm, loops, name)
        assert torch.allclose(alpha[0, 0][m], whole[0, 0][m], atol=1e-6)  # the source in full inside the features
    for name in ("lips_outer", "nose"):
        assert alpha[0, 0][inside(lm, loops, name)].max().item() == 0.0  # the plate's mouth and nose
    assert alpha[0, 0, 80, 32].item() == 0.0 and whole[0, 0, 80, 32].item() > 0.9  # the cheek stays the plate's
    assert bool((alpha <= whole + 1e-7).all())


def test_keep_the_mouth(face):
    lm, loops, fr = face
    alpha = region_alpha(fr, ["eyes", "brows", "nose", "skin"], PARAMS)
    whole = region_alpha(fr, ["face"], PARAMS)
    assert alpha[0, 0][inside(lm, loops, "lips_outer")].max().item() == 0.0
    for name in ("left_eye", "right_eye", "nose"):
        m = inside(lm, loops, name)
        assert torch.allclose(alpha[0, 0][m], whole[0, 0][m], atol=1e-6)
    cheek = pytest.approx(whole[0, 0, 80, 40].item(), abs=1e-6)
    assert alpha[0, 0, 80, 40].item() == cheek  # the cheek is the source's


def test_a_selection_keeps_farm_chunks_identical():
    from test_composite_compositor import scene

    from vidswap.composite.colour import ColourParams
    from vidswap.composite.compositor import CompositeParams, composite_track

    _, plate, target, lm, loops, m, _ = scene(frames=4, occluder=False)
    lm = lm + torch.tensor([0.0, 0.7, 1.4, 2.1]).view(4, 1, 1)  # a moving face: every frame's mask differs
    render = (target * 0.7).clamp(0, 1)
    params = CompositeParams(regions=("eyes", "brows"), grain=None, temporal="none", occlusion=None, hands=None,
                             colour=ColourParams(method="none"))
    whole = composite_track(plate, target, render, lm, loops, m, [0, 1, 2, 3], params=params)
    parts = [composite_track(plate[i:i + 2], target[i:i + 2], render[i:i + 2], lm[i:i + 2], loops, m[i:i + 2],
                             [i, i + 1], params=params) for i in (0, 2)]
    assert torch.equal(torch.cat([p.frames for p in parts]), whole.frames)


def test_config_rejects_an_unknown_region(tmp_path):
    from vidswap.config import load_config

    over = {"composite": {"regions": ["eyes", "brows"]}}
    assert load_config(overrides=over).composite.regions == ("eyes", "brows")
    assert covers_face(load_config().composite.regions)  # default: the whole face
    with pytest.raises(ConfigError, match="unknown face region"):
        load_config(overrides={"composite": {"regions": ["eyes", "lips"]}})


def test_region_feather_widens_the_soft_edge_only(face):
    lm, loops, fr = face
    narrow = region_alpha(fr, ["eyes", "brows"], PARAMS)
    wide = region_alpha(fr, ["eyes", "brows"], PARAMS, 0.06, lm, loops)
    whole = region_alpha(fr, ["face"], PARAMS)
    assert torch.equal(region_alpha(fr, ["face"], PARAMS, 0.06, lm, loops), whole)  # the whole face ignores it
    assert torch.equal(region_alpha(fr, ["eyes", "brows"], PARAMS, PARAMS.feature_grow, lm, loops), narrow)
    assert (wide > 0).sum() > 1.3 * (narrow > 0).sum()  # reaches farther into the skin ...
    for name in ("left_eye", "right_brow"):
        m = inside(lm, loops, name)
        assert torch.allclose(wide[0, 0][m], whole[0, 0][m], atol=1e-6)  # ... the features stay whole
    assert wide[0, 0][inside(lm, loops, "lips_outer")].max().item() == 0.0
    with pytest.raises(ValueError, match="landmarks and loops"):
        region_alpha(fr, ["eyes"], PARAMS, 0.06)
    with pytest.raises(ConfigError, match="region_feather"):
        CompositeConfig(region_feather=0.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(face):
    lm, loops, fr = face
    cpu = region_alpha(fr, ["eyes", "nose"], PARAMS, 0.05, lm, loops)
    gpu = region_alpha({k: v.cuda() for k, v in fr.items()}, ["eyes", "nose"], PARAMS, 0.05, lm.cuda(), loops)
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-5)
