"""Typed cue records: what the extractors produce and the converters read.

Every numeric field carries its unit in ``field(metadata={"unit": ...})`` (and in its name where
that helps reading JSON by eye). Every record that comes from a model carries a ``Provenance``.
A cue that could not be measured is a ``MissingCue`` with a reason, never ``None`` and never a
silently dropped sample.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any, Literal, Union

SCHEMA_VERSION = 1


def unit(u: str, default: Any = dataclasses.MISSING, **kw):
    """A dataclass field with its physical unit recorded in the metadata."""
    if default is dataclasses.MISSING and "default_factory" not in kw:
        return field(metadata={"unit": u}, **kw)
    if default is dataclasses.MISSING:
        return field(metadata={"unit": u}, **kw)
    return field(default=default, metadata={"unit": u}, **kw)


def units_of(cls) -> dict[str, str]:
    """Field name -> unit for a cue dataclass (fields without a unit are left out)."""
    return {f.name: f.metadata["unit"] for f in dataclasses.fields(cls) if "unit" in f.metadata}


@dataclass
class Provenance:
    """Which backend and model made a cue, and with what settings (for caching and papers)."""

    backend: str
    model: str
    version: str
    params: dict[str, Any] = field(default_factory=dict)


MissingReason = Literal[
    "no_audio_track",
    "no_speech",
    "silence",
    "no_video_track",
    "no_face",
    "backend_unavailable",
    "not_requested",
    "decode_error",
    "too_short",
]


@dataclass
class MissingCue:
    """Explicit marker for a cue that could not be measured; converters turn it into text."""

    reason: MissingReason
    detail: str = ""
    missing: bool = True


# ---------------------------------------------------------------- audio: transcript


@dataclass
class Word:
    text: str
    start_s: float = unit("s")
    end_s: float = unit("s")
    probability: float = unit("probability", 1.0)


@dataclass
class SpeechSegment:
    text: str
    start_s: float = unit("s")
    end_s: float = unit("s")
    no_speech_prob: float = unit("probability", 0.0)
    avg_logprob: float = unit("nats/token", 0.0)
    words: list[Word] = field(default_factory=list)


@dataclass
class Transcript:
    """ASR output. ``vad_segments`` are voice-activity spans (s) found before decoding."""

    text: str
    language: str
    language_probability: float = unit("probability")
    duration_s: float = unit("s")
    segments: list[SpeechSegment] = field(default_factory=list)
    vad_segments: list[tuple[float, float]] = unit("s", default_factory=list)
    provenance: Provenance | None = None

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]


# ---------------------------------------------------------------- audio: prosody


@dataclass
class ProsodyMeasures:
    """Prosody over one span (a whole clip or one window). NaN means 'not measurable here'.

    Pitch is in semitones relative to 27.5 Hz (eGeMAPS convention) and in Hz; loudness is
    eGeMAPS' perceptual loudness (sone-like units) plus RMS energy in dBFS.
    """

    start_s: float = unit("s")
    end_s: float = unit("s")
    pitch_mean_hz: float = unit("Hz", math.nan)
    pitch_mean_st: float = unit("semitones re 27.5 Hz", math.nan)
    pitch_sd_st: float = unit("semitones", math.nan)
    pitch_range_st: float = unit("semitones", math.nan)
    loudness_mean: float = unit("sone", math.nan)
    loudness_sd: float = unit("sone", math.nan)
    rms_dbfs: float = unit("dBFS", math.nan)
    speaking_rate_syl_per_s: float = unit("syllables/s", math.nan)
    speaking_rate_words_per_s: float = unit("words/s", math.nan)
    pause_count: float = unit("count", math.nan)
    pause_mean_s: float = unit("s", math.nan)
    pause_ratio: float = unit("fraction", math.nan)
    voiced_ratio: float = unit("fraction", math.nan)
    jitter_local: float = unit("fraction", math.nan)
    shimmer_local_db: float = unit("dB", math.nan)
    hnr_db: float = unit("dB", math.nan)
    # evidence behind the measures (the converters' evidence rules read these)
    voiced_duration_s: float = unit("s", math.nan)  # time with a pitch track inside the span
    speech_duration_s: float = unit("s", math.nan)  # first to last speech (words or energy) in the span
    word_count: float = unit("count", math.nan)  # ASR words in the span (NaN: no transcript)
    syllable_count: float = unit("count", math.nan)  # syllables behind speaking_rate_syl_per_s
    # loudness dynamics
    loudness_range: float = unit("sone", math.nan)  # 80th - 20th percentile
    loudness_peaks_per_s: float = unit("1/s", math.nan)
    # spectral balance (voiced frames), eGeMAPS definitions
    alpha_ratio_db: float = unit("dB", math.nan)  # energy 1-5 kHz vs 50-1000 Hz (openSMILE's sign)
    hammarberg_db: float = unit("dB", math.nan)  # strongest peak 0-2 kHz vs 2-5 kHz
    spectral_slope_0_500: float = unit("dB/Hz", math.nan)
    spectral_slope_500_1500: float = unit("dB/Hz", math.nan)
    spectral_flux: float = unit("flux (squared magnitude difference)", math.nan)
    h1_h2_db: float = unit("dB", math.nan)  # first minus second harmonic: breathy vs pressed phonation
    h1_a3_db: float = unit("dB", math.nan)
    # vowel space (voiced frames)
    f1_hz: float = unit("Hz", math.nan)
    f2_hz: float = unit("Hz", math.nan)
    f3_hz: float = unit("Hz", math.nan)
    # pitch dynamics and rhythm of voicing
    pitch_rise_st_per_s: float = unit("semitones/s", math.nan)  # mean slope of rising pitch
    pitch_fall_st_per_s: float = unit("semitones/s", math.nan)  # mean slope of falling pitch (>0)
    voiced_segments_per_s: float = unit("1/s", math.nan)
    voiced_segment_mean_s: float = unit("s", math.nan)
    unvoiced_segment_mean_s: float = unit("s", math.nan)


PROSODY_MEASURE_NAMES: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(ProsodyMeasures) if f.name not in ("start_s", "end_s")
)


@dataclass
class ProsodyCues:
    clip: ProsodyMeasures
    windows: list[ProsodyMeasures] = field(default_factory=list)
    window_s: float = unit("s", 0.0)
    hop_s: float = unit("s", 0.0)
    functionals: dict[str, float] = field(default_factory=dict)  # raw eGeMAPS functionals
    provenance: Provenance | None = None


# ---------------------------------------------------------------- visual


AUScale = Literal["probability", "intensity_0_5", "activation"]


@dataclass
class FaceBox:
    x1: float = unit("px")
    y1: float = unit("px")
    x2: float = unit("px")
    y2: float = unit("px")
    score: float = unit("probability", 1.0)


@dataclass
class AUStats:
    """Temporal summary of one AU over a clip or window (values on the AU's own scale)."""

    mean: float
    max: float
    peak_time_s: float = unit("s")
    onset_time_s: float = unit("s", math.nan)  # first time above the activity threshold
    active_fraction: float = unit("fraction", 0.0)
    sustained: bool = False


@dataclass
class FacialCues:
    """Per-frame AU values of the main face plus their summary.

    ``au_values[t][k]`` is AU ``au_names[k]`` at ``times_s[t]`` on ``au_scale``; a frame without
    the main face has ``face_present[t] = False`` and NaN values.
    """

    au_names: list[str]
    au_scale: AUScale
    times_s: list[float] = unit("s")
    face_present: list[bool] = field(default_factory=list)
    au_values: list[list[float]] = field(default_factory=list)
    boxes: list[FaceBox | None] = field(default_factory=list)
    faces_per_frame: list[int] = field(default_factory=list)
    sampled_fps: float = unit("frames/s", 0.0)
    frame_size: tuple[int, int] = unit("px (width, height)", (0, 0))
    au_summary: dict[str, AUStats] = field(default_factory=dict)
    raw_names: list[str] = field(default_factory=list)  # e.g. the 52 MediaPipe blendshapes
    raw_values: list[list[float]] = field(default_factory=list)
    raw_scale: str = ""
    emotion_names: list[str] = field(default_factory=list)
    emotion_values: list[list[float]] = field(default_factory=list)
    provenance: Provenance | None = None


# ---------------------------------------------------------------- one clip


CueOr = Union[Any, MissingCue]


@dataclass
class MediaInfo:
    path: str
    content_sha256: str
    duration_s: float = unit("s")
    has_audio: bool = False
    has_video: bool = False
    video_fps: float = unit("frames/s", 0.0)
    video_codec: str = ""
    audio_codec: str = ""
    audio_sample_rate: int = unit("Hz", 0)
    width: int = unit("px", 0)  # as displayed (after the display matrix)
    height: int = unit("px", 0)
    rotation_deg: float = unit("deg", 0.0)  # display-matrix rotation, counter-clockwise as ffprobe reports it


@dataclass
class ClipCues:
    clip_id: str
    media: MediaInfo
    transcript: Transcript | MissingCue
    prosody: ProsodyCues | MissingCue
    face: FacialCues | MissingCue
    part_keys: dict[str, str] = field(default_factory=dict)  # "audio"/"visual" -> cache key
    schema_version: int = SCHEMA_VERSION


def time_windows(duration_s: float, window_s: float, hop_s: float | None = None) -> list[tuple[float, float]]:
    """(start_s, end_s) windows of ``window_s`` every ``hop_s`` (default: back to back) covering
    [0, duration_s]; the last is clipped to the duration. A clip shorter than one window gives one
    window over the whole clip. The one definition of analysis windows, so face and voice
    windows line up."""
    if window_s <= 0:
        raise ValueError(f"window_s must be > 0, got {window_s}")
    hop = window_s if hop_s is None else hop_s
    if hop <= 0:
        raise ValueError(f"hop_s must be > 0, got {hop_s}")
    if not math.isfinite(duration_s) or duration_s <= 0:
        return []
    out: list[tuple[float, float]] = []
    start = 0.0
    while True:
        end = min(start + window_s, duration_s)
        out.append((round(start, 6), round(end, 6)))
        if end >= duration_s - 1e-9:
            break
        start += hop
    return out


# ---------------------------------------------------------------- JSON round trip

_CUE_TYPES = {
    cls.__name__: cls
    for cls in (
        Provenance, MissingCue, Word, SpeechSegment, Transcript, ProsodyMeasures, ProsodyCues,
        FaceBox, AUStats, FacialCues, MediaInfo, ClipCues,
    )
}


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def to_json(obj: Any) -> Any:
    """Dataclasses -> JSON-able dicts tagged with their type; NaN -> null (valid JSON)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {"__type__": type(obj).__name__}
        for f in dataclasses.fields(obj):
            out[f.name] = to_json(getattr(obj, f.name))
        return out
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):  # numpy scalars
        obj = obj.item()
    return _nan_to_none(obj)


def _float_fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.type in ("float", float)}


def from_json(data: Any) -> Any:
    """Inverse of ``to_json``: null in a float field becomes NaN again."""
    if isinstance(data, dict) and "__type__" in data:
        cls = _CUE_TYPES[data["__type__"]]
        floats = _float_fields(cls)
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                continue
            v = from_json(data[f.name])
            if v is None and f.name in floats:
                v = math.nan
            kwargs[f.name] = v
        obj = cls(**kwargs)
        if cls is FacialCues:  # restore NaN in per-frame matrices
            obj.au_values = [[math.nan if v is None else v for v in row] for row in obj.au_values]
            obj.raw_values = [[math.nan if v is None else v for v in row] for row in obj.raw_values]
        return obj
    if isinstance(data, dict):
        return {k: from_json(v) for k, v in data.items()}
    if isinstance(data, list):
        return [from_json(v) for v in data]
    return data
