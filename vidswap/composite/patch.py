"""Face-patch output (``output: {kind: patch}``): the swapped face crops with alpha, and where they go on the plate.

For each frame and swapped face track the patch is the aligned face crop exactly as the compositor pasted it
(colour matched, before the warp), with its alpha:

* ``face_t<track>.<frame>.png``  16-bit RGBA, straight alpha, display-referred (the plate's own encoding); or
* ``face_t<track>.<frame>.exr``  half RGBA, premultiplied (the EXR/Nuke convention), scene-linear in
  ``colorspace.output`` (display-referred plates are decoded to it), with ``chromaticities``, ``colorSpace`` and
  provenance attributes (:mod:`vidswap.io.exr`),
* ``face_t<track>.<frame>.json`` the transform to the plate: ``crop_to_plate`` (2x3) and ``crop_to_plate_3x3``
  (row-major, last row 0 0 1) map patch pixel centres to plate pixel centres, origin at the top-left pixel's
  centre, x right, y down; ``plate_to_crop`` is the inverse,
* ``face_t<track>.nk``           a Nuke script per track (written after the last frame): Read (with its
  ``colorspace``) -> Premult -> Reformat to the plate format -> CornerPin2D keyed per frame, merged over a Read
  of the plate (:class:`NukePlate`), so opening it shows the comp.

Frame numbers are the plate's. Re-compositing a patch over its plate with the transform
(:func:`recomposite_patch`, bilinear, alpha over) reproduces the ``feather`` full render.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidswap.errors import InputError, MediaError
from vidswap.io.atomic import atomic_file
from vidswap.io.exr import ExrOutput, write_exr
from vidswap.io.sequences import SequencePattern, is_pattern

PATCH_EXTS = (".png", ".exr")
CONVENTION = "pixel centres; origin at the top-left pixel's centre; x right, y down"


def track_pattern(pattern: SequencePattern, track: int) -> SequencePattern:
    """The per-track pattern: ``face.####.png`` -> ``face_t0.####.png`` (separator before the number kept)."""
    head = pattern.head
    stem, sep = (head[:-1], head[-1]) if head and head[-1] in "._-" else (head, "")
    return SequencePattern(pattern.directory, f"{stem}_t{track}{sep}", pattern.tail, pattern.width)


def check_patch_pattern(path: str | Path) -> SequencePattern:
    """The output pattern of a patch job; InputError unless it is a numbered .png or .exr sequence."""
    if not is_pattern(path) or Path(str(path)).suffix.lower() not in PATCH_EXTS:
        raise InputError(f"output.kind patch writes image sequences: give a pattern like face.####.png or "
                         f"face.####.exr, not {path}")
    return SequencePattern.parse(path)


def affine_3x3(matrix: np.ndarray) -> np.ndarray:
    """(2, 3) affine -> (3, 3) homogeneous matrix."""
    return np.vstack([np.asarray(matrix, np.float64).reshape(2, 3), [0.0, 0.0, 1.0]])


def patch_record(number: int, track: int, crop_to_plate: np.ndarray, patch_size: tuple[int, int],
                 plate_size: tuple[int, int], file: str, alpha: str, colourspace: str | None) -> dict:
    """The JSON sidecar of one patch. ``patch_size``/``plate_size``: (width, height)."""
    m3 = affine_3x3(crop_to_plate)
    inv = np.linalg.inv(m3)
    return {"frame": int(number), "track": int(track), "file": file,
            "patch": {"width": int(patch_size[0]), "height": int(patch_size[1])},
            "plate": {"width": int(plate_size[0]), "height": int(plate_size[1])},
            "crop_to_plate": m3[:2].tolist(), "crop_to_plate_3x3": m3.tolist(), "plate_to_crop": inv[:2].tolist(),
            "convention": CONVENTION, "alpha": alpha, "colorspace": colourspace}


def plate_grain_record(appearance: dict | None) -> dict | None:
    """What the analysis read of the plate's grain on a track (:class:`~vidswap.composite.grain.StoredGrain`), for
    the sidecar: a patch is clean, and the comp re-grains it. None where the track has no reading."""
    from vidswap.composite.compositor import AUTO_GRAIN_RANGE  # the render's modules: only where a patch is written
    from vidswap.composite.grain import StoredGrain

    stored = StoredGrain.read(appearance)
    if stored is None:
        return None
    lo, hi = AUTO_GRAIN_RANGE
    return {"std": [round(float(v), 6) for v in stored.std], "size_px": round(stored.sigma, 3),
            "correlation": dict(zip(("rg", "rb", "gb"), (round(float(v), 3) for v in stored.corr))),
            "share": round(stored.share, 3),
            "about": "the plate's frame-to-frame noise on this face, in the display-referred working space (std of "
                     "each channel, full scale 1), its size (sigma of the Gaussian that blurs white noise into it) "
                     "and channel correlations; share near 1: noise, well under 1: texture (composite.grain: auto "
                     f"re-grains the full render from a share of {lo} to {hi}). The patch itself carries no grain."}


def occlusion_name(name: str) -> str:
    """The occlusion-matte file beside a PNG patch: ``face_t0.0042.png`` -> ``face_t0.0042.occlusion.png``."""
    return Path(name).stem + ".occlusion.png"


def write_rgba(path: Path, rgb: np.ndarray, alpha: np.ndarray, fmt: str, exr: ExrOutput | None = None,
               occlusion: np.ndarray | None = None) -> None:
    """HxWx3 RGB + HxW alpha (float) -> 16-bit straight-alpha PNG or half premultiplied EXR (``rgb`` already
    in ``exr.colourspace``; ``exr`` gives the header attributes, default: the built-in OCIO defaults).

    ``occlusion`` (HxW, 1 = in front of the face, already subtracted from ``alpha``): an ``occlusion`` channel of
    the EXR, or a 16-bit grey PNG beside the patch (:func:`occlusion_name`)."""
    import cv2  # here, not at import: the patch pattern checks of every job need no OpenCV

    try:
        if occlusion is not None and fmt == ".png":
            grey = np.round(np.clip(occlusion, 0.0, 1.0) * 65535.0).astype(np.uint16)
            ok, encoded = cv2.imencode(".png", grey, [cv2.IMWRITE_PNG_COMPRESSION, 1])
            if not ok:
                raise OSError("the PNG encoder refused the occlusion matte")
            encoded.tofile(path.with_name(occlusion_name(path.name)))
        if fmt == ".png":
            rgba = np.dstack([np.clip(rgb, 0.0, 1.0), np.clip(alpha, 0.0, 1.0)])
            data = np.round(rgba * 65535.0).astype(np.uint16)
            ok, encoded = cv2.imencode(".png", cv2.cvtColor(data, cv2.COLOR_RGBA2BGRA),
                                       [cv2.IMWRITE_PNG_COMPRESSION, 1])
            if not ok:
                raise OSError("the PNG encoder refused the patch")
            encoded.tofile(path)
        else:
            a = np.clip(alpha, 0.0, 1.0).astype(np.float32)
            rgba = np.dstack([rgb.astype(np.float32) * a[..., None], a]).astype(np.float16)
            channels = {"RGBA": rgba}
            if occlusion is not None:
                channels["occlusion"] = np.clip(occlusion, 0.0, 1.0).astype(np.float16)
            write_exr(path, channels, exr or ExrOutput.create())
    except (OSError, RuntimeError, cv2.error) as exc:
        raise MediaError(f"writing {path} failed ({exc}); check disk space and permissions, then retry") from None


def read_patch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A patch file -> (HxWx3 float32 straight RGB, HxW float32 alpha)."""
    import cv2

    path = Path(path)
    if path.suffix.lower() == ".png":
        data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if data is None or data.ndim != 3 or data.shape[2] != 4:
            raise InputError(f"{path} is not an RGBA patch")
        rgba = cv2.cvtColor(data, cv2.COLOR_BGRA2RGBA).astype(np.float32) / 65535.0
        return rgba[..., :3], rgba[..., 3]
    import OpenEXR

    with OpenEXR.File(str(path)) as exr:
        rgba = np.asarray(exr.channels()["RGBA"].pixels, np.float32)
    alpha = rgba[..., 3]
    rgb = np.where(alpha[..., None] > 0, rgba[..., :3] / np.maximum(alpha[..., None], 1e-8), 0.0)
    return rgb.astype(np.float32), alpha


def recomposite_patch(plate: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, crop_to_plate: np.ndarray,
                      paste=None) -> np.ndarray:
    """Lay a patch over its plate the way the compositor does (bilinear warp, alpha over).

    plate: HxWx3 (uint8/uint16/float); rgb/alpha: the patch (:func:`read_patch`); crop_to_plate: (2, 3).
    Returns the plate's dtype. ``paste``: :class:`~vidswap.composite.paste.PasteParams` (default ones).
    """
    import torch  # here, not at import: the patch pattern checks of every job need no torch

    from vidswap.composite.convert import from_float, to_float
    from vidswap.composite.paste import PasteParams, paste_crop

    fg = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
    a = torch.from_numpy(np.ascontiguousarray(alpha))[None, None]
    m = torch.as_tensor(np.asarray(crop_to_plate, np.float32).reshape(1, 2, 3))
    out = paste_crop(to_float(plate)[None], fg, a, m, mode="alpha", params=paste or PasteParams())
    return from_float(out[0], plate.dtype)


@dataclass
class PatchWriter:
    """A render-stage sink (``FaceLayer``) that writes each swapped face as a patch file plus its JSON sidecar.

    staging:    where files are written (the caller moves them into ``pattern.directory`` atomically).
    pattern:    the job's output pattern (``face.####.png``); tracks get ``face_t<id>.####.png``.
    plate_size: (width, height) of the plate the transforms map into.
    exr:        EXR patches: the crops (display-referred) are decoded to ``exr.colourspace``, and the header.
    display_space: the colourspace of PNG patches (the plate's display-referred encoding), for the sidecar.
    plate_grain: track id -> :func:`plate_grain_record` of the track, written into its sidecars.
    """

    staging: Path
    pattern: SequencePattern
    plate_size: tuple[int, int]
    exr: ExrOutput | None = None
    display_space: str | None = None
    plate_grain: dict[int, dict | None] = field(default_factory=dict)
    written: dict[int, list[int]] = field(default_factory=dict)  # track -> frames

    def __post_init__(self):
        if self.exr is None and self.pattern.ext == ".exr":
            self.exr = ExrOutput.create()

    def __call__(self, layer) -> None:
        fmt = self.pattern.ext
        track = track_pattern(self.pattern, layer.track)
        rgb = layer.crop.permute(1, 2, 0).cpu().numpy().astype(np.float32)
        alpha = layer.alpha[0].cpu().numpy().astype(np.float32)
        space = self.display_space
        if self.exr is not None and fmt == ".exr":
            rgb, space = self.exr.from_display(np.clip(rgb, 0.0, 1.0)), self.exr.colourspace
        name = track.name(layer.number)
        occlusion = getattr(layer, "occlusion", None)
        occ = None if occlusion is None else occlusion[0].cpu().numpy().astype(np.float32)
        write_rgba(self.staging / name, rgb, alpha, fmt, self.exr, occlusion=occ)
        record = patch_record(layer.number, layer.track, layer.crop_to_plate.cpu().numpy(),
                              (rgb.shape[1], rgb.shape[0]), self.plate_size, name,
                              "premultiplied" if fmt == ".exr" else "straight", space)
        if occ is not None:  # PNG: a grey 16-bit file beside the patch; EXR: an ``occlusion`` channel
            record["occlusion"] = occlusion_name(name) if fmt == ".png" else "occlusion"
        if self.plate_grain.get(layer.track) is not None:
            record["plate_grain"] = self.plate_grain[layer.track]
        sidecar = self.staging / (Path(name).stem + ".json")
        sidecar.write_text(json.dumps(record, indent=1))
        self.written.setdefault(layer.track, []).append(layer.number)


def read_sidecars(pattern: SequencePattern) -> dict[int, list[dict]]:
    """Every patch sidecar of the job on disk: track -> records sorted by frame."""
    tracks: dict[int, list[dict]] = {}
    if not pattern.directory.is_dir():
        return tracks
    stem = track_pattern(pattern, 0).head.rsplit("_t0", 1)[0]
    for entry in os.scandir(pattern.directory):
        if entry.name.startswith(stem + "_t") and entry.name.endswith(".json"):
            try:
                record = json.loads(Path(entry.path).read_text())
            except (OSError, ValueError):
                continue
            tracks.setdefault(int(record["track"]), []).append(record)
    return {t: sorted(r, key=lambda rec: rec["frame"]) for t, r in sorted(tracks.items())}


def nuke_corners(record: dict) -> list[tuple[float, float]]:
    """The patch's four corners (bottom-left, bottom-right, top-right, top-left, Nuke's CornerPin order) in the
    plate's Nuke coordinates (pixel edges, origin bottom-left, y up)."""
    w, h = record["patch"]["width"], record["patch"]["height"]
    plate_h = record["plate"]["height"]
    m = np.asarray(record["crop_to_plate"], np.float64)
    out = []
    for x_edge, y_edge in ((0, 0), (w, 0), (w, h), (0, h)):  # Nuke edge coordinates in the patch
        centre = np.array([x_edge - 0.5, (h - y_edge) - 0.5, 1.0])  # -> top-left pixel-centre coordinates
        px, py = m @ centre
        out.append((float(px + 0.5), float(plate_h - (py + 0.5))))
    return out


@dataclass(frozen=True)
class NukePlate:
    """The plate a Nuke script merges the patches over.

    file:       the Read's file: a movie, or a sequence with one ``#`` per digit (``plate.####.exr``).
    first, last: the plate's frame numbers (vidswap numbers video frames from 0).
    colorspace: the plate's OCIO colourspace (the Read's ``colorspace`` knob), or None to leave Nuke's default.
    movie:      a movie file: Nuke numbers its frames from 1, so the Read starts it at ``first``.
    """

    file: str
    first: int
    last: int
    colorspace: str | None = None
    movie: bool = False

    def read_node(self) -> list[str]:
        lines = ["Read {", " inputs 0", f" file {nuke_string(Path(self.file).as_posix())}"]
        if self.movie:
            count = self.last - self.first + 1
            lines += [" first 1", f" last {count}", " origfirst 1", f" origlast {count}", " origset true",
                      " frame_mode \"start at\"", f" frame {self.first}"]
        else:
            lines += [f" first {self.first}", f" last {self.last}", f" origfirst {self.first}",
                      f" origlast {self.last}", " origset true"]
        if self.colorspace:
            lines.append(f" colorspace {nuke_string(self.colorspace)}")
        return lines + [" on_error black", " name Read_plate", "}"]


def nuke_string(text: str) -> str:
    r"""``text`` as a double-quoted Nuke (Tcl) string whose knob value is ``text`` itself.

    A .nk file is read by Tcl, and Nuke evaluates ``[...]`` and ``$...`` in file knobs again when it reads the
    files, so a path like ``shot [python ...].exr`` is escaped twice: each of ``[ ] $ \`` becomes ``\\\`` and
    itself (the script's parse leaves ``\`` and the character, the knob's evaluation the character), each of
    ``" { }`` becomes ``\`` and itself. Control characters (a newline ends a knob) are refused: InputError.
    """
    text = str(text)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise InputError(f"{text!r:.80} has a control character, which a Nuke script cannot hold; rename it")
    out = []
    for ch in text:
        if ch in "[]$\\":
            out.append("\\\\\\" + ch)
        elif ch in '"{}':
            out.append("\\" + ch)
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def nuke_script(pattern: SequencePattern, track: int, records: list[dict], plate: NukePlate | None = None) -> str:
    """A Nuke script laying track ``track``'s patches onto the plate format (Read -> Premult -> Reformat ->
    CornerPin2D keyed per frame) and, with ``plate``, merging them over a Read of the plate (``Merge2`` over:
    B the plate, A the patches). The patch Read's ``colorspace`` is the sidecars' colourspace."""
    if not records:
        raise ValueError("no patches to script")
    tp = track_pattern(pattern, track)
    first, last = records[0]["frame"], records[-1]["frame"]
    w, h = records[0]["patch"]["width"], records[0]["patch"]["height"]
    pw, ph = records[0]["plate"]["width"], records[0]["plate"]["height"]
    file = (tp.directory.resolve() / f"{tp.head}{'#' * tp.width}{tp.tail}").as_posix()
    corners = [nuke_corners(r) for r in records]

    def curve(k: int, axis: int) -> str:
        keys = " ".join(f"x{r['frame']} {c[k][axis]:.6f}" for r, c in zip(records, corners))
        return f"{{curve {keys}}}"

    straight = records[0]["alpha"] == "straight"
    lines = ["#! nuke script written by vidswap: face patches of one track", "version 13.0",
             "Read {", " inputs 0", f" file {nuke_string(file)}",
             f" format \"{w} {h} 0 0 {w} {h} 1 vidswap_patch\"",
             f" first {first}", f" last {last}", f" origfirst {first}", f" origlast {last}", " origset true",
             " on_error black", f" premultiplied {'false' if straight else 'true'}",
             *([f" colorspace {nuke_string(records[0]['colorspace'])}"] if records[0].get("colorspace") else []),
             f" name Read_face_t{track}", "}"]
    if straight:
        lines += ["Premult {", f" name Premult_face_t{track}", "}"]
    lines += ["Reformat {", f" format \"{pw} {ph} 0 0 {pw} {ph} 1 vidswap_plate\"", " resize none",
              " center false", " pbb true", f" name Reformat_face_t{track}", "}",
              "CornerPin2D {"]
    for k in range(4):
        lines.append(f" to{k + 1} {{{curve(k, 0)} {curve(k, 1)}}}")
    for k, (x, y) in enumerate(((0, 0), (w, 0), (w, h), (0, h))):
        lines.append(f" from{k + 1} {{{x} {y}}}")
    lines += [f" name CornerPin_face_t{track}", "}"]
    if plate is not None:  # the last node pushed is a Merge's input 0 (B): the plate goes second
        lines += plate.read_node()
        lines += ["Merge2 {", " inputs 2", " operation over", f" name Merge_face_t{track}", "}"]
    return "\n".join(lines + [""])


def write_nuke_scripts(pattern: SequencePattern, plate: NukePlate | None = None) -> dict[int, Path]:
    """``face_t<track>.nk`` for every track with patches on disk (atomic writes), merged over ``plate`` when
    given; returns {track: script path}."""
    paths = {}
    for track, records in read_sidecars(pattern).items():
        tp = track_pattern(pattern, track)
        path = tp.directory / f"{tp.head.rstrip('._-')}.nk"
        with atomic_file(path) as temp:
            temp.write_text(nuke_script(pattern, track, records, plate))
        paths[track] = path
    return paths
