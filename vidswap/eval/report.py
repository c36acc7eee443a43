"""Evaluate a swapped clip against its original plate and the source photos; write metrics and a report.

    metrics = evaluate(Path("shot_swapped.mp4"), Path("shot.mp4"), [Path("actor.jpg")], Path("eval/"))

Writes into ``out_dir``:

* ``metrics.json`` -- summary numbers, per-frame series, which judges were used (and their licenses);
* ``report.html`` -- self-contained (images embedded as base64);
* ``identity.png``, ``pose.png``, ``expression.png``, ``temporal.png``, ``quality.png`` -- per-frame plots;
* ``contact_sheet.png`` (target | result, whole frames) and ``faces_sheet.png`` (the same pairs, face close-ups)
  of evenly sampled frames;
* ``embeddings.npz`` -- ArcFace embeddings for suite-level identity retrieval: ``result`` (10 frames sampled
  evenly among those with a face, NaN rows if fewer), ``source`` (mean of the sources), ``target`` (mean of the
  plate's face over the evaluated frames), ``numbers`` (the frames sampled).

How the result is paired with the target: ``frames`` names the target frames the result covers (default: all of
them). A result with as many frames pairs by position (a rendered video numbers its frames from 0); otherwise
the result must contain those frame numbers (an image sequence keeps the plate's numbers). A result of another
size and the plate's shape (a preview) is resized to the plate's size for the pixel measures; another shape (a side-by-side
compare) is refused (:mod:`vidswap.eval.pairing`). ``every`` evaluates every N-th pair;
motion compensation for flicker always uses the frame just before each evaluated one.

Per evaluated frame, on the *largest face of the target frame* (the result's face is the detection overlapping it
most; none overlapping = the face was lost, counted and left out):

* identity: ArcFace (``arcface_mbf``, an independent judge, not the pipeline's SFace) cosine of the result face
  to the mean source embedding and to the plate's face in the same frame; the plate's own similarity to the
  source as the baseline;
* pose and expression: InsightFace 2d106 landmarks (an independent landmark model, not the pipeline's MediaPipe
  mesh); pose by a scaled-orthographic fit of a 3D template of the rigid points (``metrics.fit_pose``);
  expression as mouth opening and eye aspect ratios;
* temporal: flicker inside the face region after compensating the plate's motion (DIS optical flow on the
  target frames, applied to both clips), result against plate; landmark jitter of the 106-point tracks;
* image quality in the face region: sharpness (Laplacian energy) and seam (gradient along the boundary of the
  region the result changed) relative to the plate, and the tone step across that boundary (a feathered colour
  mismatch).

The face region is the target's 2d106 outline lifted to the forehead (``metrics.face_polygon``).
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from vidswap.composite.debug import to_uint8_rgb
from vidswap.errors import InputError, NoFaceError
from vidswap.eval import appearance as A
from vidswap.eval import figures
from vidswap.eval import frame_metrics as FM
from vidswap.eval import metrics as M
from vidswap.eval.judges import ArcFaceJudge, Landmarks106
from vidswap.faces.detect import YuNetDetector, largest_face
from vidswap.io import probe, read_frames, read_image
from vidswap.eval.pairing import check_result_shape, frame_range, pair_frames  # noqa: F401 (frame_range: API)
from vidswap.eval.verdict import eyes_closing, overall, verdicts
from vidswap.models.registry import model_path

RETRIEVAL_FRAMES = 10
SHEET_FRAMES = 8
DETECTOR_INPUT = (320, 640)  # YuNet input side: half the frame's long side, within these bounds
ROI_MARGIN = 0.25
SEAM_MIN_CHANGED = 0.3  # the seam is measured on the changed region's boundary when it covers this much of the face
SEAM_WIDTH = 0.015  # half-width of the seam band, fraction of the face size
STEP_WIDTH = 0.06  # depth of the bands either side of the boundary for the tone step, fraction of the face size
SMEAR_SPEED = 3.0  # px a frame: the plate's face moving at least this fast has its motion smear compared
INSET = 0.05  # the smear and the noise: inside the face region eroded by this fraction of its size

SERIES = ("id_to_source", "id_to_target", "target_to_source", "pose_error", "pose_motion_error", "yaw_error",
          "pitch_error", "roll_error", "pose_l2", "yaw_target", "pitch_target", "roll_target", "yaw_result",
          "pitch_result", "roll_result", "mouth_target", "mouth_result", "eyes_target", "eyes_result", "mouth_error",
          "eyes_error", "expression_l2", "flicker_result", "flicker_target", "sharp_result", "sharp_target", "seam",
          "boundary_step", "boundary_tone", "lighting", "smear_result", "smear_target", "noise_result",
          "noise_target")


# --------------------------------------------------------------------------------------------------------------
# pairing


# --------------------------------------------------------------------------------------------------------------
# judges


class Judges:
    """The models of one evaluation: detector (the pipeline's YuNet: only locates faces), ArcFace, 2d106."""

    def __init__(self, frame_size: tuple[int, int] = (640, 360), threads: int | None = None):
        side = int(min(DETECTOR_INPUT[1], max(DETECTOR_INPUT[0], max(frame_size) // 2)))
        self.detector = YuNetDetector.from_path(model_path("yunet"), threads=threads, input_size=side)
        self.arcface = ArcFaceJudge.load(threads=threads)
        self.landmarks = Landmarks106.load(threads=threads)

    def source_embedding(self, sources: Sequence[Path]) -> np.ndarray:
        embs = []
        for path in sources:
            image = read_image(path)
            face = largest_face(self.detector([image])[0])
            if face is None:
                raise NoFaceError(f"no face found in source {path}; use a photo with a clearly visible face")
            embs.append(self.arcface.embed([image], face.kps[None])[0])
        return M.mean_embedding(np.stack(embs))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _roi(polygon: np.ndarray, shape: tuple[int, int], margin: float = ROI_MARGIN) -> tuple[slice, slice]:
    """Slices of the polygon's bounding box grown by ``margin`` x its size, clipped to the frame."""
    h, w = shape[:2]
    lo, hi = polygon.min(0), polygon.max(0)
    pad = margin * (hi - lo).max()
    x0, y0 = (np.floor(lo - pad)).astype(int)
    x1, y1 = (np.ceil(hi + pad)).astype(int) + 1
    return slice(max(0, y0), min(h, y1)), slice(max(0, x0), min(w, x1))


def _square_crop(image: np.ndarray, polygon: np.ndarray, size: int = 160) -> np.ndarray:
    lo, hi = polygon.min(0), polygon.max(0)
    c = (lo + hi) / 2
    side = 1.3 * (hi - lo).max()
    k = size / side
    m = np.array([[k, 0, size / 2 - k * c[0]], [0, k, size / 2 - k * c[1]]], np.float32)
    return cv2.warpAffine(to_uint8_rgb(image), m, (size, size), flags=cv2.INTER_AREA,
                          borderMode=cv2.BORDER_CONSTANT)


def _source_crop(judges: "Judges", path: Path) -> np.ndarray:
    """A square crop of the source photo's largest face (the whole photo when none is found)."""
    image = read_image(path)
    face = largest_face(judges.detector([image])[0])
    if face is None:
        return to_uint8_rgb(image)
    x0, y0, x1, y1 = face.box
    return _square_crop(image, np.array([[x0, y0], [x1, y1]], np.float32))


def _thumb(image: np.ndarray, height: int = 200) -> np.ndarray:
    img = to_uint8_rgb(image)
    h, w = img.shape[:2]
    return cv2.resize(img, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)


# --------------------------------------------------------------------------------------------------------------
# the evaluation


def evaluate(result: Path, target: Path, sources: list[Path], out_dir: Path, frames: range | None = None,
             every: int = 1, progress: Callable[[str, int, int], None] | None = None, threads: int | None = None
             ) -> dict:
    """Evaluate ``result`` (a swapped clip) against ``target`` (its original plate) and the ``sources``.

    Args:
        result: the swapped video / image sequence / image.
        target: the original plate it was rendered from.
        sources: the source portraits of the identity swapped in (their ArcFace embeddings are averaged).
        out_dir: where the report files go (created).
        frames: target frame numbers the result covers (default: all; see the module doc for pairing).
        every: evaluate every N-th frame pair (>= 1).
        progress: optional ``progress("eval", done, total)`` after every evaluated frame (the pipeline's
            progress signature, so the CLI's bar works).
        threads: intra-op threads of the judges' sessions.

    Returns:
        the metrics dict also written to ``metrics.json`` (NaN written as null).
    """
    if every < 1:
        raise InputError(f"every must be at least 1, got {every}")
    if not sources:
        raise InputError("no source image given: the identity score needs --source IMAGE")
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rinfo, tinfo = probe(result), probe(target)
    size_note = check_result_shape(rinfo, tinfo)
    rnums, tnums = pair_frames(rinfo.frame_numbers, tinfo.frame_numbers, frames)
    total = len(range(0, len(tnums), every))

    judges = Judges((tinfo.width, tinfo.height), threads)
    src_emb = judges.source_embedding(sources)
    load_seconds = time.perf_counter() - start

    sheet_at = set(np.unique(np.linspace(0, max(total - 1, 0), min(SHEET_FRAMES, total)).round().astype(int)))
    rec: dict[str, list] = {k: [] for k in SERIES}
    numbers: list[int] = []
    lm_t: list[np.ndarray] = []
    lm_r: list[np.ndarray] = []
    rot_t: list[np.ndarray] = []
    rot_r: list[np.ndarray] = []
    emb_r: list[np.ndarray] = []
    emb_t: list[np.ndarray] = []
    sheet_pairs: list[tuple[np.ndarray, np.ndarray]] = []
    face_pairs: list[tuple[np.ndarray, np.ndarray]] = []
    sheet_labels: list[str] = []
    face_labels: list[str] = []
    missing_target = missing_result = seam_changed = 0
    resized = False
    eval_seconds = 0.0
    nan = float("nan")
    nan106 = np.full((106, 2), np.nan, np.float32)
    nan33 = np.full((3, 3), np.nan)
    prev_t = prev_r = None
    done = 0

    with read_frames(tinfo, tnums) as tframes, read_frames(rinfo, rnums) as rframes:
        for k, (ft, fr) in enumerate(zip(tframes, rframes)):
            img_t, img_r = ft.image, fr.image
            if img_r.shape[:2] != img_t.shape[:2]:
                resized = True
                interp = cv2.INTER_AREA if img_r.shape[0] > img_t.shape[0] else cv2.INTER_CUBIC
                img_r = cv2.resize(img_r, (img_t.shape[1], img_t.shape[0]), interpolation=interp)
            if k % every:
                prev_t, prev_r = img_t, img_r
                continue
            t0 = time.perf_counter()
            row = {key: nan for key in SERIES}
            numbers.append(int(ft.number))
            pts_t = pts_r = nan106
            R_t = R_r = nan33
            e_t = e_r = np.full(512, np.nan, np.float32)
            dets_t, dets_r = judges.detector([img_t, img_r])
            face_t = max(dets_t, key=lambda d: (d.area, d.score)) if dets_t else None
            face_r = None
            if face_t is None:
                missing_target += 1
            else:
                overlaps = [(_iou(face_t.box, d.box), d) for d in dets_r]
                best = max(overlaps, key=lambda x: x[0], default=(0.0, None))
                face_r = best[1] if best[0] >= 0.3 else None
                if face_r is None:
                    missing_result += 1
            if face_t is not None:
                boxes = [face_t.box] + ([face_r.box] if face_r is not None else [])
                pts = judges.landmarks([img_t, img_r], np.stack(boxes), [0, 1][:len(boxes)])
                kps = [face_t.kps] + ([face_r.kps] if face_r is not None else [])
                embs = judges.arcface.embed([img_t, img_r], np.stack(kps), [0, 1][:len(kps)])
                pts_t, e_t = pts[0], embs[0]
                row["target_to_source"] = float(M.identity_similarity(e_t[None], src_emb)[0])
                R_t = M.fit_pose(pts_t)[1][0]
                row["yaw_target"], row["pitch_target"], row["roll_target"] = M.euler_degrees(R_t[None])[0]
                feats_t = M.expression_features(pts_t)
                row["mouth_target"], row["eyes_target"] = feats_t[0], feats_t[1:].mean()
                polygon = M.face_polygon(pts_t)
                ys, xs = _roi(polygon, img_t.shape)
                mask = M.polygon_mask((ys.stop - ys.start, xs.stop - xs.start),
                                      polygon - [xs.start, ys.start])
                crop_t, crop_r = img_t[ys, xs], img_r[ys, xs]
                size = M.face_size(mask)
                inner = FM.eroded(mask, max(1, int(round(INSET * size))))  # clear of the outline
                if prev_t is not None:
                    flow = FM.dis_flow(prev_t[ys, xs], crop_t)
                    row["flicker_target"] = FM.flicker_error(prev_t[ys, xs], crop_t, flow, mask)
                    row["flicker_result"] = FM.flicker_error(prev_r[ys, xs], crop_r, flow, mask)
                    row["noise_target"] = FM.temporal_noise(prev_t[ys, xs], crop_t, flow, inner)
                    row["noise_result"] = FM.temporal_noise(prev_r[ys, xs], crop_r, flow, inner)
                row["lighting"] = A.lighting_correlation(crop_r, crop_t, mask)
                row["sharp_target"] = FM.laplacian_energy(crop_t, mask)
                row["sharp_result"] = FM.laplacian_energy(crop_r, mask)
                if lm_t:  # the plate face's motion since the last evaluated frame: the smear along it
                    motion = (pts_t - lm_t[-1]).mean(0) / max(1, numbers[-1] - numbers[-2])
                    if np.isfinite(motion).all() and float(np.hypot(*motion)) >= SMEAR_SPEED:
                        row["smear_target"] = FM.along_across_energy(crop_t, inner, motion)
                        row["smear_result"] = FM.along_across_energy(crop_r, inner, motion)
                changed = FM.change_mask(crop_r, crop_t, sigma=max(1.0, 0.015 * size))
                seam_on = changed if (changed & mask).sum() >= SEAM_MIN_CHANGED * mask.sum() else mask
                seam_changed += int(seam_on is changed)
                row["seam"] = FM.seam_ratio(crop_r, crop_t, seam_on, width=max(1, int(round(SEAM_WIDTH * size))))
                step_width = max(2, int(round(STEP_WIDTH * size)))
                row["boundary_step"] = FM.boundary_step(crop_r, crop_t, seam_on, width=step_width)
                row["boundary_tone"] = FM.boundary_tone_offset(crop_r, crop_t, seam_on, width=step_width)
                if face_r is not None:
                    pts_r, e_r = pts[1], embs[1]
                    row["id_to_source"] = float(M.identity_similarity(e_r[None], src_emb)[0])
                    row["id_to_target"] = float(M.identity_similarity(e_r[None], e_t)[0])
                    R_r = M.fit_pose(pts_r)[1][0]
                    row["yaw_result"], row["pitch_result"], row["roll_result"] = M.euler_degrees(R_r[None])[0]
                    err = M.pose_error(R_r, R_t)
                    row["pose_error"], row["yaw_error"], row["pitch_error"], row["roll_error"], row["pose_l2"] = (
                        float(err[key][0]) for key in ("angle", "yaw", "pitch", "roll", "l2"))
                    feats_r = M.expression_features(pts_r)
                    row["mouth_result"], row["eyes_result"] = feats_r[0], feats_r[1:].mean()
                    xerr = M.expression_error(pts_r[None], pts_t[None])
                    row["mouth_error"], row["eyes_error"], row["expression_l2"] = (
                        float(xerr[key][0]) for key in ("mouth", "eyes", "l2"))
                if len(numbers) - 1 in sheet_at:
                    face_pairs.append((_square_crop(img_t, polygon), _square_crop(img_r, polygon)))
                    face_labels.append(f"#{ft.number}")
            if len(numbers) - 1 in sheet_at:
                sheet_pairs.append((_thumb(img_t), _thumb(img_r)))
                sheet_labels.append(f"#{ft.number}")
            for key in SERIES:
                rec[key].append(float(row[key]))
            lm_t.append(pts_t)
            lm_r.append(pts_r)
            rot_t.append(R_t)
            rot_r.append(R_r)
            emb_t.append(e_t)
            emb_r.append(e_r)
            prev_t, prev_r = img_t, img_r
            eval_seconds += time.perf_counter() - t0
            done += 1
            if progress:
                progress("eval", done, total)

    if not numbers:
        raise InputError(f"no frames to evaluate in {result}")
    emb_r_arr, emb_t_arr = np.stack(emb_r), np.stack(emb_t)
    motion, offset = M.pose_motion_error(np.stack(rot_r), np.stack(rot_t))
    rec["pose_motion_error"] = [float(v) for v in motion]
    with warnings.catch_warnings():  # all-NaN series (a face lost throughout) summarise as NaN, said in the report
        warnings.simplefilter("ignore", RuntimeWarning)
        data = _aggregate(rec, np.stack(lm_r), np.stack(lm_t), emb_r_arr, emb_t_arr, src_emb)
    data["expression"]["eyes_closing"] = eyes_closing(rec["eyes_target"], rec["eyes_result"], numbers)
    data["pose"]["offset_deg"] = float(M.pose_error(offset[None], np.eye(3)[None])["angle"][0])
    data["pose"]["offset_ypr_deg"] = [float(v) for v in M.euler_degrees(offset[None])[0]]
    data["per_frame"] = {"number": numbers, **{k: rec[k] for k in SERIES},
                         "jitter_result": FM.landmark_acceleration(np.stack(lm_r)).tolist(),
                         "jitter_target": FM.landmark_acceleration(np.stack(lm_t)).tolist()}
    judge_notes = {
        "identity": "ArcFace MobileFaceNet: " + judges.arcface.note,
        "landmarks": "InsightFace 2d106: " + judges.landmarks.note,
        "pose": "scaled-orthographic fit of a 3D template of 19 rigid 2d106 points (nose, eye corners); "
                "template triangulated once from the sample clips (tools/build_template.py). One template for "
                "every face: a face of other proportions reads a few degrees off (mostly in pitch), so compare "
                "swaps with each other rather than with 0",
        "expression": "mouth opening ratio (inner-lip gap / mouth width) and eye aspect ratios from 2d106 points",
        "detector": "YuNet (the pipeline's detector; used only to locate faces and their 5 keypoints)",
        "independent_of_pipeline": True,
        "license_note": "arcface_mbf and landmarks_2d106 are InsightFace models for non-commercial research only:"
                        " used here for evaluation only, fetched on demand, never by the pipeline",
    }
    seconds = time.perf_counter() - start
    head = {
        "result": str(result), "target": str(target), "sources": [str(s) for s in sources],
        "frames": {"evaluated": len(numbers), "first": numbers[0], "last": numbers[-1], "every": every,
                   "target_face_missing": missing_target, "result_face_missing": missing_result,
                   "seam_on_changed_region": seam_changed,
                   "result_resized_to_target": resized, "size_note": size_note},
        "judges": judge_notes,
        "timing": {"seconds": seconds, "model_load_seconds": load_seconds,
                   "ms_per_frame": 1000.0 * eval_seconds / len(numbers)},
    }
    metrics = {**head, **data}
    checks = verdicts(metrics)
    metrics["verdict"] = {"overall": overall(checks), "checks": [
        {"key": c.rule.key, "check": c.rule.name, "meaning": c.rule.meaning, "value": c.value, "status": c.status,
         "thresholds": c.rule.threshold_text(), "note": c.note} for c in checks]}
    _write_embeddings(out_dir / "embeddings.npz", emb_r_arr, emb_t_arr, src_emb, numbers)
    images = figures.write_figures(out_dir, metrics, sheet_pairs, sheet_labels, face_pairs, face_labels)
    if face_pairs:
        middle = len(face_pairs) // 2
        strip = figures.faces_strip(_source_crop(judges, sources[0]), *face_pairs[middle],
                                    int(face_labels[middle].lstrip("#")))
        images = {"strip": figures.write_png(out_dir / "strip.png", strip), **images}
    metrics["files"] = {name: path.name for name, path in images.items()}
    metrics["files"].update({"metrics": "metrics.json", "report": "report.html", "embeddings": "embeddings.npz"})
    _write_text(out_dir / "metrics.json", json.dumps(_jsonable(metrics), indent=2, allow_nan=False))
    _write_text(out_dir / "report.html", figures.html_report(metrics, images))
    return metrics


def _aggregate(rec: dict[str, list], lm_r: np.ndarray, lm_t: np.ndarray, emb_r: np.ndarray, emb_t: np.ndarray,
               src_emb: np.ndarray) -> dict:
    S = M.summarize
    n = len(rec["id_to_source"])
    valid = np.isfinite(emb_r).all(1)
    # per-frame retrieval between the two identities in play: is each result face closer to the source?
    source_wins = float("nan")
    t_ok = np.isfinite(emb_t).all(1)
    if valid.any() and t_ok.any():
        top1, _ = M.retrieval([emb_r[valid]], np.stack([src_emb, M.mean_embedding(emb_t[t_ok])]), [0], k=2)
        source_wins = top1
    jit = FM.jitter_ratio(lm_r, lm_t) if n >= 3 else {"result": None, "target": None, "ratio": None}
    flick = FM.ratio_summary(rec["flicker_result"], rec["flicker_target"])
    sharp = FM.ratio_summary(rec["sharp_result"], rec["sharp_target"])
    noise = FM.ratio_summary(rec["noise_result"], rec["noise_target"])
    smear = np.asarray(rec["smear_result"], np.float64) / np.asarray(rec["smear_target"], np.float64)
    smear = smear[np.isfinite(smear)]
    pose_ok = np.isfinite(np.asarray(rec["pose_error"]))
    return {
        "identity": {
            "to_source": S(rec["id_to_source"]),
            "to_target": S(rec["id_to_target"]),
            "target_to_source": S(rec["target_to_source"]),
            "closer_to_source_rate": source_wins,
            "about": "ArcFace cosine of the result face to the mean source embedding / to the plate's face in "
                     "the same frame; target_to_source is the plate's own similarity to the source (baseline); "
                     "closer_to_source_rate: share of frames whose face is nearer the source than the plate's "
                     "identity",
        },
        "pose": {
            "error_deg": S(rec["pose_error"]),
            "motion_error_deg": S(rec["pose_motion_error"]),
            "yaw_error_deg": S(rec["yaw_error"]),
            "pitch_error_deg": S(rec["pitch_error"]),
            "roll_error_deg": S(rec["roll_error"]),
            "l2_deg": S(rec["pose_l2"]),
            "frames": int(pose_ok.sum()),
            "about": "error_deg: geodesic angle between result and target head rotations; motion_error_deg: the "
                     "same after the clip's constant offset in the head's frame (offset_deg, offset_ypr_deg) is "
                     "taken out: a template fit reads a face's own proportions as a constant tilt, so another "
                     "person's face turned exactly as the plate's reads several degrees off on every frame; "
                     "l2_deg: L2 norm of the (yaw, pitch, roll) difference as in the seed papers' Hopenet numbers",
        },
        "expression": {
            "mouth_open_error": S(rec["mouth_error"]),
            "eye_open_error": S(rec["eyes_error"]),
            "l2": S(rec["expression_l2"]),
            "mouth_correlation": A.series_correlation(rec["mouth_result"], rec["mouth_target"]),
            "eyes_correlation": A.series_correlation(rec["eyes_result"], rec["eyes_target"]),
            "about": "absolute differences of the mouth opening ratio (inner-lip gap / mouth width) and the eye "
                     "aspect ratio (lid gap / eye width, mean of both eyes); l2 over the three ratios; "
                     "mouth/eyes_correlation: how the result's mouth and eye opening follow the plate's over the "
                     "clip (Pearson correlation; empty where the plate's does not move)",
        },
        "temporal": {
            "flicker": flick,
            "jitter": jit,
            "about": "flicker: mean |frame - motion-compensated previous frame| in the face region (8-bit levels), "
                     "motion from DIS optical flow on the plate; ratio = result / plate (1 = as steady as the "
                     "plate), excess = result - plate. jitter: RMS second difference of the 106 landmark tracks "
                     "(px/frame^2), ratio result / plate",
        },
        "quality": {
            "sharpness": sharp,
            "sharpness_ratio": sharp["ratio"],
            "seam_ratio": S(rec["seam"]),
            "boundary_step": S(rec["boundary_step"]),
            "boundary_tone": S(rec["boundary_tone"]),
            "lighting_correlation": S(rec["lighting"]),
            "motion_smear": {"ratio": float(np.median(smear)) if len(smear) else None, "frames": int(len(smear))},
            "noise": noise,
            "about": "sharpness: Laplacian variance in the face region, result / plate (< 1 softer); seam: "
                     "gradient magnitude along the boundary of the region the result changed (the face region "
                     "where nothing changed), result / plate (1 = no seam); boundary_step: tone step across that "
                     "boundary beyond the plate's own, RGB distance in 8-bit levels, point by point along the "
                     "boundary (0 = none; catches feathered colour mismatches that have little gradient, and "
                     "features the swap changed near its edge); boundary_tone: the same step as a mean over the "
                     "whole boundary (arc by arc medians, then their mean): how much the swapped area as a whole "
                     "is lighter or another colour than the plate around it, the patch look (0 = none); "
                     "lighting_correlation: inside the face, the correlation of the result's low-frequency "
                     "luminance with the plate's (1 = lit like the plate); motion_smear: on frames where the "
                     "plate's face moves at least 3 px a frame, the gradient energy along the motion over that "
                     "across it in the face region, result / plate, median over those frames (> 1: the result "
                     "keeps detail along the motion that the plate's camera smeared; None: nothing moves); "
                     "noise: the frame-to-frame noise (grain) on the flatter half of the face region, 8-bit "
                     "levels, result / plate (< 1: a cleaner face than the plate's picture, the clean patch on a "
                     "grainy plate)",
        },
    }


def _write_embeddings(path: Path, emb_r: np.ndarray, emb_t: np.ndarray, src: np.ndarray, numbers: list[int]) -> None:
    valid = np.nonzero(np.isfinite(emb_r).all(1))[0]
    sampled = np.full((RETRIEVAL_FRAMES, emb_r.shape[1]), np.nan, np.float32)
    nums = np.full(RETRIEVAL_FRAMES, -1, np.int64)
    if len(valid):
        pick = valid[np.unique(np.linspace(0, len(valid) - 1, min(RETRIEVAL_FRAMES, len(valid))).round()
                               .astype(int))]
        sampled[:len(pick)] = emb_r[pick]
        nums[:len(pick)] = np.asarray(numbers)[pick]
    t_ok = np.isfinite(emb_t).all(1)
    target = M.mean_embedding(emb_t[t_ok]) if t_ok.any() else np.full(emb_r.shape[1], np.nan, np.float32)
    tmp = path.with_name(path.name + ".part.npz")
    np.savez(tmp, result=sampled, source=src.astype(np.float32), target=target, numbers=nums)
    os.replace(tmp, path)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _jsonable(obj):
    """NaN / inf -> None, numpy scalars -> Python (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj
