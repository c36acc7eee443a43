"""De-lighting: SH fits and the albedo / shading split on synthetic faces under known lighting."""

from __future__ import annotations

import pytest
import torch

from vidswap.appearance.lighting import delight, fit_sh, normalized_blur, robust_lowpass, sh_basis, sh_shading
from vidswap.appearance.texture_space import (build_texture_space, region_masks, render_from_texture,
                                              texel_normals, unwrap)
from vidswap.composite.filters import erode
from vidswap.faces.pose import canonical_face, matrix_from_euler
from vidswap.faces.topology import load_topology
from vidswap.appearance.texture import texture_confidence

LIGHT = torch.tensor([[0.80, 0.25, -0.55, 0.30, 0.02, 0.04, -0.06, 0.03, 0.01],
                      [0.62, 0.20, -0.45, 0.22, 0.02, 0.03, -0.05, 0.02, 0.01],
                      [0.50, 0.15, -0.40, 0.20, 0.01, 0.03, -0.04, 0.02, 0.00]])[None]


@pytest.fixture(scope="module")
def setup():
    topo = load_topology()
    space = build_texture_space(canonical_face(), torch.as_tensor(topo.triangles), 128)
    masks = region_masks(space, topo.regions)
    R = matrix_from_euler(torch.tensor([20.0]), torch.tensor([-5.0]), torch.tensor([0.0]))[0]
    verts = (canonical_face().float() @ R.T * 60 + torch.tensor([100.0, 110.0, 0.0]))[None]
    normals = texel_normals(space, verts)
    return space, masks, verts, normals


def test_sh_basis_is_orthonormal_on_the_sphere():
    n = torch.randn(200000, 3, generator=torch.Generator().manual_seed(0))
    n = (n / n.norm(dim=1, keepdim=True)).T[None]  # (1, 3, N)
    Y = sh_basis(n)[0]  # (9, N)
    gram = (Y @ Y.T) * (4 * torch.pi / n.shape[-1])
    assert torch.allclose(gram, torch.eye(9), atol=0.02)


def test_fit_sh_recovers_known_lighting_exactly(setup):
    """A constant-albedo texture under known SH light: the fit returns albedo x coefficients."""
    space, masks, _, normals = setup
    albedo = torch.tensor([0.9, 0.8, 0.7])
    tex = sh_shading(normals, LIGHT) * albedo[None, :, None, None]
    weight = masks["skin"] * (sh_shading(normals, LIGHT).amin(1, keepdim=True) > 0.05)
    c = fit_sh(tex, normals, weight, ridge=0.0, ridge_order2=0.0)
    assert torch.allclose(c, LIGHT * albedo[None, :, None], atol=1e-4)


def test_fit_sh_ignores_an_outlier_patch(setup):
    """Dark 'brows' painted over part of the skin do not pull the robust fit."""
    space, masks, _, normals = setup
    tex = sh_shading(normals, LIGHT)
    weight = masks["skin"] * (tex.amin(1, keepdim=True) > 0.05)
    dirty = tex.clone()
    dirty[..., 40:52, 30:98] *= 0.3
    c = fit_sh(dirty, normals, weight, ridge=0.0, ridge_order2=0.0)
    pred = sh_shading(normals, c)
    rel = ((pred - tex).abs() / tex.clamp(min=1e-3))[weight.expand_as(tex) > 0]
    assert float(rel.median()) < 0.01


def test_delight_splits_a_rendered_face_into_albedo_and_shading(setup):
    """A synthetic face (skin, darker brows, redder lips) rendered under known lighting, through the image and
    back: the de-lit albedo is the known albedo, brows and lips included, up to one global scale per channel,
    and the shading is proportional to the known one."""
    space, masks, verts, normals = setup
    skin_colour = torch.tensor([0.55, 0.40, 0.32])[None, :, None, None]
    albedo = skin_colour * (1 - 0.6 * masks["brows"]) * (1 - masks["lips"] * torch.tensor([0.1, 0.4, 0.4])[
        None, :, None, None])
    truth = sh_shading(normals, LIGHT)
    image, _ = render_from_texture(space, albedo * truth, verts, (220, 200))
    vis = texture_confidence(verts, space.triangles, image_size=(220, 200))
    tex, weight = unwrap(space, image, verts, vis)
    # the fit sees skin away from the silhouette (texels there sample the background), as the pipeline's does
    inner = erode(masks["skin"], 6.0)
    well = (weight > 0.9).float() * (truth.amin(1, keepdim=True) > 0.1).float()
    # skin, brows and lips, away from the silhouette and from the albedo's own steps (resampled twice, a step
    # is blurred over a texel or two)
    regions = [erode(masks[k], 2.0) for k in ("skin", "brows", "lips")]
    sel = (erode(well, 3.0) * sum(regions))[0, 0] > 0.5

    def spread(lit):  # relative spread of (estimate / truth): 0 = right up to one global scale per channel
        out = []
        for ch in range(3):
            a = lit.albedo[0, ch][sel] / albedo[0, ch][sel]
            s = lit.shading[0, ch][sel] / truth[0, ch][sel]
            out += [float(a.std() / a.mean()), float(s.std() / s.mean())]
        return max(out)

    assert int(sel.sum()) > 2000
    # per-channel light: a per-channel fit is exact
    assert spread(delight(tex, normals, well, inner, ridge=0.0, ridge_order2=0.0, achromatic=False)) < 0.002
    lit = delight(tex, normals, well, inner, achromatic=False)  # the regularised fit stays close
    assert spread(lit) < 0.01
    mean_shading = (lit.shading * well * inner).sum((2, 3)) / (well * inner).sum((2, 3))
    assert torch.allclose(mean_shading, torch.ones(1, 3), atol=1e-4)


def test_achromatic_delight_of_white_light(setup):
    """White light of any colour balance (one SH shape, scaled per channel): the achromatic fit (the default)
    recovers the albedo up to one scale per channel and one shading shared by the channels."""
    space, masks, verts, normals = setup
    light = LIGHT[:, :1] * torch.tensor([1.0, 0.85, 0.7])[None, :, None]
    albedo = torch.tensor([0.55, 0.40, 0.32])[None, :, None, None] * (1 - 0.6 * masks["brows"])
    truth = sh_shading(normals, light)
    image, _ = render_from_texture(space, albedo * truth, verts, (220, 200))
    vis = texture_confidence(verts, space.triangles, image_size=(220, 200))
    tex, weight = unwrap(space, image, verts, vis)
    well = (weight > 0.9).float() * (truth.amin(1, keepdim=True) > 0.1).float()
    lit = delight(tex, normals, well, erode(masks["skin"], 6.0), ridge=0.0, ridge_order2=0.0)
    assert lit.shading.shape[1] == 1
    sel = (erode(well, 3.0) * (erode(masks["skin"], 2.0) + erode(masks["brows"], 2.0)))[0, 0] > 0.5
    for ch in range(3):
        a = lit.albedo[0, ch][sel] / albedo[0, ch][sel]
        assert float(a.std() / a.mean()) < 0.002


def test_normalized_blur_and_robust_lowpass():
    values = torch.ones(1, 1, 32, 32) * 2.0
    weight = torch.zeros(1, 1, 32, 32)
    weight[..., 8:24, 8:24] = 1.0
    mean, den = normalized_blur(values, weight, 3.0)
    assert torch.allclose(mean[..., 8:24, 8:24], torch.full((1, 1, 16, 16), 2.0), atol=1e-5)
    spot = values.clone()
    spot[..., 15:17, 15:17] = 0.2  # a dark speck (a mole, a strand of hair)
    plain = normalized_blur(spot, weight, 3.0)[0][0, 0, 16, 16]
    robust = robust_lowpass(spot, weight, 3.0)[0, 0, 16, 16]
    assert float(plain) < 1.9 and float(robust) == pytest.approx(2.0, abs=0.02)
