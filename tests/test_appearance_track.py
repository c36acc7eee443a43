"""Track appearance model, temporal ratio and the relit texture: exact answers on synthetic textures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidswap.appearance.lighting import normalized_blur, sh_shading
from vidswap.appearance.relight import (RelightParams, _filled, follow_weights, outline_fade, outline_gain,
                                        outline_smooth, plate_light, resize_texture, temporal_ratio, vertex_shading)
from vidswap.appearance.source import source_masks
from vidswap.appearance.texture_space import (build_texture_space, region_masks, render_from_texture, texel_normals,
                                              vertex_normals)
from vidswap.appearance.track import AppearanceSampler, FaceSample, build_track_appearance, weighted_median
from vidswap.faces.pose import canonical_face
from vidswap.faces.topology import load_topology


@pytest.fixture(scope="module")
def topo():
    return load_topology()


@pytest.fixture(scope="module")
def space(topo):
    return build_texture_space(canonical_face(), torch.as_tensor(topo.triangles), 64)


@pytest.fixture(scope="module")
def masks(space, topo):
    return source_masks(space, region_masks(space, topo.regions))


def test_weighted_median():
    values = torch.tensor([1.0, 5.0, 2.0, 9.0])[:, None]
    weights = torch.tensor([1.0, 1.0, 1.0, 10.0])[:, None]
    assert float(weighted_median(values, weights)[0]) == 9.0
    assert float(weighted_median(values, torch.ones(4, 1))[0]) == 2.0  # lower median
    # a blink (two frames of five) does not move the median
    frames = torch.tensor([0.5, 0.5, 0.1, 0.1, 0.5])[:, None, None]
    assert float(weighted_median(frames, torch.ones(5, 1, 1))) == 0.5


def test_sampler_keeps_the_same_frames_whatever_the_batches():
    """Which frames are kept depends only on the positions, not on how the pushes are batched; memory stays
    bounded and the kept frames are evenly spread."""
    def run(order):
        s = AppearanceSampler(max_frames=8)
        for p in order:
            s.push(p, "face", FaceSample(torch.full((1, 2, 2), float(p)), torch.ones(1, 2, 2), torch.zeros(3, 2, 2)))
        return s

    a, b = run(range(100)), run(list(range(100)))
    kept_a = sorted(a._kept)
    assert kept_a == sorted(b._kept)
    assert len(kept_a) <= 16 and all(p % a.stride == 0 for p in kept_a)
    samples = a.samples({p: "face" for p in range(100)})
    assert len(samples) == 8
    values = [float(sample.texture[0, 0, 0]) for sample in samples]
    assert values == sorted(values) and values[0] == 0.0 and values[-1] >= 80
    assert a.samples({p: "other" for p in range(100)}) == []


def test_track_model_of_a_constant_face(space, masks):
    """Every frame the same texture under known light: the mean is that texture, the SH fit returns the light,
    the broad light is the skin colour factor (1: the fit folds the albedo in)."""
    normals = texel_normals(space, (canonical_face().float() * 25 + 32)[None])
    white = torch.tensor([[[0.6, 0.1, -0.4, 0.15, 0, 0, 0, 0, 0]]])
    colour = torch.tensor([1.0, 0.8, 0.7])
    tex = sh_shading(normals, white)[0] * colour[:, None, None]
    seen = space.covered[0] * (tex.amin(0, keepdim=True) > 0.05)
    samples = [FaceSample(tex, seen, normals[0], edge_blur=b) for b in (0.01, 0.012, float("nan"), 0.011, 0.02)]
    model = build_track_appearance(samples, masks)
    assert model.frames == 5
    assert model.edge_blur.shape == (1,) and float(model.edge_blur[0]) == pytest.approx(0.0115)  # NaN ignored
    inner = (masks["inner_skin"][0] * seen) > 0.5
    mean = torch.from_numpy(model.mean.astype(np.float32))
    assert float((mean - tex).abs().max()) < 1e-3  # float16 storage
    # the (regularised) achromatic fit reproduces the light's shading, up to one scale, on the skin it saw
    fitted = sh_shading(normals, torch.from_numpy(model.lighting)[None])[0]
    assert model.lighting.shape == (1, 9)
    ratio = (tex / fitted)[:, inner[0]]
    assert float((ratio.std(1) / ratio.mean(1)).max()) < 0.03
    # the broad light is what the SH leaves: the light's colour here, and SH x broad gives the appearance back
    broad = torch.from_numpy(model.broad.astype(np.float32))
    err = ((fitted * broad - tex).abs() / tex)[:, inner[0]]
    assert float(err.mean()) < 0.003 and float(err.max()) < 0.02


def test_temporal_ratio(space, masks):
    mean = torch.rand(1, 3, 64, 64) * 0.5 + 0.2
    w = space.covered
    model = {"mean": mean, "weight": w, "broad": torch.ones(1, 3, 64, 64), "lighting": torch.zeros(1, 3, 9),
             "edge_blur": torch.tensor([[0.01]])}
    light = plate_light(model, masks)
    inside = (space.covered * light.support)[0, 0] > 0.5
    n = int(inside.sum())
    same = temporal_ratio(light, mean.clone(), w)
    assert torch.allclose(same[0][:, inside], torch.ones(3, n), atol=1e-5)
    darker = temporal_ratio(light, mean * 0.7, w)  # a shadow over the whole face, less the dead band
    expected = math.exp(math.log(0.7) + RelightParams().ratio_deadband)
    assert torch.allclose(darker[0][:, inside], torch.full((3, n), expected), atol=1e-4)
    noise = temporal_ratio(light, mean * 1.03, w)  # a change within the dead band is no change
    assert torch.allclose(noise[0][:, inside], torch.ones(3, n), atol=1e-5)
    unseen = temporal_ratio(light, mean * 0.7, torch.zeros_like(w))  # nothing seen: ratio 1
    assert torch.allclose(unseen, torch.ones_like(unseen))
    clamped = temporal_ratio(light, mean * 10, w, RelightParams(ratio_range=(0.5, 2.0), ratio_deadband=0.0))
    assert float(clamped.max()) == pytest.approx(2.0)


def test_a_light_sampled_at_its_own_size_is_the_product_with_the_detail(space):
    """The frame's light (another texture size) sampled at the render's surface points and multiplied in: a
    constant light scales the render; a smooth one gives the render of the product made at the detail's size
    (resampled, texel centres kept) to a fraction of a code value; channels past the light's pass as they are."""
    lm = (canonical_face().float() * 50 + 64)[None].expand(2, -1, -1).contiguous()
    y, x = torch.meshgrid(torch.linspace(0, 1, 128), torch.linspace(0, 1, 128), indexing="ij")
    detail = torch.cat([torch.stack([0.8 + 0.4 * x, 1.0 + 0.3 * y * x, 1.2 - 0.4 * y])[None], x[None, None]], 1)
    yl, xl = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    light = torch.stack([0.5 + 0.3 * torch.sin(3 * xl) * yl] * 3)[None] * torch.tensor([1.0, 0.9, 0.8])[:, None, None]
    light = torch.cat([light, 0.6 * light])  # two frames
    base, cover = render_from_texture(space, detail, lm, (128, 128))
    inside = cover[:, 0] > 0
    const, _ = render_from_texture(space, detail, lm, (128, 128), texture_gain=torch.full((2, 3, 32, 32), 0.5))
    assert torch.allclose(const[:, :3], 0.5 * base[:, :3], atol=1e-6) and torch.equal(const[:, 3:], base[:, 3:])
    lit, _ = render_from_texture(space, detail, lm, (128, 128), texture_gain=light)
    product, _ = render_from_texture(space, torch.cat([detail[:, :3] * resize_texture(light, 128),
                                                       detail[:, 3:].expand(2, -1, -1, -1)], 1), lm, (128, 128))
    err = (lit[:, :3] - product[:, :3]).abs().amax(1)[inside]
    assert float(err.max()) < 0.5 / 255 and float(err.mean()) < 0.05 / 255
    assert torch.equal(lit[:, 3:], base[:, 3:])
    # resampling keeps texel centres: a linear ramp stays the same ramp
    ramp = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(1, 1, 32, 32)
    assert torch.allclose(resize_texture(ramp, 64)[0, 0, 0], torch.linspace(0, 1, 64), atol=1e-6)


def test_outline_fade_is_zero_on_the_outline_and_one_inside():
    """A 9 x 9 square face in a 16-texel texture, band 2/16 = 2 texels: 0 outside and on the outline ring,
    smoothstep(0.5) = 0.5 one texel in, 1 from two texels in; no band: all ones."""
    face = torch.zeros(1, 1, 16, 16)
    face[..., 3:12, 3:12] = 1.0
    face[..., 7, 7] = 0.0  # a hole (an eye): not an outline
    fade = outline_fade(face, 2.0 / 16)
    assert fade.shape == face.shape
    outside = torch.ones_like(face)
    outside[..., 3:12, 3:12] = 0.0
    assert torch.equal(fade * outside, torch.zeros_like(face))  # outside
    ring = face.clone()
    ring[..., 4:11, 4:11] = 0.0
    assert torch.equal(fade[ring > 0], torch.zeros(int(ring.sum())))  # the outline: the plate shows exactly
    assert torch.allclose(fade[0, 0, 4, 4:11], torch.full((7,), 0.5))  # second ring: distance 2, x = 1/2
    assert torch.equal(fade[0, 0, 5:10, 5:10], torch.ones(5, 5))  # distance >= 3: the render's own weight
    assert torch.equal(outline_fade(face, 0.0), torch.ones_like(face))
    # holes: a notch open to the crop's border is none; a texel touching a hole only at a corner is one of its own
    # (what is outside the face is traced 4-connected)
    face[..., 3:7, 3] = 0.0  # the notch
    holes = torch.zeros(1, 1, 16, 16)
    holes[..., 3:12, 3:12] = 1.0
    holes[..., 5:8, 5:8] = 0.0
    holes[..., 8, 8] = 0.0
    filled = _filled(holes)
    assert torch.equal(filled[..., 3:12, 3:12], torch.ones(1, 1, 9, 9)) and float(filled.sum()) == 81.0
    notched = _filled(face)
    assert float(notched[0, 0, 7, 7]) == 1.0 and float(notched[0, 0, 3:7, 3].sum()) == 0.0


def test_outline_gain_makes_the_render_meet_the_plate_on_the_outline():
    """A face (with an eye-like hole, which is no outline) whose expected render is 1 and whose plate is
    (1.25, 1, 0.8) per channel, seen everywhere: on the
    outline the gained render equals the plate; from the band inward and outside the face the gain is 1."""
    face = torch.zeros(1, 1, 32, 32)
    face[..., 4:28, 4:28] = 1.0
    face[..., 14:17, 14:18] = 0.0
    expected = torch.ones(1, 3, 32, 32)
    plate = torch.tensor([1.25, 1.0, 0.8]).view(1, 3, 1, 1).expand(1, 3, 32, 32)
    weight = torch.ones(1, 1, 32, 32)
    gain = outline_gain(expected, plate, weight, face, face, band=4.0 / 32, sigma=1.0 / 32)
    ring = torch.zeros_like(face)
    ring[..., 4:28, 4:28] = 1.0
    ring[..., 5:27, 5:27] = 0.0
    on = (ring > 0).expand(1, 3, 32, 32)
    assert torch.allclose((expected * gain)[on], plate[on], atol=1e-5)
    assert torch.equal(gain[..., 9:23, 9:23], torch.ones(1, 3, 14, 14))  # distance >= 5 = 1 + band: no gain
    assert torch.equal(gain * (1 - face), 1 - face.expand(1, 3, 32, 32))  # outside the face
    mid = gain[0, 0, 6, 10:22]  # distance 3: half way between the plate's gain and none
    assert torch.all((mid > 1.0) & (mid < 1.25))
    assert torch.equal(outline_gain(expected, plate, weight, face, face, band=0.0, sigma=0.03),
                       torch.ones_like(expected))


def test_outline_smooth_takes_the_low_pass_on_the_outline_and_the_detail_inside():
    """A checkered albedo (1 +- 0.5) on a 24-texel square face: on the outline it is its skin low-pass (the
    checker gone), from the band inward its own detail exactly; a flat albedo stays flat; no band: unchanged."""
    face = torch.zeros(1, 1, 32, 32)
    face[..., 4:28, 4:28] = 1.0
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    detail = (1.0 + 0.5 * ((yy + xx) % 2 * 2 - 1).float()).expand(1, 3, 32, 32)
    out = outline_smooth(detail, face, face, band=4.0 / 32, sigma=2.0 / 32)
    smooth, _ = normalized_blur(detail, face, 2.0)
    ring = torch.zeros_like(face, dtype=torch.bool)
    ring[..., 4:28, 4:28] = True
    ring[..., 5:27, 5:27] = False
    on = ring.expand(1, 3, 32, 32)
    assert torch.equal(out[on], smooth[on])
    assert (out[on] - 1.0).abs().max() < 0.2  # the checker (+-0.5) is gone on the outline
    assert torch.equal(out[..., 9:23, 9:23], detail[..., 9:23, 9:23])
    flat = torch.full((1, 3, 32, 32), 0.7)
    assert torch.allclose(outline_smooth(flat, face, face, 4.0 / 32, 2.0 / 32), flat, atol=1e-6)
    assert outline_smooth(detail, face, face, 0.0, 0.03) is detail


def test_vertex_shading_and_gouraud_render(space):
    """Per-vertex SH shading of the posed mesh, interpolated by the renderer, equals the texel-normal shading up
    to interpolation (smooth light on a smooth mesh); with a unit texture the render is the shading itself."""
    verts = (canonical_face().float() * 60 + torch.tensor([100.0, 110.0, 0.0]))[None]
    light = torch.tensor([[[0.8, 0.2, -0.5, 0.1, 0, 0, 0, 0, 0]]])  # achromatic (1, 1, 9)
    shade = vertex_shading(verts, space.triangles, light)
    expected = sh_shading(vertex_normals(verts, space.triangles).transpose(1, 2), light).transpose(1, 2)
    assert shade.shape == (1, 478, 3)
    assert torch.allclose(shade, expected.clamp(min=1e-3).expand(-1, -1, 3))
    image, alpha = render_from_texture(space, torch.ones(1, 3, 64, 64), verts, (220, 200), vertex_gain=shade)
    plain, _ = render_from_texture(space, torch.ones(1, 3, 64, 64), verts, (220, 200))
    covered = alpha[0, 0] > 0.99
    assert torch.allclose(plain[0][:, covered], torch.ones(3, int(covered.sum())), atol=1e-6)
    assert float(image[0][:, covered].min()) >= float(shade.min()) - 1e-5
    assert float(image[0][:, covered].max()) <= float(shade.max()) + 1e-5


def test_follow_weights(topo):
    c = canonical_face()
    w = follow_weights(c, topo.regions, lips_reach=0.45, eyes_reach=0.2)
    for name in ("lips_inner", "left_eye", "right_eye"):
        assert float(w[torch.as_tensor(topo.regions[name])].abs().max()) == 0.0
    assert float(w[468:].abs().max()) == 0.0
    far = torch.as_tensor([10, 152])  # forehead top, chin
    assert torch.allclose(w[far], torch.ones(2))
    assert float(w.min()) >= 0 and float(w.max()) <= 1


def test_unwrap_frames_weighs_the_clear_part(space):
    """``clear`` (1 - an occlusion matte) is unwrapped with the crops and multiplied into the visibility: all clear
    is no matte, nothing clear is no weight, and the texture is the same either way."""
    from vidswap.appearance.track import unwrap_frames

    g = torch.Generator().manual_seed(3)
    crops = torch.rand(2, 3, 64, 64, generator=g)
    lm = (canonical_face().float() * 25 + 32)[None].expand(2, -1, -1).clone()
    tex, w = unwrap_frames(space, crops, lm)
    tex1, w1 = unwrap_frames(space, crops, lm, torch.ones(2, 1, 64, 64))
    tex0, w0 = unwrap_frames(space, crops, lm, torch.zeros(2, 1, 64, 64))
    assert torch.equal(tex1, tex) and torch.equal(tex0, tex)
    assert float(w.sum()) > 500 and torch.allclose(w1, w, atol=1e-6) and float(w0.abs().max()) == 0.0
    half = torch.zeros(2, 1, 64, 64)
    half[..., :, 32:] = 1.0  # the image's right half clear
    _, wh = unwrap_frames(space, crops, lm, half)
    assert 0.3 * float(w.sum()) < float(wh.sum()) < 0.7 * float(w.sum()) and bool((wh <= w + 1e-6).all())


def test_unwrap_frames_linearises_only_what_the_samples_read(space):
    """The crops are linearised over :func:`sampled_box` alone: the unwrap is the one of the whole linearised
    crop, bit for bit, with the face anywhere in the crop, partly off it, or turned (texels off the image clamp to
    its border as the sampler's padding does)."""
    from vidswap.appearance.encoding import srgb_to_linear
    from vidswap.appearance.texture import texture_confidence
    from vidswap.appearance.texture_space import unwrap
    from vidswap.appearance.track import VISIBILITY_RESOLUTION, sampled_box, unwrap_frames

    g = torch.Generator().manual_seed(5)
    crops = torch.rand(3, 3, 96, 80, generator=g)
    face = canonical_face().float()
    turned = face @ torch.tensor([[0.8, 0.0, 0.6], [0.0, 1.0, 0.0], [-0.6, 0.0, 0.8]]).T
    lm = torch.stack([face * 20 + torch.tensor([40.0, 48.0, 0.0]),  # in the middle
                      face * 30 + torch.tensor([70.0, 10.0, 0.0]),  # partly off the top right
                      turned * 25 + torch.tensor([30.0, 60.0, 0.0])])
    rows, cols = sampled_box(lm, (96, 80))
    assert rows.start == 0 and cols.stop == 80 and (rows.stop - rows.start) * (cols.stop - cols.start) < 96 * 80
    vis = texture_confidence(lm, space.triangles, image_size=(96, 80), resolution=VISIBILITY_RESOLUTION)
    expected = unwrap(space, srgb_to_linear(crops), lm, vis)
    got = unwrap_frames(space, crops, lm)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    inner = sampled_box(lm[:1], (96, 80))  # one face in the middle: a box inside the crop
    assert inner[0].start > 0 and inner[0].stop < 96 and inner[1].start > 0 and inner[1].stop < 80


def test_temporal_ratio_drops_a_narrow_fold_but_keeps_a_broad_shadow(space, masks):
    """A crease 2 x 2 texels (a frame's expression fold the track's median lacks, 30 % darker) is below the dead
    band after the default low-pass: the ratio stays exactly 1; the old, narrower low-pass (0.02) let it through
    as a dark blob. A broad shadow over half the face still passes."""
    mean = torch.full((1, 3, 64, 64), 0.4)
    w = space.covered
    model = {"mean": mean, "weight": w, "broad": torch.ones(1, 3, 64, 64), "lighting": torch.zeros(1, 3, 9),
             "edge_blur": torch.tensor([[0.01]])}
    light = plate_light(model, masks)
    inside = (space.covered * light.support)[0, 0] > 0.5
    deep = -F.max_pool2d(-inside[None, None].float(), 9, 1, 4)[0, 0] > 0.5  # 4 texels from the support's edge
    y, x = (int(v) for v in deep.nonzero()[len(deep.nonzero()) // 2])
    fold = mean.clone()
    fold[..., y:y + 2, x:x + 2] *= 0.7
    assert torch.equal(temporal_ratio(light, fold, w), torch.ones(1, 3, 64, 64))
    narrow = RelightParams(temporal=0.02)
    old = temporal_ratio(plate_light(model, masks, narrow), fold, w, narrow)
    assert float(old.min()) < 0.95
    shadow = mean.clone()
    shadow[..., :, :32] *= 0.5  # the image-left half of the texture in shadow
    far = inside.clone()
    far[:, 20:] = False  # at least 12 texels (2.3 sigma) from the shadow's edge
    assert torch.allclose(temporal_ratio(light, shadow, w)[0][:, far],
                          torch.full((3, int(far.sum())), math.exp(math.log(0.5) + RelightParams().ratio_deadband)),
                          atol=2e-3)


def test_vertex_shading_of_a_frame_does_not_depend_on_the_rest_of_the_batch():
    """Each frame's shading is its own, bit for bit, whatever else is in the batch (farm chunks batch frames
    differently from one pass); per-frame lighting and one lighting for all alike."""
    from vidswap.faces.topology import load_topology

    tri = torch.as_tensor(load_topology().triangles)
    g = torch.Generator().manual_seed(4)
    verts = (canonical_face().float() * 90 + 128)[None] + torch.randn(5, 478, 3, generator=g) * 2.0
    for lighting in (torch.randn(5, 1, 9, generator=g), torch.randn(1, 3, 9, generator=g)):
        batch = vertex_shading(verts, tri, lighting)
        for b in range(5):
            one = vertex_shading(verts[b:b + 1], tri, lighting[b:b + 1] if len(lighting) == 5 else lighting)
            assert torch.equal(batch[b:b + 1], one)
