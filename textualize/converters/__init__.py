"""Typed cues -> text fragments: pure functions, no I/O.

``textualize_sample`` is the one entry point build-dataset uses: it returns the fragments dict
that every prompt template takes (``transcript``, ``context``, ``face``, ``voice``, ``speaker``).
"""
from __future__ import annotations

from typing import Any, Mapping

from textualize.converters.config import (
    FaceConfig, ProsodyConfig, ScaleGrades, TextualizeConfig, TranscriptConfig,
)
from textualize.converters.face import face_fragment
from textualize.converters.prosody import prosody_fragment
from textualize.converters.spans import restrict_to_span
from textualize.converters.transcript import clean_text, context_fragment, transcript_fragment
from textualize.cues import ClipCues

FRAGMENT_KEYS: tuple[str, ...] = ("transcript", "context", "face", "voice", "speaker")

__all__ = [
    "FRAGMENT_KEYS", "FaceConfig", "ProsodyConfig", "ScaleGrades", "TextualizeConfig", "TranscriptConfig",
    "clean_text", "context_fragment", "face_fragment", "prosody_fragment", "textualize_sample",
    "transcript_fragment",
]


def _cues_dict(sample: Any, cues: ClipCues | Mapping[str, Any] | None) -> dict[str, Any]:
    """Cue records by kind: extracted ``ClipCues`` first, then the sample's precomputed ones."""
    out: dict[str, Any] = dict(getattr(sample, "precomputed", None) or {})
    if isinstance(cues, ClipCues):
        out.update({"transcript": cues.transcript, "prosody": cues.prosody, "face": cues.face})
    elif cues is not None:
        out.update(cues)
    return out


def _face_window(sample: Any, face: Any) -> tuple[float | None, float | None]:
    """The sample's window when the face cues cover a longer stretch of the same media.

    Cues extracted for exactly this sample (their time axis inside the window) are used as
    summarised; cues of the whole clip are re-summarised over the window.
    """
    start, end = getattr(sample, "start_s", None), getattr(sample, "end_s", None)
    times = getattr(face, "times_s", None)
    if (start is None and end is None) or not times:
        return None, None
    lo = -float("inf") if start is None else start
    hi = float("inf") if end is None else end
    if times[0] >= lo and times[-1] <= hi:
        return None, None  # already restricted to the window
    if times[-1] < lo or times[0] > hi:
        raise ValueError(
            f"sample {getattr(sample, 'id', '?')}: window {start}-{end} s lies outside its face cues "
            f"({times[0]:.2f}-{times[-1]:.2f} s)"
        )
    return start, end


def speaker_name(speaker: str | None) -> str:
    """A name for prompts: corpus speaker ids that are bare numbers (CREMA-D's "1001") read as
    "speaker 1001"; names (MELD's "Chandler") stay as they are."""
    name = clean_text(speaker or "")
    return f"speaker {name}" if name.isdigit() else name


def textualize_sample(
    sample: Any,
    cues: ClipCues | Mapping[str, Any] | None,
    config: TextualizeConfig,
    norm_stats: Any = None,
) -> dict[str, str]:
    """All text fragments of one sample (a ``corpora.base.Sample``).

    ``cues``: the clip's extracted ``ClipCues`` or a dict with ``transcript``/``prosody``/``face``
    records (``MissingCue`` allowed); missing kinds fall back to ``sample.precomputed``.
    ``norm_stats``: the training split's fitted ``NormStats`` (needed for words-mode prosody).
    """
    found = restrict_to_span(_cues_dict(sample, cues), getattr(sample, "start_s", None), getattr(sample, "end_s", None))
    speaker = getattr(sample, "speaker", None)
    face = found.get("face")
    start, end = _face_window(sample, face)
    return {
        "transcript": transcript_fragment(found.get("transcript"), config.transcript, getattr(sample, "transcript", None)),
        "context": context_fragment(getattr(sample, "context", None) or [], config.transcript),
        "face": face_fragment(face, config.face, config.mode, start, end),
        "voice": prosody_fragment(found.get("prosody"), config.prosody, norm_stats, config.mode, speaker),
        "speaker": speaker_name(speaker),
    }
