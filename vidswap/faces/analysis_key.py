"""The analysis cache key and the models it records, apart from the analyzer (:mod:`vidswap.faces.analyze`) so
that the passes that only read an analysis (farm render tasks, assemble) check its key without importing the
analyzer's models, trackers and filters."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Sequence

from vidswap.faces.motion import MotionParams
from vidswap.faces.tracksfile import TRACKS_VERSION
from vidswap.hands.params import HandParams
from vidswap.io.frames import format_frames, frame_runs
from vidswap.models.registry import load_manifest
from vidswap.sections import AnalysisConfig, SmoothingConfig

__all__ = ["ANALYSIS_MODELS", "HAND_MODELS", "SAMPLING_REVISION", "analysis_key", "analysis_model_hashes",
           "analysis_model_names"]

#: how the analysis samples the plate where that is code, not settings (part of the cache key): 2 = the face crops'
#: box halvings summed in integers on the face's region (:func:`vidswap.composite.roi.halved_region`); 3 = the
#: colour conversions' power curves as exp(p log x) (:func:`vidswap.composite.lab.positive_pow`) and the appearance
#: model's gradient magnitudes and normal lengths computed directly, not by torch's ``norm`` over a channel axis
#: (the skin colour statistics and the appearance model move by float rounding); 4 = the cut detector's thumbnails
#: reduced from the face detector's input, not from the whole frame (within 1 code value; the cuts found on every
#: test clip are the same); 5 = the appearance model's shutter, from the sampled faces' motion blur
#: (:func:`vidswap.appearance.sharpness.shutter_estimate`); 6 = the appearance model's grain, from the plate's
#: frame-to-frame noise around the sampled faces (:func:`vidswap.appearance.plate_noise.track_noise`); 7 = the skin
#: colour statistics over the skin under a second light too (:func:`vidswap.composite.occlusion.fit_skin_model`: a
#: face half in a hard shadow or under another light's colour was half taken for an occluder)
SAMPLING_REVISION = 7

ANALYSIS_MODELS = ("yunet", "face_mesh", "iris", "sface")
HAND_MODELS = ("palm_detection", "pose_landmark")


def analysis_model_names(hands: bool) -> tuple[str, ...]:
    """The models the analysis loads: faces always, hands when ``analysis.hands`` (the hand landmarker named by
    ``HandParams.landmark_model``)."""
    return ANALYSIS_MODELS + (HAND_MODELS + (HandParams().landmark_model,) if hands else ())


def analysis_model_hashes(manifest: dict | None = None, hands: bool = False) -> dict[str, str]:
    """The pinned sha256 of each analysis model (part of the analysis cache key), from the manifest alone."""
    manifest = manifest if manifest is not None else load_manifest()
    return {n: manifest[n].sha256 for n in analysis_model_names(hands)}


def analysis_key(fingerprint: str, numbers: Sequence[int], analysis: AnalysisConfig, smoothing: SmoothingConfig,
                 model_hashes: dict[str, str]) -> str:
    """Cache key of an analysis: everything its result depends on (the hand tracker's settings are code defaults,
    not job settings: they are in the key so a change to them does not reuse a stale shared analysis)."""
    frames: list = [numbers[0], numbers[-1], len(numbers)]
    if len(frame_runs(list(numbers))) > 1:  # a range with gaps: the whole list (even ranges keep their old keys)
        frames.append(format_frames(numbers))
    blob = json.dumps({"v": TRACKS_VERSION, "sampling": SAMPLING_REVISION, "input": fingerprint, "frames": frames,
                       "analysis": asdict(analysis), "smoothing": asdict(smoothing), "models": model_hashes,
                       "hands": asdict(HandParams()), "motion": asdict(MotionParams())},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
