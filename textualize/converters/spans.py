"""Cues of a whole media file restricted to one sample's time span (pure functions).

Corpora such as C-EXPR-DB annotate segments and frame windows of long videos: the cues are
extracted once per video, and each sample must only be described by what happens inside its own
span. Words count when their midpoint lies in the span; prosody uses the extractor's windows that
overlap the span, weighted by the overlap (finite values only), so no extra audio pass is needed.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

from textualize.cues import PROSODY_MEASURE_NAMES, MissingCue, ProsodyCues, ProsodyMeasures, Transcript


def transcript_in_span(transcript: Any, start: float, end: float) -> Any:
    """The words of ``transcript`` spoken inside [start, end); no word -> ``MissingCue('no_speech')``."""
    if not isinstance(transcript, Transcript) or not transcript.segments:
        return transcript  # nothing timed to cut (e.g. a precomputed per-sample transcript)
    segments = []
    for seg in transcript.segments:
        words = [w for w in seg.words if start <= (w.start_s + w.end_s) / 2 < end]
        if words:
            text = "".join(w.text for w in words).strip() if any(w.text.startswith(" ") for w in words) else " ".join(w.text for w in words)
            segments.append(dataclasses.replace(seg, text=text, start_s=words[0].start_s, end_s=words[-1].end_s, words=words))
        elif not seg.words and seg.start_s < end and seg.end_s > start:  # no word timing: keep overlapping segments
            segments.append(seg)
    if not segments:
        return MissingCue("no_speech", f"no word spoken between {start:.2f} and {end:.2f} s")
    return dataclasses.replace(
        transcript,
        text=" ".join(s.text.strip() for s in segments),
        segments=segments,
        vad_segments=[(max(a, start), min(b, end)) for a, b in transcript.vad_segments if a < end and b > start],
    )


# measures that add up over time (the evidence behind the others): cut to the span by density
EXTENSIVE = frozenset({"voiced_duration_s", "speech_duration_s", "word_count", "syllable_count"})


def prosody_in_span(prosody: Any, start: float, end: float) -> Any:
    """Prosody over [start, end) from the overlapping analysis windows (overlap-weighted means)."""
    if not isinstance(prosody, ProsodyCues) or not prosody.windows:
        return prosody  # no windows to cut (e.g. precomputed per-sample measures)
    clip = prosody.clip
    if start <= clip.start_s and end >= clip.end_s:
        return prosody  # the span covers the whole clip
    overlapping = [(w, min(w.end_s, end) - max(w.start_s, start)) for w in prosody.windows]
    overlapping = [(w, o) for w, o in overlapping if o > 0]
    if not overlapping:
        return MissingCue("too_short", f"no prosody window overlaps {start:.2f}-{end:.2f} s")
    values = {}
    lo, hi = max(start, clip.start_s), min(end, clip.end_s)
    for name in PROSODY_MEASURE_NAMES:
        extensive = name in EXTENSIVE  # durations and counts: each window's density per second
        pairs = [(getattr(w, name) / (w.end_s - w.start_s) if extensive else getattr(w, name), o)
                 for w, o in overlapping if math.isfinite(getattr(w, name)) and w.end_s > w.start_s]
        total = sum(o for _, o in pairs)
        values[name] = sum(v * o for v, o in pairs) / total if total > 0 else math.nan
        if name in EXTENSIVE and math.isfinite(values[name]):
            values[name] *= max(0.0, hi - lo)
    span = ProsodyMeasures(start_s=lo, end_s=hi, **values)
    return dataclasses.replace(prosody, clip=span, windows=[w for w, _ in overlapping], functionals={})


def restrict_to_span(cues: dict[str, Any], start: float | None, end: float | None) -> dict[str, Any]:
    """``cues`` with transcript and prosody restricted to the sample's span (face is windowed by
    the face converter itself, from its per-frame values)."""
    if start is None and end is None:
        return cues
    lo = -math.inf if start is None else float(start)
    hi = math.inf if end is None else float(end)
    out = dict(cues)
    out["transcript"] = transcript_in_span(cues.get("transcript"), lo, hi)
    out["prosody"] = prosody_in_span(cues.get("prosody"), lo, hi)
    return out
