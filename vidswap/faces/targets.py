"""Which face tracks of a shot are replaced, and by which source: ``target.map`` pairs, or a selection mode
(largest, all, index, reference image) applied to the analysed tracks.

A face the analysis loses for longer than the tracker bridges (``analysis.max_gap`` frames: turned to profile or
away, out of frame, behind someone) comes back as a new track. ``largest`` and ``reference`` choose a person, not
a track: the chosen track with every other track of the same shot that is the same person
(:func:`same_person_groups`: never on screen together, mean identity embeddings alike). Measured with the
analysis's identity model (SFace) on the test media: one person's tracks and photos 0.74-0.88 (a head turned to
profile and back, 0.88), different people at most 0.42 (two faces of one group photo), 0.23 at the 99th percentile
of 150 pairs; a single frame turned 85 degrees still 0.53 to the frontal one (benchmarks/RESULTS.md, lead s31).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol, Sequence

import numpy as np

from vidswap.errors import InputError, UsageError
from vidswap.faces.tracksfile import ShotAnalysis
from vidswap.io import read_image
from vidswap.sections import TargetConfig  # declared there (torch-free)

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
    ids = select_targets(analysis.tracks, target.mode, target.index, reference, same_person=target.same_person)
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


def _unit_embedding(track: TargetCandidate) -> np.ndarray | None:
    e = track.embedding
    if e is None or not np.asarray(e).size:
        return None
    e = np.asarray(e, np.float64).reshape(-1)
    return e / max(float(np.linalg.norm(e)), 1e-12)


def same_person_groups(tracks: Sequence[TargetCandidate], min_similarity: float) -> list[list[int]]:
    """The tracks of one shot grouped by person, as lists of ids (each sorted; groups by their first id).

    Agglomerative, most similar first: two groups join while the cosine similarity of their mean identity
    embeddings (each track's unit embedding weighted by its frame count) is at least ``min_similarity`` and no
    track of one spans a frame of a track of the other (one person is never on screen twice). A track without an
    embedding stays alone; ``min_similarity`` >= 1 leaves every track alone."""
    groups = [[t] for t in tracks]
    units = {t.id: _unit_embedding(t) for t in tracks}

    def mean(group: list[TargetCandidate]) -> np.ndarray | None:
        if any(units[t.id] is None for t in group):
            return None
        m = sum(len(t.frames) * units[t.id] for t in group)
        return m / max(float(np.linalg.norm(m)), 1e-12)

    def apart(a: list[TargetCandidate], b: list[TargetCandidate]) -> bool:
        return all(int(s.frames[-1]) < int(t.frames[0]) or int(t.frames[-1]) < int(s.frames[0]) for s in a for t in b)

    while min_similarity < 1.0 and len(groups) > 1:
        best, pair = min_similarity, None
        means = [mean(g) for g in groups]
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                if means[i] is None or means[j] is None:
                    continue
                sim = float(means[i] @ means[j])
                if sim >= best and apart(groups[i], groups[j]):
                    best, pair = sim, (i, j)
        if pair is None:
            break
        i, j = pair
        groups[i] = groups[i] + groups.pop(j)
    return sorted(sorted(t.id for t in g) for g in groups)


def _person(track: TargetCandidate, shot: Sequence[TargetCandidate], same_person: float) -> list[int]:
    """The ids of ``track``'s person among its shot's tracks (:func:`same_person_groups`)."""
    return next(g for g in same_person_groups(shot, same_person) if track.id in g)


def select_targets(tracks: Sequence[TargetCandidate], mode: Literal["largest", "all", "index", "reference"] = "largest",
                   index: int | None = None, reference_embedding: np.ndarray | None = None,
                   min_similarity: float = 0.3, same_person: float = TargetConfig.same_person) -> list[int]:
    """Track ids to swap.

    * ``largest``: per shot, the track with the largest mean box area (one id for a single-shot clip) and the
      other tracks of its person;
    * ``all``: every track;
    * ``index``: the ``index``-th track by first appearance (ties: by id), counting from 0;
    * ``reference``: per shot, the track whose mean embedding is most similar (cosine) to
      ``reference_embedding``, if at least ``min_similarity`` (tracks without an embedding -- None or empty --
      are not candidates), and the other tracks of its person.

    A track's person: the tracks of its shot :func:`same_person_groups` puts with it at ``same_person`` (the job's
    ``target.same_person``; 1: the track alone).

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
        return sorted(tid for ts in shots.values()
                      for tid in _person(max(ts, key=lambda t: (t.mean_area, -t.id)), ts, same_person))
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
                    out += _person(next(t for t in ts if t.id == tid), ts, same_person)
        return sorted(out)
    raise UsageError(f"unknown target mode {mode!r}; use largest, all, index or reference")
