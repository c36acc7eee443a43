"""Which face tracks of a shot are replaced, and by which source: ``target.map`` pairs, or a selection mode
(largest, all, index, reference image) applied to the analysed tracks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol, Sequence

import numpy as np

from vidswap.errors import InputError, UsageError
from vidswap.faces.tracksfile import ShotAnalysis
from vidswap.io import read_image
from vidswap.sections import TargetConfig  # noqa: F401 - declared there (torch-free)

if TYPE_CHECKING:
    from vidswap.faces.analyze import AnalysisModels


def choose_targets(target: TargetConfig, analysis: ShotAnalysis, models: AnalysisModels,
                   n_sources: int) -> dict[int, int | None]:
    """Track id -> source index (None = all sources combined as one identity)."""
    if target.map:
        return _mapped_targets(target.map, {t.id for t in analysis.tracks}, n_sources)
    reference = None
    if target.mode == "reference":
        from vidswap.faces.analyze import analyze_image  # the analyzer only where a reference is read

        faces = analyze_image(read_image(target.reference), models)
        if not faces:
            raise InputError(f"no face in the target reference {target.reference}")
        reference = faces[0].embedding
    ids = select_targets(analysis.tracks, target.mode, target.index, reference)
    return {tid: None for tid in ids}


def _mapped_targets(pairs: tuple[str, ...], track_ids: set[int], n_sources: int) -> dict[int, int | None]:
    """``"track:source"`` pairs -> track id -> source index, checked against the tracks and sources."""
    mapping: dict[int, int | None] = {}
    for pair in pairs:
        try:
            tid, src = (int(x) for x in pair.split(":"))
        except ValueError:
            raise InputError(f"bad target map {pair!r}: use TRACK:SOURCE, e.g. 0:1") from None
        if tid not in track_ids:
            raise InputError(f"target map {pair}: no track {tid}; tracks: {sorted(track_ids)}")
        if not 0 <= src < n_sources:
            raise InputError(f"target map {pair}: no source {src}; {n_sources} source(s) given")
        mapping[tid] = src
    return mapping


class TargetCandidate(Protocol):
    """What target selection reads of a track (a :class:`Track` or an analysed ``TrackAnalysis``)."""

    id: int
    shot: int
    frames: np.ndarray

    @property
    def mean_area(self) -> float: ...

    @property
    def embedding(self) -> np.ndarray | None: ...


def select_targets(tracks: Sequence[TargetCandidate], mode: Literal["largest", "all", "index", "reference"] = "largest",
                   index: int | None = None, reference_embedding: np.ndarray | None = None,
                   min_similarity: float = 0.3) -> list[int]:
    """Track ids to swap.

    * ``largest``: per shot, the track with the largest mean box area (one id for a single-shot clip);
    * ``all``: every track;
    * ``index``: the ``index``-th track by first appearance (ties: by id), counting from 0;
    * ``reference``: per shot, the track whose mean embedding is most similar (cosine) to
      ``reference_embedding``, if at least ``min_similarity`` (tracks without an embedding -- None or empty --
      are not candidates).

    Returns ids sorted ascending. Raises UsageError for a bad mode or a missing index / reference.
    """
    if not tracks:
        return []
    if mode == "all":
        return sorted(t.id for t in tracks)
    if mode == "index":
        if index is None:
            raise UsageError("target mode 'index' needs an index (target.index in the config)")
        order = sorted(tracks, key=lambda t: (int(t.frames[0]), t.id))
        if not 0 <= index < len(order):
            raise UsageError(f"target index {index} is out of range: the shot has {len(order)} face track(s)")
        return [order[index].id]
    shots: dict[int, list[TargetCandidate]] = {}
    for t in tracks:
        shots.setdefault(t.shot, []).append(t)
    if mode == "largest":
        return sorted(max(ts, key=lambda t: (t.mean_area, -t.id)).id for ts in shots.values())
    if mode == "reference":
        if reference_embedding is None:
            raise UsageError("target mode 'reference' needs a reference face embedding (target.reference)")
        ref = np.asarray(reference_embedding, np.float64)
        ref = ref / max(np.linalg.norm(ref), 1e-12)
        out = []
        for ts in shots.values():
            scored = [(float(t.embedding @ ref), t.id) for t in ts if t.embedding is not None and t.embedding.size]
            if scored:
                sim, tid = max(scored)
                if sim >= min_similarity:
                    out.append(tid)
        return sorted(out)
    raise UsageError(f"unknown target mode {mode!r}; use largest, all, index or reference")
