"""Opaque sunglasses on the plate (:func:`~vidswap.appearance.eyewear.lens_cover`): left out of the track's light
(the analysis's unwrapped faces) and kept in front of the relit face (its alpha cut where each frame shows them).
Before, the relit swap painted a pale mask with a dark nose over the young man in sunglasses of multi_face.jpg: his
track's light was fitted over the black lenses (its broad light 10-20x a plain face's)."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from test_hands_backtrack import analysed_and_rendered
from test_source_occluders import _texture_masks
from vidswap.appearance.eyewear import LensZones, eyewear_zones, lens_cover
from vidswap.appearance.quantile import weighted_quantile_along
from vidswap.faces.topology import load_topology


def test_lens_cover_per_face_and_its_skin_median():
    """Per face of a batch: the face in sunglasses gets a cover, the plain one exactly 0; the reference is the
    weighted lower median of the skin (:func:`weighted_quantile_along` with 0/1 weights), taken per face."""
    U = 64
    masks = _texture_masks(U)
    zones = LensZones.of(masks)
    z = eyewear_zones(masks)
    skin = torch.full((1, 3, U, U), 0.5)
    glasses = torch.where((z["radius_left"] <= 0.9) | (z["radius_right"] <= 0.9), torch.tensor(0.05), skin)
    cover = lens_cover(torch.cat([skin, glasses]), torch.ones(2, 1, U, U), zones)
    assert cover is not None and float(cover[0].max()) == 0.0 and float(cover[1].max()) > 0.999
    assert lens_cover(skin, torch.ones(1, 1, U, U), zones) is None

    gen = torch.Generator().manual_seed(3)
    values = torch.rand(3, U * U, generator=gen)
    weights = (torch.rand(3, U * U, generator=gen) > 0.5).float()
    want = weighted_quantile_along(values, weights, 1)
    got = torch.stack([v[w > 0].median() for v, w in zip(values, weights)])
    assert torch.equal(got, want)


def test_a_plate_in_sunglasses_keeps_them_and_its_skin_tone(media, tmp_path, monkeypatch):
    """multi_face.jpg cropped to the young man in sunglasses as a one-frame plate, astronaut as the source: the
    plate's dark lens pixels (the eyes' box, under a third of his cheeks' luminance) stay the plate's (0.94), and the
    face around them departs from his by less (10.8 levels of luminance on average; the swap's own change). Without
    the lens cover the lenses are painted over (0.07 kept) under a pale mask (19.2 levels)."""
    import vidswap.appearance.analysis as analysis
    import vidswap.swap.geometric.relit as relit
    from vidswap.io import read_image

    plate_path = tmp_path / "sunglasses.png"
    image = read_image(media("multi_face_image"))[0:210, 170:400]
    cv2.imwrite(str(plate_path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    source = media("astronaut")

    def measured(name):
        analysed, frames = analysed_and_rendered(plate_path, source, tmp_path / name / "o.####.png", 0, 0, [0])
        plate, result = (im.astype(np.float64) for im in frames[0])
        pts = analysed.tracks[0].smoothed[0][:, :2]
        eyes = pts[[33, 133, 263, 362, 159, 145, 386, 374]]  # eye corners and lids (MediaPipe)
        x0, y0 = eyes.min(0) - 0.15 * np.ptp(eyes[:, 0])
        x1, y1 = eyes.max(0) + 0.15 * np.ptp(eyes[:, 0])
        lum = lambda im: im @ np.array([0.2126, 0.7152, 0.0722])  # noqa: E731
        cheeks = pts[[50, 280, 205, 425]].astype(int)  # both cheeks below the lenses
        ref = np.median([lum(plate)[y - 2:y + 3, x - 2:x + 3] for x, y in cheeks])
        box = np.zeros(plate.shape[:2], bool)
        box[int(y0):int(y1), int(x0):int(x1)] = True
        lens = box & (lum(plate) < ref / 3)
        kept = float((np.abs(result - plate).max(-1)[lens] <= 2).mean())
        face = np.zeros(plate.shape[:2], np.uint8)  # the face's oval less the lenses' box and the mouth
        cv2.fillPoly(face, [pts[np.asarray(load_topology().regions["face_oval"])].round().astype(np.int32)], 1)
        cv2.fillPoly(face, [pts[np.asarray(load_topology().regions["lips_outer"])].round().astype(np.int32)], 0)
        skin = (face > 0) & ~box
        apart = float(np.abs(lum(result) - lum(plate))[skin].mean())
        print(f"{name}: lens pixels {lens.sum()}, kept {kept:.3f}; the face around them {apart:.1f} levels off")
        return lens.sum(), kept, apart

    n, kept, apart = measured("on")
    assert n > 300 and kept >= 0.9
    monkeypatch.setattr(analysis, "lens_cover", lambda *a, **k: None)
    monkeypatch.setattr(relit, "lens_cover", lambda *a, **k: None)
    _, painted, apart_off = measured("off")
    assert painted < 0.5 and apart < 0.75 * apart_off
