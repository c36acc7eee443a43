"""Integration: compositor masks from the real MediaPipe topology on the canonical face."""

import numpy as np
import pytest
import torch

from vidswap.composite.masks import MaskParams, face_regions, feather_mask, swap_region_mask


@pytest.fixture(scope="module")
def canonical_face(model):
    from vidswap.faces.topology import load_static_data, load_topology

    topo = load_topology(model("mesh_topology"))
    pts = load_static_data()["canonical"].astype(np.float32)  # frame convention: x right, y down
    lm = torch.from_numpy(pts * 40.0 + np.array([96.0, 100.0, 0.0], np.float32))[None]
    return lm, topo.regions


def test_regions_from_real_topology(canonical_face):
    lm, regions = canonical_face
    fr = face_regions(lm, regions, (200, 192), MaskParams())
    face = fr["face"][0, 0]
    area = {k: fr[k][0, 0].sum().item() for k in ("face", "eyes", "brows", "nose", "mouth", "skin")}
    assert area["face"] == pytest.approx(fr["size"].item() ** 2, rel=1e-3)
    for k in ("eyes", "brows", "nose", "mouth"):
        assert 0.005 * area["face"] < area[k] < 0.2 * area["face"], k
        assert (fr[k][0, 0] <= face + 1e-6).all()
    assert 0.55 * area["face"] < area["skin"] < 0.9 * area["face"]
    # Subject's left eye (points around 263/362) is on the image's right in a frontal view.
    ys, xs = torch.nonzero(fr["eyes"][0, 0] > 0.5, as_tuple=True)
    assert (xs > 96).sum() > 0 and (xs < 96).sum() > 0
    # Eyes above the nose tip, mouth below it.
    nose_tip_y = lm[0, 1, 1].item()
    assert ys.float().mean() < nose_tip_y
    my = torch.nonzero(fr["mouth"][0, 0] > 0.5, as_tuple=True)[0].float().mean()
    assert my > nose_tip_y
    alpha = feather_mask(swap_region_mask(fr), fr["size"])
    assert alpha.max().item() == 1.0 and (alpha[0, 0] <= face).all()
