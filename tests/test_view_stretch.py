"""The source photo's detail where a turned plate shows the face more squarely than the photo saw it
(vidswap.swap.geometric.view_stretch): exact pieces, and the relit render of a frontal and a turned frame."""

import math

import pytest
import torch

from vidswap.faces.pose import canonical_face
from vidswap.faces.topology import load_topology
from vidswap.swap.geometric.core import GeometricSwapConfig
from vidswap.swap.geometric.relit import RelitRenderer
from vidswap.appearance.texture_space import render_from_texture
from vidswap.swap.geometric.view_stretch import detail_keep, photo_facing, vertex_facing


def plane(angle: float) -> torch.Tensor:
    """(1, 3, 3) one triangle in the image plane (counter-clockwise on screen: it faces the camera), turned by
    ``angle`` degrees about the vertical axis."""
    pts = torch.tensor([[0.0, 0.0, 0.0], [0.0, 10.0, 0.0], [10.0, 0.0, 0.0]])
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    x, z = pts[:, 0] * c - pts[:, 2] * s, pts[:, 0] * s + pts[:, 2] * c
    return torch.stack([x, pts[:, 1], z], -1)[None]


TRI = torch.tensor([[0, 1, 2]])


def test_vertex_facing_is_the_cosine_to_the_view_axis():
    assert torch.allclose(vertex_facing(plane(0.0), TRI), torch.ones(1, 3))
    assert torch.allclose(vertex_facing(plane(60.0), TRI), torch.full((1, 3), 0.5), atol=1e-6)
    assert torch.allclose(vertex_facing(plane(-60.0), TRI), torch.full((1, 3), 0.5), atol=1e-6)
    assert torch.equal(vertex_facing(plane(180.0), TRI), torch.zeros(1, 3))  # from behind


def test_photo_facing_takes_the_better_of_a_vertex_and_its_mirror_image_and_the_best_photo():
    tris = torch.tensor([[0, 1, 2], [3, 4, 5]])
    mirror = torch.tensor([3, 4, 5, 0, 1, 2])
    one = torch.cat([plane(0.0), plane(60.0)], 1)  # the first triangle square on, the second at 60 degrees
    assert torch.allclose(photo_facing(one, tris, mirror), torch.ones(6))
    no_mirror = torch.arange(6)
    assert torch.allclose(photo_facing(one, tris, no_mirror), torch.tensor([1.0] * 3 + [0.5] * 3), atol=1e-6)
    two = torch.cat([one, torch.cat([plane(84.0), plane(0.0)], 1)])  # the second photo sees the second square on
    assert torch.allclose(photo_facing(two, tris, no_mirror), torch.ones(6), atol=1e-6)


def test_detail_keep_exact():
    source = torch.tensor([0.4, 0.4, 0.4, 0.0])
    plate = torch.tensor([[0.6, 0.9, 1.2, 0.04]])  # stretch 1.5 (the limit), 2.25, 3 (twice it); 0.04 / 0.05
    keep = detail_keep(plate, source, 1.5)
    assert torch.allclose(keep, torch.tensor([[1.0, 0.5, 0.0, 1.0]]))  # smoothstep(0.5) = 0.5
    assert torch.equal(detail_keep(plate, source, 0.0), torch.ones(1, 4))


@pytest.fixture(scope="module")
def renderer():
    return RelitRenderer(load_topology())


def test_the_render_fades_each_frame_by_its_own_vertices_keep(renderer):
    """``vertex_keep`` on a detail of 1.3 under a constant light of 0.5: keep 1 renders the same bits as no keep,
    keep 0 plain skin under the light (0.5), keep 1/2 halfway (0.575); the weight channel passes; a frame alone
    renders as in the batch."""
    space, _ = renderer.space(64)
    V = space.uv.shape[0]
    lm = (canonical_face().float() * 40 + 48)[None].expand(3, -1, -1).contiguous()
    detail = torch.cat([torch.full((1, 3, 64, 64), 1.3), torch.full((1, 1, 64, 64), 0.75)], 1)
    light = torch.full((3, 3, 32, 32), 0.5)  # at another size than the detail's
    keep = torch.stack([torch.ones(V), torch.zeros(V), torch.full((V,), 0.5)])
    plain, cover = render_from_texture(space, detail, lm, (96, 96), texture_gain=light)
    faded, cover_k = render_from_texture(space, detail, lm, (96, 96), texture_gain=light, vertex_keep=keep)
    inside = cover[0, 0] > 0
    assert int(inside.sum()) > 2000 and torch.equal(cover_k, cover)
    assert torch.equal(faded[0], plain[0]) and torch.equal(faded[:, 3:], plain[:, 3:])
    assert torch.allclose(plain[0, :3][:, inside], torch.full((3, int(inside.sum())), 0.65), atol=1e-6)
    assert torch.allclose(faded[1, :3][:, inside], torch.full((3, int(inside.sum())), 0.5), atol=1e-6)
    assert torch.allclose(faded[2, :3][:, inside], torch.full((3, int(inside.sum())), 0.575), atol=1e-6)
    one, _ = render_from_texture(space, detail, lm[2:], (96, 96), texture_gain=light[2:], vertex_keep=keep[2:])
    assert torch.equal(one, faded[2:])
    with pytest.raises(ValueError, match="vertex_keep needs texture_gain"):
        render_from_texture(space, detail, lm, (96, 96), vertex_keep=keep)


def turned(lm: torch.Tensor, angle: float) -> torch.Tensor:
    """The (1, V, 3) mesh turned by ``angle`` degrees about the vertical axis through its centre."""
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    centre = lm.mean(1, keepdim=True)
    p = lm - centre
    return torch.stack([p[..., 0] * c - p[..., 2] * s, p[..., 1], p[..., 0] * s + p[..., 2] * c], -1) + centre


def test_the_relit_render_fades_only_what_a_turn_stretches(renderer):
    """A frontal photo's detail on a frontal frame and on a frame turned 45 degrees: the frontal frame renders the
    same with the stretch on or off, bit for bit; the turned one loses the detail of its grazing side; and each
    frame of the batch is what it is alone (farm chunks)."""
    from vidswap.appearance.relight import plate_light

    lm = (canonical_face().float() * 50 + 64)[None]
    space, masks = renderer.space(64)
    light = plate_light({"mean": torch.full((1, 3, 64, 64), 0.3), "weight": space.covered,
                         "broad": torch.ones(1, 3, 64, 64), "lighting": torch.tensor([[[1.0 / 0.2820948] + [0.0] * 8]]),
                         "edge_blur": torch.tensor([[float("nan")]])}, masks)
    g = torch.Generator().manual_seed(5)
    albedo = torch.cat([1.0 + 0.4 * (torch.rand(1, 3, 128, 128, generator=g) - 0.5), torch.ones(1, 1, 128, 128)], 1)
    lms = torch.cat([lm, turned(lm, 45.0)])
    crops = torch.full((2, 3, 128, 128), 0.5)
    eye = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]).expand(2, -1, -1)
    args = (albedo, light, crops, lms, lms, eye, torch.tensor([0.3, 0.3]))
    off, off_alpha = renderer.render(*args)
    on, on_alpha = renderer.render(*args, source_landmarks=lm, stretch=1.5)
    assert torch.equal(on[0], off[0]) and torch.equal(on_alpha, off_alpha)
    assert not torch.equal(on[1], off[1])
    # the faded detail is nearer plain skin: the render's spread over the face is smaller where it changed
    changed = (on[1] != off[1]).any(0)
    assert int(changed.sum()) > 200
    assert float(on[1][:, changed].std()) < float(off[1][:, changed].std())
    for b in range(2):
        one, one_alpha = renderer.render(albedo, light, crops[b:b + 1], lms[b:b + 1], lms[b:b + 1], eye[:1],
                                         torch.tensor([0.3, 0.3]), source_landmarks=lm, stretch=1.5)
        assert torch.equal(one, on[b:b + 1]) and torch.equal(one_alpha, on_alpha[b:b + 1])


def test_the_option_is_range_checked():
    for bad in (-0.1, 4.5):
        with pytest.raises(ValueError, match="relit_stretch must be in"):
            GeometricSwapConfig(relit_stretch=bad)
    assert GeometricSwapConfig().relit_stretch == 1.5
