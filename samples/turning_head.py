"""The turning-head clip: a real 3D head scan rendered turning from side to side, with its exact rotation per frame.

None of the registry clips turns its head much (the Pexels woman tilts, the webcam men face the lens). menpo3d
ships a textured scan of a man's head (samples/media.yaml: ``head_scan_mesh``, ``head_scan_texture``); rendered
here with the project's own rasteriser it gives a clip of real skin, eyes, stubble and hair under true 3D rotation,
yaw +-45 degrees and pitch +-8 degrees, and -- what no filmed clip has -- the ground truth of the head's rotation
on every frame.

What it is not: the scan's studio light is baked into its texture, so the light turns with the head, as no light
on a set does; the mouth and the eyes never move (a scan is one expression); and the eyeballs are part of the skin
surface. Use it for tracking, pose and the swap's geometry at large turns, not for lighting or expression.

Conventions: the scan's vertices (V, 3) are rotated about their bounding box's centre by R (3, 3) per frame
(``R = Rx(pitch) @ Ry(yaw)``, the scan's own frame: x right, y up, z toward the camera), projected by a pinhole
camera on the +z axis, rasterised by :func:`vidswap.appearance.raster.rasterize` and textured bilinearly.

Usage: ``python samples/turning_head.py [OUT.mp4] [--frames N]`` (default: the cached clip, printed).
Importable: :func:`turning_head_clip` -> (path, rotations), :func:`render_frames`, :func:`head_rotations`.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

VERSION = 1  # part of the cached clip's name: bump when the rendering changes
SIZE = (360, 640)  # (H, W) of the clip
FPS = 30
YAW, PITCH = 45.0, 8.0  # amplitudes, degrees: one side-to-side swing and two nods over the clip
DISTANCE = 900.0  # camera to the scan's centre, in the scan's units (millimetres)
FOCAL = 2.0  # focal length in picture heights: the head fills about 0.8 of the height


@dataclass
class HeadMesh:
    """A textured triangle mesh: vertices (V, 3) float64, uv (M, 2) float32 in [0, 1] (v up, OBJ's convention),
    triangles (T, 3) int64 vertex indices and triangle_uv (T, 3) int64 indices into ``uv``."""

    vertices: np.ndarray
    uv: np.ndarray
    triangles: np.ndarray
    triangle_uv: np.ndarray


def load_obj(path: Path | str) -> HeadMesh:
    """The vertices, texture coordinates and faces of a Wavefront OBJ file (faces ``v/vt`` or ``v/vt/vn``,
    1-based; polygons split into fans). Normals, groups and materials are ignored."""
    vertices, uv, tris, tris_uv = [], [], [], []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "v":
                vertices.append([float(x) for x in parts[1:4]])
            elif parts[0] == "vt":
                uv.append([float(x) for x in parts[1:3]])
            elif parts[0] == "f":
                corners = [p.split("/") for p in parts[1:]]
                if len(corners) < 3 or any(len(c) < 2 or not c[1] for c in corners):
                    raise ValueError(f"{path}:{number}: a face needs 3+ corners with texture coordinates (v/vt)")
                v = [int(c[0]) - 1 for c in corners]
                t = [int(c[1]) - 1 for c in corners]
                for k in range(1, len(corners) - 1):
                    tris.append([v[0], v[k], v[k + 1]])
                    tris_uv.append([t[0], t[k], t[k + 1]])
    mesh = HeadMesh(np.asarray(vertices, np.float64).reshape(-1, 3), np.asarray(uv, np.float32).reshape(-1, 2),
                    np.asarray(tris, np.int64).reshape(-1, 3), np.asarray(tris_uv, np.int64).reshape(-1, 3))
    if len(mesh.triangles) == 0 or mesh.triangles.max() >= len(mesh.vertices) or mesh.triangles.min() < 0 \
            or mesh.triangle_uv.max() >= len(mesh.uv) or mesh.triangle_uv.min() < 0:
        raise ValueError(f"{path}: no faces, or a face index outside the vertices or texture coordinates")
    return mesh


def head_rotations(frames: int, yaw: float = YAW, pitch: float = PITCH) -> np.ndarray:
    """(N, 3, 3) float64 rotations ``Rx(pitch_i) @ Ry(yaw_i)``: yaw ``yaw sin(2 pi s)`` and pitch
    ``pitch sin(4 pi s)`` degrees at ``s = i / (N - 1)`` -- one swing to each side and back, two nods."""
    s = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
    a, b = np.radians(yaw * np.sin(2 * np.pi * s)), np.radians(pitch * np.sin(4 * np.pi * s))
    out = np.zeros((len(s), 3, 3))
    for i, (y, p) in enumerate(zip(a, b)):
        ry = np.array([[math.cos(y), 0.0, math.sin(y)], [0.0, 1.0, 0.0], [-math.sin(y), 0.0, math.cos(y)]])
        rx = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(p), -math.sin(p)], [0.0, math.sin(p), math.cos(p)]])
        out[i] = rx @ ry
    return out


def background(size: tuple[int, int] = SIZE) -> np.ndarray:
    """(H, W, 3) uint8 RGB: a dark blue-grey gradient, a studio backdrop."""
    H, W = size
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    return np.stack([40 + 30 * yy / H, 45 + 20 * xx / W, 60 + 10 * yy / H], -1).round().astype(np.uint8)


def render_frames(mesh: HeadMesh, texture: np.ndarray, rotations: np.ndarray, size: tuple[int, int] = SIZE,
                  distance: float = DISTANCE, focal: float = FOCAL) -> Iterator[np.ndarray]:
    """(H, W, 3) uint8 RGB frames of ``mesh`` with ``texture`` (h, w, 3) uint8 RGB under each rotation (N, 3, 3),
    over :func:`background`. The head's bounding-box centre sits at the picture's centre, ``distance`` in front of
    a pinhole camera of focal length ``focal`` x H pixels."""
    import torch
    import torch.nn.functional as F

    from vidswap.appearance.raster import rasterize

    H, W = size
    centre = (mesh.vertices.min(0) + mesh.vertices.max(0)) / 2
    tri = torch.from_numpy(mesh.triangles)
    corner_uv = torch.from_numpy(mesh.uv)[torch.from_numpy(mesh.triangle_uv)]  # (T, 3, 2)
    tex = torch.from_numpy(np.ascontiguousarray(texture)).permute(2, 0, 1)[None].float()
    plate = background(size)
    f = focal * H
    for R in rotations:
        p = (mesh.vertices - centre) @ np.asarray(R, np.float64).T
        z = distance - p[:, 2]  # depth from the camera: smaller is nearer, as the rasteriser wants
        verts = np.stack([(W - 1) / 2 + f * p[:, 0] / z, (H - 1) / 2 - f * p[:, 1] / z, z], -1)
        tid, bary = rasterize(torch.from_numpy(verts).float()[None], tri, (H, W))
        hit = tid[0] >= 0
        uv = (corner_uv[tid[0][hit]] * bary[0][hit][..., None]).sum(1)  # (N, 2)
        grid = torch.stack([uv[:, 0] * 2 - 1, (1 - uv[:, 1]) * 2 - 1], -1)[None, None]
        colour = F.grid_sample(tex, grid, mode="bilinear", align_corners=False)[0, :, 0].T
        frame = plate.copy()
        frame[hit.numpy()] = colour.round().clamp(0, 255).to(torch.uint8).numpy()
        yield frame


def write_clip(path: Path, frames: Iterator[np.ndarray], fps: int = FPS) -> None:
    """Encode RGB frames to an H.264 MP4 (yuv420p, CRF 16), written under a temporary name and renamed
    (:func:`vidswap.io.atomic.atomic_file`)."""
    import av

    from vidswap.io.atomic import atomic_file

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as temp, av.open(str(temp), "w") as out:
        stream = None
        for frame in frames:
            if stream is None:
                stream = out.add_stream("libx264", rate=fps)
                stream.height, stream.width = frame.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "16", "preset": "medium"}
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                out.mux(packet)


def load_scan(manifest: dict | None = None) -> tuple[HeadMesh, np.ndarray]:
    """The head scan from the sample media (fetched and sha256-checked): its mesh and its RGB texture."""
    import cv2

    import fetch_media

    mesh = load_obj(fetch_media.fetch("head_scan_mesh", manifest))
    texture = cv2.imread(str(fetch_media.fetch("head_scan_texture", manifest)), cv2.IMREAD_COLOR)
    return mesh, np.ascontiguousarray(texture[..., ::-1])


def turning_head_clip(frames: int = 90, out: Path | None = None, yaw: float = YAW) -> tuple[Path, np.ndarray]:
    """The turning-head clip of ``frames`` frames, swinging ``yaw`` degrees to each side (rendered once into the
    media cache, or to ``out``), and its rotations (N, 3, 3) (:func:`head_rotations`)."""
    from vidswap.models.sources import cache_home

    rotations = head_rotations(frames, yaw=yaw)
    turn = "" if yaw == YAW else f"_yaw{yaw:g}"
    path = out or cache_home() / "media" / f"turning_head_v{VERSION}_{frames}{turn}.mp4"
    if out is not None or not path.exists():
        mesh, texture = load_scan()
        write_clip(path, render_frames(mesh, texture, rotations))
    return path, rotations


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", type=Path, help="write the clip here (default: the media cache)")
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument("--yaw", type=float, default=YAW, help="degrees to each side (default %(default)s)")
    args = ap.parse_args(argv)
    path, _ = turning_head_clip(args.frames, args.out, args.yaw)
    print(path)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main(sys.argv[1:]))
