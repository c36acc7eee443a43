"""Which face tracks of a shot are replaced, and by which source: ``target.map`` pairs, or a selection mode
(largest, all, index, reference image) applied to the analysed tracks."""

from __future__ import annotations

from vidswap.config import TargetConfig
from vidswap.errors import InputError
from vidswap.faces.analyze import AnalysisModels, analyze_image
from vidswap.faces.track import select_targets
from vidswap.faces.tracksfile import ShotAnalysis
from vidswap.io import read_image


def choose_targets(target: TargetConfig, analysis: ShotAnalysis, models: AnalysisModels,
                   n_sources: int) -> dict[int, int | None]:
    """Track id -> source index (None = all sources combined as one identity)."""
    if target.map:
        return _mapped_targets(target.map, {t.id for t in analysis.tracks}, n_sources)
    reference = None
    if target.mode == "reference":
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
