"""Face mesh topology: triangles from the tessellation edges, region loops, the mirror map."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import build_canonical  # tools/build_canonical.py (conftest puts tools/ on sys.path)
from vidswap.errors import ModelError
from vidswap.faces.topology import (NOSE_OUTLINE, chain_loops, load_static_data, load_topology, parse_connections,
                                    triangle_normals, triangles_from_edges)
from vidswap.models.registry import model_path

REGIONS = ("face_oval", "lips_outer", "lips_inner", "left_eye", "right_eye", "left_brow", "right_brow",
           "left_iris", "right_iris", "nose")


@pytest.fixture(scope="module")
def topo():
    return load_topology()


def _edge_counts(tris: np.ndarray) -> Counter:
    c: Counter = Counter()
    for t in tris:
        for k in range(3):
            a, b = int(t[k]), int(t[(k + 1) % 3])
            c[(min(a, b), max(a, b))] += 1
    return c


def test_triangle_count_and_cover(topo):
    # MediaPipe's tessellation: 1322 unique edges, 854 3-cliques of which 2 are not faces (the outlines
    # around the degree-3 nostril points), leaving 852 faces over all 468 mesh points
    assert topo.edges.shape == (1322, 2)
    assert topo.triangles.shape == (852, 3)
    assert topo.triangles.dtype == np.int64
    assert set(np.unique(topo.triangles)) == set(range(468))
    assert len({tuple(sorted(t)) for t in topo.triangles}) == 852  # no duplicates
    assert not {(49, 64, 129), (279, 294, 358)} & {tuple(sorted(t)) for t in topo.triangles}


def test_manifold(topo):
    counts = _edge_counts(topo.triangles)
    assert set(counts) == {tuple(e) for e in topo.edges.tolist()}  # every edge is used by a face
    assert max(counts.values()) == 2  # interior edges in exactly 2 triangles
    boundary = [e for e, n in counts.items() if n == 1]
    assert len(boundary) == 88  # face oval 36 + two eyes 2 x 16 + inner lips 20
    # the boundary is four closed loops: outer oval and three holes (eyes, mouth) -> Euler characteristic -2
    assert [len(lp) for lp in topo.boundary_loops] == [36, 16, 16, 20]
    assert set(topo.boundary_loops[0]) == set(topo.regions["face_oval"])
    assert 468 - len(topo.edges) + len(topo.triangles) == -2
    # vertex links are single fans (no pinched vertices)
    rings: dict[int, list[tuple[int, int]]] = {v: [] for v in range(468)}
    for t in topo.triangles.tolist():
        for k in range(3):
            rings[t[k]].append((t[(k + 1) % 3], t[(k + 2) % 3]))
    for v, edges in rings.items():
        assert len(chain_loops(edges)) == 1, v


def test_consistent_orientation_toward_camera(topo):
    directed = Counter()
    for t in topo.triangles:
        for k in range(3):
            directed[(int(t[k]), int(t[(k + 1) % 3]))] += 1
    # each directed edge at most once: neighbours traverse their shared edge in opposite directions
    assert max(directed.values()) == 1
    can = load_static_data()["canonical"]
    nz = triangle_normals(can.astype(np.float64), topo.triangles)[:, 2]
    # counter-clockwise on screen = normals toward the camera (-z); the exceptions are silhouette and
    # inner-lip triangles that face sideways / inward on a real face
    assert (nz < 0).mean() > 0.95


def test_non_face_cliques_removed_synthetic():
    # triangle 0-1-2 with a degree-3 point 3 inside and one face outside each side: 7 cliques, 6 faces
    edges = np.array([(0, 1), (1, 2), (2, 0), (0, 3), (1, 3), (2, 3), (0, 4), (1, 4), (1, 5), (2, 5), (2, 6),
                      (0, 6)])
    tris = triangles_from_edges(edges)
    assert {tuple(int(v) for v in t) for t in tris} == {(0, 1, 3), (1, 2, 3), (0, 2, 3), (0, 1, 4), (1, 2, 5),
                                                        (0, 2, 6)}


def test_regions(topo):
    assert set(topo.regions) == set(REGIONS)
    sizes = {k: len(v) for k, v in topo.regions.items()}
    assert sizes == {"face_oval": 36, "lips_outer": 20, "lips_inner": 20, "left_eye": 16, "right_eye": 16,
                     "left_brow": 10, "right_brow": 10, "left_iris": 4, "right_iris": 4, "nose": 26}
    edge_set = {tuple(e) for e in topo.edges.tolist()}
    conn = parse_connections(model_path("mesh_topology"))
    for name, loop in topo.regions.items():
        assert loop.dtype == np.int64 and len(set(loop.tolist())) == len(loop)
        assert loop[0] == loop.min()
        pairs = {(min(a, b), max(a, b)) for a, b in zip(loop.tolist(), np.roll(loop, -1).tolist())}
        if name in ("left_iris", "right_iris"):
            continue
        if name.endswith("brow"):  # two brow lines from the file, joined at the ends by one mesh edge each
            src = {(min(a, b), max(a, b)) for a, b in conn["FACEMESH_" + name.split("_")[0].upper() + "_EYEBROW"]}
            assert src <= pairs and len(pairs - src) == 2 and (pairs - src) <= edge_set
        else:  # every step of the loop is a mesh edge
            assert pairs <= edge_set, name
    assert set(topo.regions["nose"]) == set(NOSE_OUTLINE)
    # loops run counter-clockwise on screen (negative shoelace area with y down) on the frontal face
    can = load_static_data()["canonical"].astype(np.float64)
    for name, loop in topo.regions.items():
        p = can[loop, :2]
        q = np.roll(p, -1, axis=0)
        assert (p[:, 0] * q[:, 1] - q[:, 0] * p[:, 1]).sum() < 0, name


def test_mirror_involution_and_symmetry(topo):
    m = topo.mirror
    assert m.shape == (478,) and m.dtype == np.int64
    assert np.array_equal(m[m], np.arange(478))
    assert sorted(m.tolist()) == list(range(478))
    assert (m == np.arange(478)).sum() == 28  # the midline points
    assert {1, 4, 6, 10, 152, 168, 0, 17, 13, 14} <= set(np.flatnonzero(m == np.arange(478)).tolist())
    assert m[33] == 263 and m[133] == 362 and m[61] == 291 and m[468] == 473
    assert np.array_equal(m[469:473], np.arange(474, 478))
    r = topo.regions
    for a, b in (("left_eye", "right_eye"), ("left_brow", "right_brow"), ("left_iris", "right_iris")):
        assert set(m[r[a]].tolist()) == set(r[b].tolist())
    for name in ("face_oval", "lips_outer", "lips_inner", "nose"):
        assert set(m[r[name]].tolist()) == set(r[name].tolist())
    # mirrored edges are edges; all but 6 quads (split along the other diagonal on the two sides) map faces
    edge_set = {tuple(e) for e in topo.edges.tolist()}
    mirrored = {(min(m[a], m[b]), max(m[a], m[b])) for a, b in topo.edges.tolist()}
    assert len(mirrored - edge_set) <= 6
    faces = {tuple(sorted(t)) for t in topo.triangles.tolist()}
    assert sum(tuple(sorted(m[t])) not in faces for t in topo.triangles) <= 12


def test_mirror_agrees_with_other_real_faces(topo, media):
    """The stored map equals the mirror-nearest-neighbour pairing computed afresh on other real portraits."""
    runner = build_canonical.FaceMeshRunner()
    for name in ("astronaut", "single_face_image"):
        lm = runner(build_canonical.read_rgb(media(name)))[0].astype(np.float64)
        _, mirror = build_canonical.frontalise(lm)
        assert np.array_equal(mirror, topo.mirror), name


def test_parse_is_data_only(tmp_path):
    bad = tmp_path / "conn.py"
    bad.write_text("import os\nFACEMESH_TESSELATION = frozenset([(0, 1), (1, 2), (2, 0)])\n"
                   "X = frozenset().union(*[FACEMESH_TESSELATION])\nos.system('false')\n")
    conn = parse_connections(bad)
    assert conn == {"FACEMESH_TESSELATION": [(0, 1), (1, 2), (2, 0)]}
    no_mesh = tmp_path / "no_mesh.py"
    no_mesh.write_text("A = frozenset([(0, 1)])\n")
    with pytest.raises(ModelError):
        load_topology(no_mesh)


def test_static_data_is_reproducible(media):
    """build_canonical regenerates the stored mirror map and canonical face from the sample clip."""
    frames = build_canonical.read_video_frames(media(build_canonical.DEFAULT_MEDIA), build_canonical.DEFAULT_FRAMES)
    runner = build_canonical.FaceMeshRunner()
    data = build_canonical.build_from_landmarks([runner(f)[0] for f in frames])
    stored = load_static_data()
    assert np.array_equal(data["mirror"], stored["mirror"])
    np.testing.assert_allclose(data["canonical"], stored["canonical"], rtol=0, atol=1e-3)
