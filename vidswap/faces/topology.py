"""Static topology of the 478-point MediaPipe face landmark set: triangles, region contours, mirror map.

The topology file (``model_path('mesh_topology')``, MediaPipe's ``face_mesh_connections.py``, Apache-2.0) is
parsed as data with :mod:`ast` -- never imported or executed.

Conventions (see also :mod:`vidswap.faces.pose`):

* "left"/"right" are the subject's, as in MediaPipe: ``left_eye`` is the eye around points 263/362, which
  appears on the image's right side in a frontal, unmirrored view. Irises: 468..472 (centre 468) belong to
  ``right_eye``, 473..477 (centre 473) to ``left_eye``.
* Triangles are oriented counter-clockwise as seen on screen from the camera on a frontal face: with frame
  coordinates (x right, y down, z away from the camera) the normal ``(b - a) x (c - a)`` points toward the
  camera (negative z), equivalently the 2D cross product of the screen projection is negative.
* Region loops are closed (the last point connects to the first, which is not repeated), start at their
  smallest index and run counter-clockwise on screen, like the triangles.
"""

from __future__ import annotations

import ast
import functools
import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidswap.errors import ModelError
from vidswap.models.registry import model_path

DATA_FILE = Path(__file__).resolve().parent / "data" / "canonical_face.npz"
N_MESH = 468
N_LANDMARKS = 478

REGION_SOURCES = {  # region -> connection-set name in the topology file
    "face_oval": "FACEMESH_FACE_OVAL",
    "left_eye": "FACEMESH_LEFT_EYE",
    "right_eye": "FACEMESH_RIGHT_EYE",
    "left_brow": "FACEMESH_LEFT_EYEBROW",
    "right_brow": "FACEMESH_RIGHT_EYEBROW",
    "left_iris": "FACEMESH_LEFT_IRIS",
    "right_iris": "FACEMESH_RIGHT_IRIS",
}
LIP_CORNERS_OUTER = (61, 291)
LIP_CORNERS_INNER = (78, 308)

# The file's FACEMESH_NOSE is a bridge line plus a loop around the nose tip and nostrils, not an outline.
# The nose outline used here follows mesh edges from the glabella (168) down each side wall of the bridge
# (193/417 -> 122/351 -> 188/412 -> 174/399 -> 236/456 -> 134/363), out over the alar creases
# (131/360 -> 49/279 -> 48/278 -> 64/294), under the nostrils (98/327 -> 97/326) to the subnasale (2).
# It is mirror-symmetric (checked against the mirror map in the tests).
NOSE_OUTLINE = (168, 193, 122, 188, 174, 236, 134, 131, 49, 48, 64, 98, 97, 2,
                326, 327, 294, 278, 279, 360, 363, 456, 399, 412, 351, 417)


@dataclass(frozen=True)
class MeshTopology:
    """Face mesh topology.

    Attributes:
        triangles: (T, 3) int64 mesh faces over points 0..467, consistently oriented (see module docstring).
        edges: (E, 2) int64 unique undirected tessellation edges, ``a < b``.
        regions: name -> (L,) int64 ordered closed contour loop: face_oval, lips_outer, lips_inner,
            left_eye, right_eye, left_brow, right_brow, left_iris, right_iris, nose.
        mirror: (478,) int64 left/right symmetric partner of every point (an involution; midline points map
            to themselves).
        boundary_loops: ordered loops of the mesh boundary (outer face oval, then the holes: eyes, mouth).
    """

    triangles: np.ndarray
    edges: np.ndarray
    regions: dict[str, np.ndarray]
    mirror: np.ndarray
    boundary_loops: list[np.ndarray] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------------------------------------------

def parse_connections(path: Path) -> dict[str, list[tuple[int, int]]]:
    """``{NAME: [(a, b), ...]}`` for every ``NAME = frozenset([...])`` literal in the file, in source order.

    Derived sets (``frozenset().union(...)``) are skipped. The file is parsed, never executed.
    """
    tree = ast.parse(Path(path).read_text())
    out: dict[str, list[tuple[int, int]]] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        call = node.value
        if (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "frozenset"
                and len(call.args) == 1 and isinstance(call.args[0], (ast.List, ast.Tuple, ast.Set))):
            pairs = ast.literal_eval(call.args[0])
            out[node.targets[0].id] = [(int(a), int(b)) for a, b in pairs]
    return out


# ---------------------------------------------------------------------------------------------------------------
# triangles
# ---------------------------------------------------------------------------------------------------------------

def _edge_key(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


def triangles_from_edges(edges: np.ndarray) -> np.ndarray:
    """(E, 2) undirected edges -> (T, 3) sorted vertex triples of the mesh faces.

    Every 3-clique of the edge graph is a candidate. A clique that is not a face (a "separating" triangle,
    e.g. the outline around a degree-3 vertex) makes its edges shared by three cliques; such cliques -- those
    whose three edges are all over-shared -- are removed, one at a time, until every edge is in at most two.
    """
    adj: dict[int, set[int]] = defaultdict(set)
    for a, b in edges:
        adj[int(a)].add(int(b))
        adj[int(b)].add(int(a))
    cliques = {(a, b, c) for a in adj for b in adj[a] if b > a for c in adj[a] & adj[b] if c > b}
    count: dict[tuple[int, int], int] = defaultdict(int)
    for t in cliques:
        for e in itertools.combinations(t, 2):
            count[e] += 1
    while True:
        over = [t for t in cliques if all(count[e] > 2 for e in itertools.combinations(t, 2))]
        if not over:
            break
        # remove the most over-shared clique first (deterministic tie-break on the indices)
        worst = max(over, key=lambda t: (sum(count[e] for e in itertools.combinations(t, 2)), t))
        cliques.remove(worst)
        for e in itertools.combinations(worst, 2):
            count[e] -= 1
    if any(v > 2 for v in count.values()):
        raise ModelError("mesh topology: tessellation is not a manifold after removing non-face cliques")
    return np.array(sorted(cliques), dtype=np.int64).reshape(-1, 3)


def orient_triangles(triangles: np.ndarray) -> np.ndarray:
    """Make the orientation of a manifold triangle mesh (T, 3) consistent (neighbours traverse a shared
    edge in opposite directions), propagating from the first triangle of each connected component."""
    tris = triangles.copy()
    by_edge: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, t in enumerate(tris):
        for k in range(3):
            by_edge[_edge_key(t[k], t[(k + 1) % 3])].append(i)
    done = np.zeros(len(tris), dtype=bool)
    for seed in range(len(tris)):
        if done[seed]:
            continue
        done[seed] = True
        stack = [seed]
        while stack:
            i = stack.pop()
            t = tris[i]
            for k in range(3):
                a, b = int(t[k]), int(t[(k + 1) % 3])
                for j in by_edge[_edge_key(a, b)]:
                    if j == i:
                        continue
                    u = tris[j]
                    same_dir = any(int(u[m]) == a and int(u[(m + 1) % 3]) == b for m in range(3))
                    if done[j]:
                        if same_dir:
                            raise ModelError("mesh topology: the tessellation is not orientable")
                        continue
                    if same_dir:
                        tris[j] = u[::-1]
                    done[j] = True
                    stack.append(j)
    return tris


def triangle_normals(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(..., N, 3) points, (T, 3) triangles -> (..., T, 3) unnormalised normals ``(b - a) x (c - a)``."""
    a, b, c = (points[..., triangles[:, k], :] for k in range(3))
    return np.cross(b - a, c - a)


def orient_toward_camera(triangles: np.ndarray, frontal: np.ndarray) -> np.ndarray:
    """Flip a consistently oriented mesh (T, 3) as a whole so that most normals on a frontal face (N, 3)
    point toward the camera (negative z): counter-clockwise on screen."""
    nz = triangle_normals(frontal.astype(np.float64), triangles)[:, 2]
    return triangles if (nz < 0).sum() >= (nz > 0).sum() else triangles[:, ::-1].copy()


def boundary_edges(triangles: np.ndarray) -> np.ndarray:
    """(T, 3) oriented triangles -> (B, 2) directed boundary edges (edges used by exactly one triangle)."""
    count: dict[tuple[int, int], int] = defaultdict(int)
    directed = []
    for t in triangles:
        for k in range(3):
            a, b = int(t[k]), int(t[(k + 1) % 3])
            count[_edge_key(a, b)] += 1
            directed.append((a, b))
    return np.array([e for e in directed if count[_edge_key(*e)] == 1], dtype=np.int64).reshape(-1, 2)


# ---------------------------------------------------------------------------------------------------------------
# loops
# ---------------------------------------------------------------------------------------------------------------

def chain_loops(edges: list[tuple[int, int]] | np.ndarray) -> list[list[int]]:
    """Undirected edges forming disjoint simple paths or cycles -> ordered vertex lists (cycles without the
    repeated first point). Paths start at their smaller endpoint, cycles at their smallest vertex."""
    adj: dict[int, list[int]] = defaultdict(list)
    for a, b in edges:
        adj[int(a)].append(int(b))
        adj[int(b)].append(int(a))
    if any(len(v) > 2 for v in adj.values()):
        raise ModelError("mesh topology: a region's edges branch; expected simple loops or paths")
    seen: set[int] = set()
    out = []
    starts = sorted(v for v in adj if len(adj[v]) == 1) + sorted(adj)
    for s in starts:
        if s in seen:
            continue
        path, prev, cur = [s], None, s
        seen.add(s)
        while True:
            nxt = [v for v in adj[cur] if v != prev and v not in seen]
            if not nxt:
                break
            prev, cur = cur, min(nxt)
            path.append(cur)
            seen.add(cur)
        out.append(path)
    return out


def _signed_area(loop: np.ndarray, xy: np.ndarray) -> float:
    p = xy[loop]
    q = np.roll(p, -1, axis=0)
    return float(0.5 * (p[:, 0] * q[:, 1] - q[:, 0] * p[:, 1]).sum())


def canonical_loop(loop: list[int] | np.ndarray, frontal: np.ndarray) -> np.ndarray:
    """Rotate a closed loop to start at its smallest index and run counter-clockwise on screen (y down:
    negative shoelace area) on a frontal face (N, 3)."""
    loop = np.asarray(loop, dtype=np.int64)
    if _signed_area(loop, frontal[:, :2].astype(np.float64)) > 0:
        loop = loop[::-1]
    return np.roll(loop, -int(np.argmin(loop)))


def _join_paths(paths: list[list[int]], adjacency: dict[int, set[int]]) -> list[int]:
    """Two open paths (a brow's upper and lower line) -> one closed loop, joining the endpoints that are
    nearest in the tessellation graph (breadth-first hop count)."""
    if len(paths) == 1:
        return paths[0]
    if len(paths) != 2:
        raise ModelError(f"mesh topology: expected two brow lines, got {len(paths)}")

    def hops(a: int, b: int) -> int:
        frontier, seen, d = {a}, {a}, 0
        while frontier:
            if b in frontier:
                return d
            frontier = {v for u in frontier for v in adjacency[u]} - seen
            seen |= frontier
            d += 1
        return 1 << 30

    p, q = paths
    keep = hops(p[-1], q[-1]) + hops(p[0], q[0])
    flip = hops(p[-1], q[0]) + hops(p[0], q[-1])
    return p + (q[::-1] if keep <= flip else q)


# ---------------------------------------------------------------------------------------------------------------
# static data and the public loader
# ---------------------------------------------------------------------------------------------------------------

def load_static_data(path: Path = DATA_FILE) -> dict[str, np.ndarray]:
    """The arrays written by ``tools/build_canonical.py``: ``mirror`` (478,), ``canonical`` (478, 3)."""
    if not Path(path).exists():
        raise ModelError(f"face data {path} is missing; reinstall vidswap, or regenerate it from a source checkout: "
                         "python tools/build_canonical.py")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def load_topology(path: Path | str | None = None) -> MeshTopology:
    """Parse the MediaPipe topology file (default ``model_path('mesh_topology')``) into a MeshTopology.

    Parsed once per process and file: later calls for the same file (same resolved path, size and modification
    time) return the same MeshTopology, which callers share and must not modify."""
    if path is None:
        path = model_path("mesh_topology")
    path = Path(path).resolve()
    stat = path.stat()
    return _parsed_topology(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _parsed_topology(path: Path, mtime_ns: int, size: int) -> MeshTopology:
    """:func:`load_topology`'s parse of ``path``; ``mtime_ns`` and ``size`` key the cache (a re-fetched file is
    parsed again)."""
    conn = parse_connections(path)
    if "FACEMESH_TESSELATION" not in conn:
        raise ModelError(f"mesh topology {path} has no FACEMESH_TESSELATION; re-fetch: vidswap models fetch "
                         "mesh_topology")
    static = load_static_data()
    frontal = static["canonical"]
    mirror = static["mirror"].astype(np.int64)

    edges = np.array(sorted({_edge_key(a, b) for a, b in conn["FACEMESH_TESSELATION"]}), dtype=np.int64)
    tris = orient_toward_camera(orient_triangles(triangles_from_edges(edges)), frontal)

    adjacency: dict[int, set[int]] = defaultdict(set)
    for a, b in edges:
        adjacency[int(a)].add(int(b))
        adjacency[int(b)].add(int(a))

    regions: dict[str, np.ndarray] = {}
    for name, key in REGION_SOURCES.items():
        loops = chain_loops(conn[key])
        loop = _join_paths(loops, adjacency) if name.endswith("brow") else loops[0]
        if len(loops) != 1 and not name.endswith("brow"):
            raise ModelError(f"mesh topology: {key} is not a single loop")
        regions[name] = canonical_loop(loop, frontal)
    for loop in chain_loops(conn["FACEMESH_LIPS"]):
        if LIP_CORNERS_OUTER[0] in loop:
            regions["lips_outer"] = canonical_loop(loop, frontal)
        elif LIP_CORNERS_INNER[0] in loop:
            regions["lips_inner"] = canonical_loop(loop, frontal)
    regions["nose"] = canonical_loop(np.array(NOSE_OUTLINE), frontal)

    bnd = boundary_edges(tris)
    loops = [canonical_loop(lp, frontal) for lp in chain_loops(bnd)]
    loops.sort(key=lambda lp: -abs(_signed_area(lp, frontal[:, :2].astype(np.float64))))
    return MeshTopology(triangles=tris, edges=edges, regions=regions, mirror=mirror, boundary_loops=loops)
