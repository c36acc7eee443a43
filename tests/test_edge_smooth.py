"""Anti-aliasing of the relit render along the mesh's foreshortened edges (vidswap.swap.geometric.edge_smooth): exact
pieces, and the relit render of a turned face with and without it."""

import dataclasses

import pytest
import torch

from vidswap.appearance.lighting import normalized_blur
from vidswap.appearance.relight import RelightParams
from vidswap.faces.pose import canonical_face, matrix_from_euler
from vidswap.faces.topology import load_topology
from vidswap.swap.geometric.edge_smooth import (edge_band, mesh_edges, smooth_steep_edges, steep_edges,
                                                triangle_areas)
from vidswap.swap.geometric.relit import RelitRenderer

STEEP = RelightParams().steep_edges  # the render's edge-on share

# a strip of triangles over five columns of two rows: vertices 0-4 on y = 0, 5-9 on y = 10, two triangles a square
_STRIP = torch.tensor([[0, 1, 5], [1, 6, 5], [1, 2, 6], [2, 7, 6]])
_LONG = torch.tensor([[i + d for d in tri] for i in range(4) for tri in ((0, 1, 5), (1, 6, 5))])


def _strip_points() -> torch.Tensor:
    x = torch.arange(5, dtype=torch.float32) * 10
    return torch.stack([torch.cat([x, x]), torch.cat([torch.zeros(5), torch.full((5,), 10.0)])], 1)


def test_mesh_edges_are_the_shared_ones():
    edges, adjacent = mesh_edges(_STRIP)
    assert edges.tolist() == [[1, 5], [1, 6], [2, 6]]
    assert adjacent.tolist() == [[0, 1], [1, 2], [2, 3]]


def test_triangle_areas_exact_and_signed():
    pts = _strip_points()
    areas = triangle_areas(pts, _STRIP)
    assert areas.tolist() == [50.0, 50.0, 50.0, 50.0] or areas.tolist() == [-50.0] * 4
    assert torch.equal(triangle_areas(pts * torch.tensor([-1.0, 1.0]), _STRIP), -areas)


def test_steep_edges_beside_a_squashed_or_folded_triangle():
    """Eight triangles (four squares). Scaled as a whole, no edge is steep; the second square squashed to a fifth of
    its width marks the three edges beside and across its two triangles; folded over (vertex 2 past vertex 1) the
    edges beside its turned-over triangle as well."""
    reference = triangle_areas(_strip_points(), _LONG)
    edges, adjacent = mesh_edges(_LONG)
    assert len(edges) == 7
    scaled = (_strip_points() * 3.0 + 7.0)[None]
    assert not steep_edges(scaled, _LONG, adjacent, reference, STEEP).any()
    squashed = _strip_points().clone()
    squashed[2, 0] = squashed[1, 0] + 2.0  # vertices 2 and 7 move toward 1 and 6: triangles 2 and 3 thin
    squashed[7, 0] = squashed[6, 0] + 2.0
    steep = steep_edges(squashed[None], _LONG, adjacent, reference, STEEP)[0]
    marked = [tuple(e) for e, s in zip(edges.tolist(), steep) if s]
    assert marked == [(1, 6), (2, 6), (2, 7)]
    folded = _strip_points().clone()
    folded[2, 0] = folded[1, 0] - 5.0
    steep = steep_edges(folded[None], _LONG, adjacent, reference, STEEP)[0]
    marked = [tuple(e) for e, s in zip(edges.tolist(), steep) if s]
    assert (1, 6) in marked and (2, 6) in marked


def test_edge_band_draws_the_selected_edges_only():
    """A horizontal and a vertical edge; only the first selected: a band 3 px high along row 5 from column 2 to 12,
    nothing of the second."""
    verts = torch.tensor([[[2.0, 5.0], [12.0, 5.0], [20.0, 2.0], [20.0, 14.0]]])
    band = edge_band(verts, torch.tensor([[0, 1], [2, 3]]), torch.tensor([[True, False]]), (18, 24), width=3)
    assert band.shape == (1, 1, 18, 24) and band.dtype == torch.float32
    assert band[0, 0, 4:7, 3:12].min() == 1.0 and float(band[0, 0, :3].max()) == 0.0
    assert float(band[0, 0, 8:].max()) == 0.0 and float(band[0, 0, :, 16:].max()) == 0.0


def test_smooth_steep_edges_blurs_the_band_only():
    """A staircase edge between 0.2 and 0.8: inside the band the values are the covered-normalised blur of the whole
    picture (the band's box is all it reads), outside exactly the input; with no band the input itself comes back,
    untouched."""
    rgb = torch.full((1, 3, 16, 16), 0.2)
    for row in range(16):
        rgb[..., row, 4 + row // 2:] = 0.8
    cover = torch.ones(1, 1, 16, 16)
    cover[..., :3, :3] = 0.0
    band = torch.zeros(1, 1, 16, 16)
    band[..., 6:10, :] = 1.0
    out = smooth_steep_edges(rgb.clone(), cover, band, sigma=0.7)
    smooth, _ = normalized_blur(rgb, cover, 0.7)
    assert torch.equal(out[..., :6, :], rgb[..., :6, :]) and torch.equal(out[..., 10:, :], rgb[..., 10:, :])
    assert torch.allclose(out[..., 6:10, :], smooth[..., 6:10, :])
    assert 0.2 < float(out[0, 0, 7, 7]) < 0.8  # the step is softened
    before = rgb.clone()
    assert smooth_steep_edges(rgb, cover, torch.zeros_like(band)) is rgb and torch.equal(rgb, before)


def _turned(yaw: float) -> torch.Tensor:
    c = canonical_face().float()
    R = matrix_from_euler(torch.tensor([yaw]), torch.tensor([0.0]), torch.tensor([0.0]))[0].float()
    return (c @ R.T * 40 + torch.tensor([64.0, 64.0, 0.0]))[None]


def test_the_relit_render_smooths_a_turned_faces_steep_edges_and_nothing_else():
    """A face turned 55 degrees, a striped albedo: the render with the smoothing differs from the one without it
    (steep_edges 0) only on the band along the steep edges; the alpha is the same; a frontal face has no steep
    edge and renders bit for bit the same; each frame of a batch renders as it does alone."""
    from test_plate_creases import _light

    topo = load_topology()
    on, off = RelitRenderer(topo), RelitRenderer(topo, relight=dataclasses.replace(RelitRenderer(topo).relight,
                                                                                    steep_edges=0.0))
    albedo = torch.ones(1, 4, 128, 128)
    albedo[:, :3, :, ::4] = 0.4  # stripes: the edges jump between them
    eye = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    crops = torch.full((1, 3, 128, 128), 0.5)

    def render(renderer, lm):
        return renderer.render(albedo, _light(renderer), crops.expand(len(lm), -1, -1, -1), lm, lm,
                               eye.expand(len(lm), -1, -1), torch.tensor([0.3, 0.3]))

    turned = _turned(55.0)
    a, alpha_a = render(on, turned)
    b, alpha_b = render(off, turned)
    assert torch.equal(alpha_a, alpha_b)
    edges, adjacent = mesh_edges(on.triangles)
    steep = steep_edges(turned, on.triangles, adjacent, on._canonical_areas, STEEP)
    assert steep.any()
    band = edge_band(turned, edges, steep, (128, 128))[0, 0] > 0
    changed = (a != b).any(1)[0]
    assert changed.any() and not (changed & ~band).any()
    frontal = _turned(0.0)
    assert not steep_edges(frontal, on.triangles, adjacent, on._canonical_areas, STEEP).any()
    assert torch.equal(render(on, frontal)[0], render(off, frontal)[0])
    both = render(on, torch.cat([frontal, turned]))[0]
    assert torch.equal(both[1:], a) and torch.equal(both[:1], render(on, frontal)[0])


def test_the_setting_defaults_on():
    assert RelitRenderer(load_topology()).relight.steep_edges == pytest.approx(0.35)
