"""Helpers shared by the prosody backends: input checks, windows, speaking rate and pauses.

Speaking rate follows de Jong & Wempe (2009, "Praat script to detect syllable nuclei"): a syllable
nucleus is a peak of the intensity contour that is (a) above a threshold 25 dB below the 99th
percentile of the clip's intensity (and 8 dB above its noise floor, see ``_silence_threshold``),
(b) more than 2 dB above the dip that follows it and (c) voiced.
Pauses are gaps of at least 0.25 s between ASR words when words are given, else between runs of
energy-based voice activity (same intensity threshold). Both backends use these functions so the
two give comparable rates and pauses whatever their pitch tracker.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from textualize.cues import MissingCue, ProsodyMeasures, Word

TARGET_SR = 16_000
MIN_DURATION_S = 0.25  # shorter clips hold too few pitch periods / frames to describe
DIGITAL_SILENCE_PEAK = 2.0**-15  # below one 16-bit LSB everywhere = nothing was recorded
MIN_PAUSE_S = 0.25
SILENCE_DB_BELOW_P99 = 25.0  # de Jong & Wempe's "silence threshold" (-25 dB)
NOISE_FLOOR_MARGIN_DB = 8.0
VAD_MERGE_GAP_S = 0.05
VAD_MIN_RUN_S = 0.1
MIN_DIP_DB = 2.0  # de Jong & Wempe's "minimum dip between peaks"
INTENSITY_HOP_S = 0.01
INTENSITY_WINDOW_S = 0.064  # Praat's intensity window for a 50 Hz minimum pitch (3.2 / 50 Hz)
MIN_RATE_SPAN_S = 0.25  # rates over less speech than this are not meaningful


# ---------------------------------------------------------------- input


def as_mono_16k(audio, sample_rate: int) -> np.ndarray:
    """Validate and convert to float32 mono at 16 kHz (resampling with soxr via librosa).

    Raises ``ValueError`` for non-mono shapes, NaN/inf samples or a bad sample rate, so that a
    corrupt clip fails here with a readable message instead of deep inside openSMILE or librosa.
    """
    x = np.asarray(audio)
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.ndim != 1:
        raise ValueError(f"prosody expects mono audio as a 1-D array, got shape {x.shape}")
    if not isinstance(sample_rate, (int, np.integer, float)) or not sample_rate > 0:
        raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max + 1)
    elif not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"audio samples must be numbers, got dtype {x.dtype}")
    x = x.astype(np.float32, copy=False)
    bad = int(x.size - np.count_nonzero(np.isfinite(x)))
    if bad:
        raise ValueError(
            f"audio contains {bad} NaN/inf samples out of {x.size}; the decoder output is corrupt"
        )
    if int(sample_rate) != TARGET_SR and x.size:
        import librosa

        x = librosa.resample(x, orig_sr=float(sample_rate), target_sr=TARGET_SR, res_type="soxr_hq")
    return np.ascontiguousarray(x, dtype=np.float32)


def missing_reason(audio16k: np.ndarray) -> MissingCue | None:
    """``MissingCue`` for audio too short or digitally silent to measure, else None."""
    duration = audio16k.size / TARGET_SR
    if duration < MIN_DURATION_S:
        return MissingCue("too_short", f"{duration:.3f} s of audio; prosody needs at least {MIN_DURATION_S} s")
    peak = float(np.max(np.abs(audio16k))) if audio16k.size else 0.0
    if peak < DIGITAL_SILENCE_PEAK:
        return MissingCue("silence", f"digital silence: peak amplitude {peak:.2e} (below one 16-bit step)")
    return None


# ---------------------------------------------------------------- span statistics


def rms_dbfs(audio: np.ndarray) -> float:
    """RMS level in dB re full scale (a full-scale square wave is 0 dBFS), floored at -120 dBFS
    (digital zeros); NaN if empty."""
    if audio.size == 0:
        return math.nan
    ms = float(np.mean(np.square(audio, dtype=np.float64)))
    return 10.0 * math.log10(max(ms, 1e-12))


def pitch_stats(f0_st: np.ndarray, min_frames: int = 3) -> dict[str, float]:
    """Mean/SD/range (80th-20th percentile) of voiced pitch in semitones re 27.5 Hz, mean in Hz."""
    v = f0_st[np.isfinite(f0_st)]
    if v.size < min_frames:
        return {}
    mean_st = float(np.mean(v))
    p20, p80 = np.percentile(v, [20, 80])
    return {
        "pitch_mean_st": mean_st,
        "pitch_mean_hz": float(27.5 * 2.0 ** (mean_st / 12.0)),
        "pitch_sd_st": float(np.std(v)),
        "pitch_range_st": float(p80 - p20),
    }


def hz_to_st(f0_hz: np.ndarray) -> np.ndarray:
    """Hz -> semitones re 27.5 Hz (eGeMAPS' F0semitoneFrom27.5Hz); unvoiced (NaN/<=0) -> NaN."""
    f = np.asarray(f0_hz, dtype=np.float64)
    out = np.full(f.shape, np.nan)
    ok = np.isfinite(f) & (f > 0)
    out[ok] = 12.0 * np.log2(f[ok] / 27.5)
    return out


# ---------------------------------------------------------------- intensity, nuclei, activity


def intensity_db(audio16k: np.ndarray, hop_s: float = INTENSITY_HOP_S,
                 window_s: float = INTENSITY_WINDOW_S) -> tuple[np.ndarray, np.ndarray]:
    """Hann-weighted intensity contour in dBFS, Praat-like; returns (frame centre times s, dB)."""
    from scipy.signal import oaconvolve

    hop = int(round(hop_s * TARGET_SR))
    win = int(round(window_s * TARGET_SR))
    w = np.hanning(win)
    # Hann-weighted moving mean square, by overlap-add convolution: memory stays O(samples)
    ms_full = oaconvolve(np.square(audio16k.astype(np.float64)), w / w.sum(), mode="same")
    ms = np.maximum(ms_full[::hop], 0.0)  # frame k centred on sample k * hop
    db = 10.0 * np.log10(np.maximum(ms, 1e-12))  # floor -120 dBFS, as rms_dbfs
    times = np.arange(db.size) * hop / TARGET_SR
    return times, db


def _silence_threshold(db: np.ndarray) -> float:
    """de Jong & Wempe's threshold (99th percentile - 25 dB), raised to 8 dB above the noise floor
    (10th percentile) for recordings whose background is within 25 dB of the speech (CREMA-D's
    room noise sits ~20 dB below it), but never above 99th percentile - 12 dB."""
    p10, p99 = np.percentile(db, [10, 99])
    floor_based = min(p10 + NOISE_FLOOR_MARGIN_DB, p99 - 12.0)
    return float(max(p99 - SILENCE_DB_BELOW_P99, floor_based, np.min(db)))


def syllable_nuclei(times: np.ndarray, db: np.ndarray, voiced_times: np.ndarray,
                    voiced: np.ndarray) -> np.ndarray:
    """Times (s) of syllable nuclei, de Jong & Wempe (2009) on an intensity contour.

    ``voiced`` is a boolean voicing track at ``voiced_times`` from the backend's pitch tracker.
    """
    if db.size < 3 or not np.any(voiced):
        return np.zeros(0)
    from scipy.signal import argrelextrema

    threshold = _silence_threshold(db)
    peaks = argrelextrema(db, np.greater_equal, order=1)[0]
    peaks = peaks[(peaks > 0) & (peaks < db.size - 1)]
    # plateaus give runs of equal samples: keep the first of each run
    if peaks.size:
        peaks = peaks[np.concatenate([[True], np.diff(peaks) > 1])]
    peaks = peaks[db[peaks] > threshold]
    keep = []
    for i, p in enumerate(peaks):
        nxt = peaks[i + 1] if i + 1 < peaks.size else db.size
        dip = float(np.min(db[p:nxt])) if nxt > p else float(db[p])
        if db[p] - dip > MIN_DIP_DB:
            keep.append(p)
    if not keep:
        return np.zeros(0)
    t = times[np.asarray(keep)]
    v = np.interp(t, voiced_times, np.asarray(voiced, dtype=np.float64), left=0.0, right=0.0)
    return t[v >= 0.5]


def energy_activity(times: np.ndarray, db: np.ndarray) -> list[tuple[float, float]]:
    """Speech-activity spans (s): runs of intensity above the silence threshold, runs closer than
    50 ms merged, runs shorter than 0.1 s dropped."""
    if db.size == 0:
        return []
    active = db > _silence_threshold(db)
    half = (times[1] - times[0]) / 2 if times.size > 1 else INTENSITY_HOP_S / 2
    spans: list[list[float]] = []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], active.astype(np.int8), [0]])))
    for a, b in zip(edges[0::2], edges[1::2]):
        start, end = max(0.0, float(times[a] - half)), float(times[b - 1] + half)
        if spans and start - spans[-1][1] < VAD_MERGE_GAP_S:
            spans[-1][1] = end
        else:
            spans.append([start, end])
    # isolated bursts shorter than a syllable are clicks or bumps, not speech
    return [(a, b) for a, b in spans if b - a >= VAD_MIN_RUN_S]


# ---------------------------------------------------------------- timing of one clip


@dataclass
class SpeechTiming:
    """Where speech, pauses, syllable nuclei and words lie in a clip (all in s)."""

    speech_start_s: float
    speech_end_s: float
    pauses: list[tuple[float, float]] = field(default_factory=list)
    nuclei_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    word_mid_s: np.ndarray | None = None  # None: no ASR words were given
    pause_source: str = "energy"  # "words" or "energy"
    nuclei_measurable: bool = True  # False when no frame was voiced: syllables cannot be found


def _check_words(words: list[Word]) -> list[Word]:
    out = []
    for w in words:
        s, e = float(w.start_s), float(w.end_s)
        if not (math.isfinite(s) and math.isfinite(e)) or e < s:
            raise ValueError(f"word {w.text!r} has invalid timestamps start={s} end={e}")
        out.append(w)
    return sorted(out, key=lambda w: (w.start_s, w.end_s))


def _gaps(spans: list[tuple[float, float]], min_gap: float) -> list[tuple[float, float]]:
    """Gaps >= min_gap between spans (sorted by start; overlapping spans merge)."""
    gaps, end = [], None
    for s, e in spans:
        if end is not None and s - end >= min_gap:
            gaps.append((end, s))
        end = e if end is None else max(end, e)
    return gaps


def speech_timing(audio16k: np.ndarray, voiced_times: np.ndarray, voiced: np.ndarray,
                  words: list[Word] | None = None, min_pause_s: float = MIN_PAUSE_S) -> SpeechTiming:
    """Speech extent, pauses and syllable nuclei of a clip, from words when given else energy."""
    times, db = intensity_db(audio16k)
    nuclei = syllable_nuclei(times, db, voiced_times, voiced)
    if words:
        ws = _check_words(words)
        spans = [(float(w.start_s), float(w.end_s)) for w in ws]
        return SpeechTiming(
            speech_start_s=spans[0][0],
            speech_end_s=max(e for _, e in spans),
            pauses=_gaps(spans, min_pause_s),
            nuclei_s=nuclei,
            word_mid_s=np.array([(s + e) / 2 for s, e in spans]),
            pause_source="words",
            nuclei_measurable=bool(np.any(voiced)),
        )
    spans = energy_activity(times, db)
    if not spans:
        return SpeechTiming(math.nan, math.nan, [], nuclei, None, "energy")
    return SpeechTiming(
        speech_start_s=spans[0][0],
        speech_end_s=spans[-1][1],
        pauses=_gaps(spans, min_pause_s),
        nuclei_s=nuclei,
        word_mid_s=np.zeros(0) if words is not None else None,
        pause_source="energy",
    )


def rate_and_pause_measures(timing: SpeechTiming, start_s: float, end_s: float) -> dict[str, float]:
    """Speaking rates and pauses inside [start_s, end_s].

    Rates divide by the part of the span that lies within the speech extent (first to last speech),
    so leading/trailing silence does not lower them; a pause counts in the span holding its middle;
    ``pause_ratio`` = pause time / speech-extent time inside the span.
    """
    out: dict[str, float] = {}
    if not math.isfinite(timing.speech_start_s):
        return out
    lo, hi = max(start_s, timing.speech_start_s), min(end_s, timing.speech_end_s)
    speech_span = hi - lo
    if speech_span < MIN_RATE_SPAN_S:
        return out
    nuc = timing.nuclei_s
    if timing.nuclei_measurable:
        out["speaking_rate_syl_per_s"] = float(np.count_nonzero((nuc >= lo) & (nuc < hi))) / speech_span
    if timing.word_mid_s is not None:
        mids = timing.word_mid_s
        out["speaking_rate_words_per_s"] = float(np.count_nonzero((mids >= lo) & (mids < hi))) / speech_span
    inside = [(a, b) for a, b in timing.pauses if start_s <= (a + b) / 2 < end_s]
    out["pause_count"] = float(len(inside))
    out["pause_mean_s"] = float(np.mean([b - a for a, b in inside])) if inside else math.nan
    clipped = sum(max(0.0, min(b, hi) - max(a, lo)) for a, b in timing.pauses)
    out["pause_ratio"] = float(clipped / speech_span)
    return out


def measures(start_s: float, end_s: float, *parts: dict[str, float]) -> ProsodyMeasures:
    """A ``ProsodyMeasures`` from partial dicts of measures (missing ones stay NaN)."""
    m = ProsodyMeasures(start_s=float(start_s), end_s=float(end_s))
    for part in parts:
        for k, v in part.items():
            setattr(m, k, float(v))
    return m


class LastClipMemo:
    """Keeps one backend computation for the last clip it saw.

    Extraction asks a prosody backend for the clip measures and then for the LLD sequence of the
    same audio; both need the same expensive pass (openSMILE's LLDs, pYIN). Keyed by a digest of
    the samples, so a different clip never matches.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._value = None

    def get(self, audio16k: np.ndarray, compute):
        import hashlib

        key = (audio16k.size, hashlib.blake2b(np.ascontiguousarray(audio16k).view(np.uint8), digest_size=16).digest())
        if key != self._key:
            self._value = compute(audio16k)
            self._key = key
        return self._value
