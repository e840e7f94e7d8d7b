"""Settings of the cue -> text converters, as plain dataclasses.

A ``TextualizeConfig`` is written into every built dataset's manifest (``to_dict``) and hashed
(``hash``), so two datasets rendered with different wording rules never share a cache entry.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

Mode = Literal["words", "numeric"]
MODES: tuple[str, ...] = ("words", "numeric")


# ---------------------------------------------------------------- transcript


@dataclass
class TranscriptConfig:
    """How the spoken words are cleaned and which source is used.

    ``prefer_gold``: use the corpus' gold transcript when the sample has one (else the ASR text).
    ``context_turns``: how many previous dialogue utterances to show ("Ross: ..."), 0 = none.
    ``drop_markers``: remove Whisper's non-speech annotations: bracketed/parenthesised tags
    ("[Music]", "(upbeat music)", "[BLANK_AUDIO]") and music-note spans ("♪ la la ♪").
    ``max_repeats``: a phrase of 1-8 words repeated back to back more often than this is cut to
    this many copies (Whisper's decoding loops: "I'm sorry. I'm sorry. I'm sorry. ...").
    ``drop_silence_segments``: drop ASR segments that Whisper itself would call silence
    (no_speech_prob > 0.6 and avg_logprob < -1.0: openai-whisper's default thresholds).
    ``hallucination_phrases``: ASR segments consisting only of one of these (case and punctuation
    ignored) are dropped: phrases Whisper emits on silence or music, learnt from subtitle credits.
    Only applied to ASR text, never to gold transcripts.
    """

    prefer_gold: bool = True
    context_turns: int = 0
    drop_markers: bool = True
    max_repeats: int = 3
    drop_silence_segments: bool = True
    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0
    hallucination_phrases: tuple[str, ...] = (
        "subtitles by the amara org community",
        "thanks for watching",
        "thank you for watching",
        "please subscribe",
        "like and subscribe",
    )
    empty_marker: str = "(no speech transcribed)"
    max_context_chars: int = 300  # per context utterance (long turns are cut with "...")


# ---------------------------------------------------------------- face


@dataclass
class ScaleGrades:
    """Graded intensity words for one AU value scale.

    An AU is listed when its ``statistic`` (``"max"``: the apex, ``"mean"``: over the face frames)
    reaches ``active``; ``levels`` are (lower bound, word) pairs, ascending, choosing the word for
    that value. AUs are ordered by the same value.
    """

    active: float
    levels: tuple[tuple[float, str], ...]
    statistic: Literal["max", "mean"] = "max"
    peak_margin: float = 0.1  # "peaking late" only when the peak exceeds the mean by this much
    numeric_suffix: str = ""  # "/5" for OpenFace intensities
    numeric_prefix: str = ""  # "p=" for probabilities

    def word(self, value: float) -> str:
        chosen = self.levels[0][1]
        for bound, word in self.levels:
            if value >= bound:
                chosen = word
        return chosen


def _default_scales() -> dict[str, ScaleGrades]:
    """Per-scale defaults (the ``active`` bounds equal ``au_vocabulary.ACTIVITY_THRESHOLDS``).

    - ``probability`` (py-feat): occurrence probabilities, not FACS intensities, graded on their
      MEAN over the face frames (the expected share of time the AU is present; per-frame maxima
      of these classifiers are noisy: one frame at 0.98 in an otherwise inactive clip is common).
      0.5 is the classifiers' decision boundary; the words grade the evidence:
      weak 0.5-0.75, moderate 0.75-0.9, strong >= 0.9.
    - ``intensity_0_5`` (OpenFace): graded at the apex (FACS codes intensity at the apex) with
      the FACS letters A (trace) = 1 ... E (maximum) = 5: slight 1-2 (A-B), moderate 2-3 (C),
      strong >= 3 (D-E).
    - ``activation`` (MediaPipe blendshapes 0-1), at the apex: neutral faces stay mostly below
      0.2-0.3, clear expressions exceed 0.4: slight 0.3-0.5, moderate 0.5-0.7, strong >= 0.7.
    """
    from textualize.visual_cues.au_vocabulary import ACTIVITY_THRESHOLDS as active

    return {
        "probability": ScaleGrades(active["probability"], ((0.5, "weak"), (0.75, "moderate"), (0.9, "strong")), "mean",
                                   numeric_prefix="p="),
        "intensity_0_5": ScaleGrades(active["intensity_0_5"], ((1.0, "slight"), (2.0, "moderate"), (3.0, "strong")),
                                     peak_margin=0.5, numeric_suffix="/5"),
        "activation": ScaleGrades(active["activation"], ((0.3, "slight"), (0.5, "moderate"), (0.7, "strong"))),
    }


@dataclass
class FaceConfig:
    """Which AUs are described and how.

    ``top_n``: at most this many AUs, strongest first (ties: longer activity first).
    ``temporal``: add "brief" (active in less than ``brief_fraction`` of the face frames),
    "sustained" (``AUStats.sustained``), "appearing late" (onset after ``late_fraction`` of the
    span) or "peaking late" (peak after ``late_fraction``, and the peak at least the scale's
    ``peak_margin`` above the mean: a saturated AU's argmax is noise, not a time course). Only for spans of at least
    ``min_temporal_frames`` face frames: a single image has no time course.
    ``emotions_top_k``: also state the face model's top-k emotion scores (0 = off, the AU-only
    textualisation of the paper).
    ``min_face_fraction``: below this share of sampled frames with the face, say so.
    """

    scales: dict[str, ScaleGrades] = field(default_factory=_default_scales)
    top_n: int = 5
    temporal: bool = True
    brief_fraction: float = 0.25
    late_fraction: float = 2.0 / 3.0
    min_temporal_frames: int = 5
    emotions_top_k: int = 0
    min_face_fraction: float = 0.8
    none_active_marker: str = "no facial action units active"
    no_face_marker: str = "no face detected"


# ---------------------------------------------------------------- prosody

# Seven levels: on EmoDB a linear probe on the prompt words keeps 0.98 of what one on the 88
# eGeMAPS functionals gets with seven, 0.92 with five and 0.90 with nine (bench/bench_probe.py).
DEFAULT_BIN_WORDS: tuple[str, ...] = (
    "extremely low", "very low", "low", "moderate", "high", "very high", "extremely high")
DEFAULT_RATE_WORDS: tuple[str, ...] = (
    "extremely slow", "very slow", "slow", "moderate", "fast", "very fast", "extremely fast")


# What the voice block adds after the core measures (``ProsodyConfig.extra_measures``), grouped as
# read: pitch movement, loudness dynamics, voice quality, spectral balance, vowel space, rhythm.
DEFAULT_EXTRA_MEASURES: tuple[str, ...] = (
    "pitch_range_st", "pitch_rise_st_per_s", "pitch_fall_st_per_s",
    "loudness_range", "loudness_peaks_per_s",
    "hnr_db", "jitter_local", "shimmer_local_db", "h1_h2_db", "h1_a3_db",
    "alpha_ratio_db", "hammarberg_db", "spectral_slope_0_500", "spectral_slope_500_1500", "spectral_flux",
    "f1_hz", "f2_hz", "f3_hz",
    "voiced_segments_per_s", "voiced_segment_mean_s", "unvoiced_segment_mean_s",
)


@dataclass
class ProsodyConfig:
    """Which prosodic measures are described, in this order, and with which words.

    Words mode bins each value into equal-frequency bins of a ``NormStats`` (sevenths by default):
    the speaker's own clips when the speaker is known and has at least ``speaker_min_clips``
    of them (``per_speaker``; build-dataset's ``--speaker-norm``), else the training split's.
    ``measures``: the core measures, always named ("not measurable: ..." when missing);
    ``rate``: ``rate_measure``, syllables/s (from the transcript's words when there is one,
    else syllable nuclei) or words/s.
    ``extra_measures``: what follows (pitch movement, loudness dynamics, voice quality, spectral
    balance, formants, voicing rhythm); one a backend does not measure is left out silently,
    one without enough evidence is named as not measurable. ``()`` gives the six-measure
    prompts of earlier versions.
    ``voice_quality``: jitter, shimmer and HNR right after the core measures (they are also in
    the default extras).
    Evidence rules: words that rest on the pitch track (pitch, voice quality, spectral balance,
    formants, voicing rhythm) need ``min_voiced_s`` of voiced frames in the span; rates and pauses
    need ``min_speech_s`` of speech (first to last word, or energy activity). Below that the
    prompt says "not measurable: ..." instead of binning a handful of frames.
    ``bin_words``/``rate_words``: one word per level, lowest first; their number sets the bins
    (five: quintiles, seven: sevenths). ``reference_note`` ends the words with what they are
    relative to ("levels relative to this speaker" or "... the training set").
    """

    measures: tuple[str, ...] = (
        "pitch_mean_st", "pitch_sd_st", "loudness_mean", "loudness_sd", "rate", "pause_ratio",
    )
    extra_measures: tuple[str, ...] = DEFAULT_EXTRA_MEASURES
    rate_measure: Literal["speaking_rate_syl_per_s", "speaking_rate_words_per_s"] = "speaking_rate_syl_per_s"
    voice_quality: bool = False
    per_speaker: bool = True
    speaker_min_clips: int = 5
    min_voiced_s: float = 0.25
    min_speech_s: float = 0.5
    bin_words: tuple[str, ...] = DEFAULT_BIN_WORDS
    rate_words: tuple[str, ...] = DEFAULT_RATE_WORDS
    missing_note: bool = True  # "pitch not measurable" for NaN values
    reference_note: bool = True  # "levels relative to this speaker" (or to the training set)

    def __post_init__(self) -> None:
        if len(self.rate_words) != len(self.bin_words):
            raise ValueError(f"prosody rate_words ({len(self.rate_words)}) and bin_words ({len(self.bin_words)}) "
                             "must name the same number of levels")
        if len(self.bin_words) < 2:
            raise ValueError("prosody bin_words needs at least two levels")

    @property
    def quantiles(self) -> tuple[float, ...]:
        """Equal-frequency bin edges for as many levels as ``bin_words`` names (five words:
        the 20/40/60/80th percentiles; seven: sevenths)."""
        n = len(self.bin_words)
        return tuple(round(i / n, 6) for i in range(1, n))


# ---------------------------------------------------------------- everything


@dataclass
class TextualizeConfig:
    mode: Mode = "words"
    transcript: TranscriptConfig = field(default_factory=TranscriptConfig)
    face: FaceConfig = field(default_factory=FaceConfig)
    prosody: ProsodyConfig = field(default_factory=ProsodyConfig)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown textualization mode {self.mode!r}; choose one of: {', '.join(MODES)}")

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TextualizeConfig":
        face = dict(d.get("face", {}))
        if "scales" in face:  # given scales and fields override the defaults; the rest stay
            scales = _default_scales()
            for k, v in face["scales"].items():
                base = dataclasses.asdict(scales[k]) if k in scales else {}
                merged = {**base, **v}
                merged["levels"] = tuple((float(b), str(w)) for b, w in merged["levels"])
                scales[k] = ScaleGrades(**merged)
            face["scales"] = scales
        transcript = dict(d.get("transcript", {}))
        if "hallucination_phrases" in transcript:
            transcript["hallucination_phrases"] = tuple(transcript["hallucination_phrases"])
        prosody = {k: tuple(v) if isinstance(v, list) else v for k, v in d.get("prosody", {}).items()}
        return cls(
            mode=d.get("mode", "words"),
            transcript=TranscriptConfig(**transcript),
            face=FaceConfig(**face),
            prosody=ProsodyConfig(**prosody),
        )

    @classmethod
    def from_build(cls, build: Any) -> "TextualizeConfig":
        """The options a ``build.BuildConfig`` exposes on the command line, over the settings of
        its ``converter_config`` (a dict as ``to_dict`` writes it; absent keys keep defaults)."""
        base = dict(getattr(build, "converter_config", None) or {})
        transcript = {**base.get("transcript", {}),
                      "prefer_gold": getattr(build, "prefer_gold_transcript", True),
                      "context_turns": int(getattr(build, "context_turns", 0) or 0)}
        return cls.from_dict({**base, "mode": getattr(build, "mode", "words"), "transcript": transcript})

    @property
    def hash(self) -> str:
        """Short SHA-256 of the settings (goes into dataset cache keys)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x
