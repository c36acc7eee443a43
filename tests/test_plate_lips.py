"""The plate's lips under the source's lip colour (vidswap.swap.geometric.plate_lips): exact pieces on synthetic
lips, the relit render with and without them, and the option."""

import pytest
import torch

from vidswap.appearance.encoding import luminance
from vidswap.faces.pose import canonical_face
from vidswap.faces.topology import load_topology
from vidswap.swap.geometric.core import GeometricSwapConfig
from vidswap.swap.geometric.plate_lips import (CORE_INSET, RING, face_weight, lip_box, lip_colour, lip_regions,
                                               lip_surface, masked_mean, take_lips)
from vidswap.swap.geometric.relit import RelitRenderer

# a synthetic mouth on a 64 x 96 picture: the outer contour a 40 x 16 rectangle, the opening a 28 x 2 slit in it
_POINTS = torch.tensor([[[28.0, 24.0], [68.0, 24.0], [68.0, 40.0], [28.0, 40.0],
                         [34.0, 31.0], [62.0, 31.0], [62.0, 33.0], [34.0, 33.0]]])
_OUTER, _INNER = torch.tensor([0, 1, 2, 3]), torch.tensor([4, 5, 6, 7])
_SIZE, _HEIGHT = (64, 96), 100.0


def _regions():
    return lip_regions(_POINTS, _OUTER, _INNER, _SIZE, _HEIGHT)


def _painted(skin, lips, regions) -> torch.Tensor:
    """(1, 3, 64, 96) linear: ``skin`` colour everywhere, ``lips`` colour on the lips."""
    skin, lips = torch.tensor(skin)[None, :, None, None], torch.tensor(lips)[None, :, None, None]
    return skin + regions["lips"] * (lips - skin)


def test_lip_regions_exact():
    """The lips are the rectangle less the slit (OpenCV's fill: edges included); the core is 1 px (0.01 x 100)
    inside both borders; the ring 3.5-5.5 px outside (radii 4 and 6 px, rounded); the band is 0 in the slit, ~1 on
    the lips away from the border and 0 far from the mouth."""
    r = _regions()
    lips = r["lips"][0, 0]
    assert int(lips.sum()) == 41 * 17 - 29 * 3 and float(lips[31:34, 34:63].max()) == 0.0
    core = r["core"][0, 0]
    assert float(core[25, 29]) == 1.0 and float(core[24, 29]) == 0.0 and float(core[25, 28]) == 0.0
    assert float(core[29, 40]) == 1.0 and float(core[30, 40]) == 0.0  # one pixel clear of the slit (rows 31-33)
    ring = r["ring"][0, 0]  # the lips end at column 68 and row 24: the ring is 5-6 px (rounded radii) beyond
    assert ring[32, 70:76].tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 0.0]
    assert ring[16:22, 48].tolist() == [0.0, 0.0, 1.0, 1.0, 0.0, 0.0] and float((ring * lips).max()) == 0.0
    band = r["band"][0, 0]
    assert float(band[31:34, 34:63].max()) == 0.0 and float(band[27, 48]) > 0.99 and float(band[0, 0]) == 0.0
    assert CORE_INSET * _HEIGHT == 1.0 and RING == (0.035, 0.055)


def test_masked_mean_exact():
    x = torch.arange(8.0).reshape(1, 2, 2, 2)
    w = torch.tensor([[[[1.0, 0.0], [0.0, 3.0]]]])
    mean, total = masked_mean(x, w)
    assert torch.equal(mean.flatten(), torch.tensor([2.25, 6.25])) and float(total) == 4.0


def test_lip_colour_takes_the_plates_border_and_the_renders_colours():
    """Plate: skin, lips redder. Render: its own skin, its lips in two blotches (pink and white-violet) and a rim of
    lip colour 2 px wide running over the skin above the lips (a photo's lipstick past its mesh's contour). After:
    the luminance is the render's; on the lips' core the chroma goes over to one colour, the render's mean lip
    chroma over the core, and on the rim to the render's skin chroma, each by the band's weight, exactly."""
    r = _regions()
    plate = _painted([0.50, 0.40, 0.35], [0.55, 0.30, 0.30], r)
    render = _painted([0.45, 0.42, 0.38], [0.60, 0.35, 0.40], r)
    render[..., 24:40, 48:68] = torch.tensor([0.70, 0.60, 0.70])[:, None, None]  # the white-violet blotch
    render[..., 24:40, 48:68] *= r["lips"][..., 24:40, 48:68]
    render[..., 24:40, 48:68] += (1 - r["lips"][..., 24:40, 48:68]) * torch.tensor([0.45, 0.42, 0.38])[:, None, None]
    render[..., 22:24, 28:68] = torch.tensor([0.60, 0.35, 0.40])[:, None, None]  # the rim over the skin
    out = lip_colour(render, plate, r, torch.ones(1, 1, *_SIZE))
    assert torch.allclose(luminance(out), luminance(render), atol=1e-6)
    chroma = lambda x: x / luminance(x)  # noqa: E731
    own_lips, _ = masked_mean(chroma(render), r["core"])
    own_skin, _ = masked_mean(chroma(render), r["ring"])
    core = r["core"][0, 0] > 0
    w = r["band"][0, 0]
    expected = chroma(render)[0] + w * (own_lips[0] - chroma(render)[0])
    assert torch.allclose(chroma(out)[0][:, core], expected[:, core], atol=1e-5)
    assert float(chroma(out)[0][:, core].std(1).max()) < 0.01 < float(chroma(render)[0][:, core].std(1).max())
    expected = chroma(render)[0] + w * (own_skin[0] - chroma(render)[0])
    assert torch.allclose(chroma(out)[0, :, 22:24, 28:68], expected[:, 22:24, 28:68], atol=1e-5)
    assert float(w[22:24, 28:68].min()) > 0.6  # the rim mostly goes (2 px beyond the lips of a 100-px face)
    far = r["band"][0, 0] == 0
    assert torch.allclose(out[0][:, far], render[0][:, far], atol=1e-6)


def test_lip_colour_leaves_a_plate_without_lip_colour_and_an_occluded_mouth_alone():
    """A grey plate (lips the skin's chroma, only darker) gives no skin -> lips axis: the render keeps its colours;
    so does a mouth the occluder covers (no core or ring seen)."""
    r = _regions()
    grey = _painted([0.5, 0.5, 0.5], [0.3, 0.3, 0.3], r)
    render = _painted([0.45, 0.42, 0.38], [0.60, 0.35, 0.40], r)
    render[..., 22:24, 28:68] = torch.tensor([0.60, 0.35, 0.40])[:, None, None]
    assert torch.allclose(lip_colour(render, grey, r, torch.ones(1, 1, *_SIZE)), render, atol=1e-6)
    plate = _painted([0.50, 0.40, 0.35], [0.55, 0.30, 0.30], r)
    assert torch.allclose(lip_colour(render, plate, r, torch.zeros(1, 1, *_SIZE)), render, atol=1e-6)


def test_lip_surface_takes_the_plates_detail_not_its_tone():
    """A plate twice as bright as the render (another exposure, lips included) changes nothing; a plate whose lips
    have a highlight stripe puts it on the render's flat lips (brighter on the stripe than beside it), and a blotch
    on the render's lips that the plate does not have fades; a dark line along the plate's lips' lowest row (the
    shadow under a lower lip that the contour took in) mostly stays out; off the lips the render is exact."""
    r = _regions()
    render = _painted([0.45, 0.42, 0.38], [0.30, 0.18, 0.20], r)
    ones = torch.ones(1, 1, *_SIZE)
    assert torch.allclose(lip_surface(render, 2.0 * render, r["lips"], 3.0, 1.0, ones), render, atol=1e-6)
    plate = render.clone()
    plate[..., 36:38, 30:66] *= 1.6  # the lower lip's highlight
    plate[..., 40, 30:66] *= 0.5  # the shadow under it, on the contour's last row
    blotched = render.clone()
    blotched[..., 26:28, 46:50] *= 1.5  # the photo's white blotch on the upper lip
    out = lip_surface(blotched, plate, r["lips"], 3.0, 1.0, ones)
    lum = luminance(out)[0, 0]
    assert float(lum[36:38, 40:56].mean()) > 1.2 * float(lum[35, 40:56].mean())
    before = luminance(blotched)[0, 0]
    assert float(before[26:28, 46:50].mean() / before[26:28, 36:38].mean()) == pytest.approx(1.5, rel=1e-4)
    assert float(lum[26:28, 46:50].mean() / lum[26:28, 36:38].mean()) < 1.15
    assert float(lum[40, 40:56].mean() / lum[39, 40:56].mean()) > 0.9  # the plate's 0.5 hardly shows
    off = r["lips"][0, 0] == 0
    assert torch.equal(out[0][:, off], blotched[0][:, off])


def test_face_weight_and_lip_box_exact():
    assert torch.allclose(face_weight(torch.tensor([30.0, 64.0, 96.0, 128.0, 500.0])),
                          torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))
    rows, cols = lip_box(_POINTS, _OUTER, torch.tensor([2.0]), _SIZE)
    assert (rows, cols) == (slice(22, 43), slice(26, 71))
    rows, cols = lip_box(_POINTS, _OUTER, torch.tensor([50.0]), _SIZE)
    assert (rows, cols) == (slice(0, 64), slice(0, 96))


@pytest.fixture(scope="module")
def mouth():
    """Three frames of a canonical face on 160-px crops, the plate's crop flat skin with red lips; the finished
    render flat skin with pale lips and a 2-px rim of their colour around them (the photo's lips a little larger
    than its mesh's)."""
    topo = load_topology()
    outer, inner = (torch.as_tensor(topo.regions[k]) for k in ("lips_outer", "lips_inner"))
    lm = (canonical_face().float() * 60 + 80)[None]
    lms = torch.cat([lm, lm + torch.tensor([1.5, -1.0, 0.0]), lm - 2.0])
    from vidswap.appearance.raster import fill_polygons

    lips = (fill_polygons(lms, [outer], (160, 160)) & ~fill_polygons(lms, [inner], (160, 160)))[:, None].float()
    crops = torch.tensor([0.80, 0.65, 0.60])[None, :, None, None] + lips * torch.tensor([-0.1, -0.3, -0.25])[
        None, :, None, None]
    from vidswap.composite.filters import dilate

    mouth = fill_polygons(lms, [outer], (160, 160))[:, None].float()
    painted = (lips + dilate(mouth, 2.0) - mouth).clamp(0, 1)
    face = torch.tensor([0.75, 0.66, 0.62])[None, :, None, None] + painted * torch.tensor([-0.05, -0.12, -0.1])[
        None, :, None, None]
    face = face.expand(3, -1, 160, 160).clone()
    crops = crops.expand(3, -1, 160, 160).clone()
    return face, crops, lms, painted - lips, outer, inner


def test_take_lips_each_frame_on_its_own_and_exact_outside_its_box(mouth):
    """Three frames batched give each frame bit for bit what it gives alone (written in place); amount 0 on all
    returns the face itself, untouched; a frame at amount 0 in the batch is its face exactly; the rim changes (by half at amount 0.5), the
    crop's corners do not."""
    face, crops, lms, rim, outer, inner = mouth
    heights = torch.full((3,), 80.0)
    amount = torch.tensor([1.0, 0.5, 0.0])
    batch = take_lips(face.clone(), crops, lms, heights, outer, inner, amount)
    for b in range(3):
        one = take_lips(face[b:b + 1].clone(), crops[b:b + 1], lms[b:b + 1], heights[b:b + 1], outer, inner,
                        amount[b:b + 1])
        assert torch.equal(one, batch[b:b + 1])
    assert torch.equal(batch[2], face[2])
    before = face.clone()
    assert take_lips(face, crops, lms, heights, outer, inner, torch.zeros(3)) is face and torch.equal(face, before)
    change = [float((batch[b] - face[b]).abs()[:, rim[b, 0] > 0].mean()) for b in range(2)]
    assert change[0] > 0.02 and change[1] == pytest.approx(change[0] / 2, rel=0.1)
    assert torch.equal(batch[:, :, :20, :20], face[:, :, :20, :20])


def test_take_lips_under_an_occluder_keeps_the_render(mouth):
    face, crops, lms, _, outer, inner = mouth
    out = take_lips(face.clone(), crops, lms, torch.full((3,), 80.0), outer, inner, torch.ones(3),
                    occluder=torch.ones(3, 1, 160, 160))
    assert torch.allclose(out, face, atol=2e-6)


def test_the_relit_render_takes_the_plates_lips_and_only_them():
    """Through :meth:`RelitRenderer.render`: ``lips`` 0 renders bit for bit as without it; ``lips`` 1 changes the
    render around the lips only (within the box :func:`take_lips` works in), the alpha not at all; a crop 8x the plate's
    resolution (frame_to_crop scale 8: a ~20-px face on the plate) takes none of it."""
    from test_plate_creases import _light

    renderer = RelitRenderer(load_topology())
    lm = (canonical_face().float() * 50 + 64)[None]
    crops = torch.full((1, 3, 128, 128), 0.6)
    crops[:, 1:] = 0.45
    args = (torch.ones(1, 4, 128, 128), _light(renderer), crops, lm, lm,
            torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]), torch.tensor([0.3, 0.3]))
    plain, alpha = renderer.render(*args)
    zero, zero_alpha = renderer.render(*args, lips=0.0)
    assert torch.equal(plain, zero) and torch.equal(alpha, zero_alpha)
    lipped, lipped_alpha = renderer.render(*args, lips=1.0)
    assert torch.equal(lipped_alpha, alpha)
    changed = (lipped != plain).any(1)[0]
    outer = lm[0, load_topology().regions["lips_outer"], :2]
    reach = 165.0 * (RING[1] + 0.01)  # the face is 165 crop pixels tall
    ys, xs = torch.nonzero(changed, as_tuple=True)
    assert len(ys) > 100
    lo, hi = outer.amin(0) - reach - 1, outer.amax(0) + reach + 1
    assert int(xs.min()) >= float(lo[0]) and int(ys.min()) >= float(lo[1])
    assert int(xs.max()) <= float(hi[0]) and int(ys.max()) <= float(hi[1])
    assert float(outer[:, 0].min()) - reach > 0  # the box is inside the crop: the columns are a real bound
    small = (torch.ones(1, 4, 128, 128), args[1], crops, lm, lm,
             torch.tensor([[[8.0, 0.0, 0.0], [0.0, 8.0, 0.0]]]), args[6])
    assert torch.equal(renderer.render(*small, lips=1.0)[0], renderer.render(*small)[0])


def test_the_lips_option_is_range_checked():
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="relit_plate_lips must be in"):
            GeometricSwapConfig(relit_plate_lips=bad)
    assert GeometricSwapConfig().relit_plate_lips == 1.0
