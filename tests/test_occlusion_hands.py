"""Acceptance on real footage: the actress's hand over her mouth and nose stays in front of the swapped face.

The sample clip is analysed once over the occluded stretch (every frame of 56-230, as ``vidswap run`` does: the hand
landmarker's tracking between frames acts as in a real run; the tracks file is cached in
``~/.cache/vidswap/analysis`` and re-validated by its key), then the 16 hand-annotated frames of
``tests/data/hand_occluders.json`` are rendered with the hand mask and without it. Measured inside the face (the
track's face oval):

- occluder pixels (inside the drawn polygon) untouched, within 2 code values of the plate;
- visible face pixels (outside the polygon) "wrongly left unswapped": those the swap changes clearly (> 8 code
  values without the hand mask) but the hand mask leaves as the plate (within 2), as a share of every visible face
  pixel -- issue 13's "<= 3 % of the visible, unoccluded face pixels". Until lead s40 the share was of the visible
  pixels the swap changes clearly: that denominator shrank as the tone match brought the face nearer the plate's
  lightness (the robust fit: 284858 -> 278018 pixels, the pixels left unswapped 8385 -> 8433; 2.94 % -> 3.03 %),
  a better swap failing a hand measure. Both shares are printed.

Both measures leave out a 3-px band around the drawn outline: the polygons are traced by eye to about that.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from vidswap.config import load_config
from vidswap.faces.topology import load_topology
from vidswap.io import probe, read_frames
from vidswap.pipeline import StageTimer, build_render
from vidswap.shot import plan_shot

DATA = Path(__file__).parent / "data" / "hand_occluders.json"
BAND = 3


def annotations() -> dict[int, list[np.ndarray]]:
    doc = json.loads(DATA.read_text())["clips"]["pexels_clip"]["frames"]
    return {int(n): [np.asarray(p, np.float64) for p in e["polygons"]] for n, e in doc.items()}


def fill(polys, shape) -> np.ndarray:
    """(H, W) bool: pixel centres inside the polygons (1/16-px vertex precision)."""
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(p * 16).astype(np.int32) for p in polys], 1, cv2.LINE_8, 4)
    return m > 0


def cached_job(cfg, cache_name: str):
    """The shot plan with its tracks file restored from the analysis cache (its key is checked on use)."""
    plan = plan_shot(cfg)
    cache = Path.home() / ".cache" / "vidswap" / "analysis" / cache_name
    if cache.exists() and not plan.tracks_path.exists():
        plan.tracks_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cache, plan.tracks_path)
    return plan, cache


def test_annotations_cover_sixteen_frames_with_hands_over_the_face():
    ann = annotations()
    assert len(ann) >= 16
    assert all(fill(p, (360, 640)).sum() > 2000 for p in ann.values())


@pytest.fixture(scope="module")
def rendered(media, tmp_path_factory):
    clip, source = media("pexels_clip"), media("grace_hopper")
    ann = annotations()
    out = tmp_path_factory.mktemp("hands") / "out.####.png"
    cfg = load_config(overrides={"input": str(clip), "sources": [str(source)], "frames": "56-230",
                                 "output": {"path": str(out)}})
    plan, cache = cached_job(cfg, "hands_pexels_56-230x1.npz")
    setup = build_render(cfg, plan, StageTimer(), None, [])
    cache.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(plan.tracks_path, cache)
    numbers = sorted(ann)
    with read_frames(probe(clip), range(numbers[0], numbers[-1] + 1)) as stream:
        frames = [f for f in stream if f.number in ann]
    stage = setup.stage
    with_hands = stage(list(frames))
    stage.params = replace(stage.params, hands=None)
    without = stage(list(frames))
    return {"ann": ann, "analysis": setup.analysis, "plates": {f.number: f.image for f in frames},
            "on": {f.number: f.image for f in with_hands}, "off": {f.number: f.image for f in without}}


def test_hand_found_on_every_annotated_frame(rendered):
    hands = rendered["analysis"].hands
    assert all(len(hands.at(n)) == 1 for n in rendered["ann"])


def frame_masks(polys: list[np.ndarray], face: np.ndarray, plate: np.ndarray, on: np.ndarray, off: np.ndarray
                ) -> dict[str, np.ndarray]:
    """One annotated frame's (H, W) bool masks for the two measures: ``occluder`` (inside the face and the drawn
    polygons, a band in), ``visible`` (inside the face, a band outside them), ``kept`` (the render with the hand
    mask ``on`` within 2 of the plate), ``swapped`` (the render without it, ``off``, more than 8 from the plate)."""
    kernel = np.ones((2 * BAND + 1, 2 * BAND + 1), np.uint8)
    drawn = fill(polys, plate.shape[:2]).astype(np.uint8)
    inner, outer = cv2.erode(drawn, kernel) > 0, cv2.dilate(drawn, kernel) > 0
    return {"occluder": face & inner, "visible": face & ~outer,
            "kept": np.abs(on.astype(int) - plate.astype(int)).max(-1) <= 2,
            "swapped": np.abs(off.astype(int) - plate.astype(int)).max(-1) > 8}


def face_oval_mask(track, n: int, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: the track's smoothed face oval at frame ``n``."""
    oval = np.asarray(load_topology().regions["face_oval"])
    return fill([track.smoothed[track.index_of(n)][oval, :2]], shape)


def test_hand_pixels_untouched_and_face_still_swapped(rendered):
    track = rendered["analysis"].tracks[0]
    occ_n = occ_ok = vis_n = vis_swapped = vis_bad = 0
    for n, polys in rendered["ann"].items():
        plate, off = rendered["plates"][n], rendered["off"][n]
        m = frame_masks(polys, face_oval_mask(track, n, plate.shape[:2]), plate, rendered["on"][n], off)
        occ_n += m["occluder"].sum()
        occ_ok += (m["occluder"] & m["kept"]).sum()
        vis_n += m["visible"].sum()
        vis_swapped += (m["visible"] & m["swapped"]).sum()
        vis_bad += (m["visible"] & m["swapped"] & m["kept"]).sum()
        # without the hand mask the swap paints over the hand (the test can tell the two apart)
        assert (np.abs(off.astype(int) - plate.astype(int)).max(-1)[m["occluder"]] > 2).mean() > 0.3
    untouched, unswapped = occ_ok / occ_n, vis_bad / vis_n
    print(f"hand pixels untouched {untouched:.4f}, visible face wrongly unswapped {unswapped:.4f} "
          f"({vis_bad / vis_swapped:.4f} of the pixels the swap changes clearly)")
    assert vis_swapped > 0.25 * vis_n  # the swap changes much of the visible face (0.48 on the sample clip)
    assert untouched >= 0.95
    assert unswapped <= 0.03
