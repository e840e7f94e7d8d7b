"""Helpers shared by the prosody backends: input checks, windows, speaking rate and pauses.

Speaking rate follows de Jong & Wempe (2009, "Praat script to detect syllable nuclei"): a syllable
nucleus is a peak of the intensity contour that is (a) above a threshold 25 dB below the 99th
percentile of the clip's intensity (and 8 dB above its noise floor, see ``_silence_threshold``),
(b) more than 2 dB above the dip that follows it and (c) voiced.
When ASR words are given, the syllable rate counts the syllables of the recognised words
(``word_syllables``: pyphen hyphenation in the transcript's language, vowel-less parts dropped)
over the speech span, so a clip where words were heard never reads "0 syllables/s"; syllable
nuclei are the fallback without a transcript.
Pauses are gaps of at least 0.25 s between ASR words when words are given, else between runs of
energy-based voice activity (same intensity threshold). Both backends use these functions so the
two give comparable rates and pauses whatever their pitch tracker.
"""
from __future__ import annotations

import functools
import math
import re
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
    word_syllables: np.ndarray | None = None  # syllables of each ASR word (same order as word_mid_s)
    syllable_source: str = "nuclei"  # "transcript" or "nuclei"


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
                  words: list[Word] | None = None, min_pause_s: float = MIN_PAUSE_S,
                  language: str | None = None) -> SpeechTiming:
    """Speech extent, pauses and syllable nuclei of a clip, from words when given else energy;
    with words, the syllables of the recognised words (``language``: the transcript's)."""
    times, db = intensity_db(audio16k)
    nuclei = syllable_nuclei(times, db, voiced_times, voiced)
    if words:
        ws = _check_words(words)
        spans = [(float(w.start_s), float(w.end_s)) for w in ws]
        syllables = np.array([word_syllables(w.text, language) for w in ws], dtype=np.float64)
        return SpeechTiming(
            speech_start_s=spans[0][0],
            speech_end_s=max(e for _, e in spans),
            pauses=_gaps(spans, min_pause_s),
            nuclei_s=nuclei,
            word_mid_s=np.array([(s + e) / 2 for s, e in spans]),
            pause_source="words",
            nuclei_measurable=bool(np.any(voiced)),
            word_syllables=syllables,
            syllable_source="transcript" if syllables.sum() > 0 else "nuclei",
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
    out["speech_duration_s"] = max(0.0, speech_span)
    if timing.word_mid_s is not None:
        mids = timing.word_mid_s
        in_span = (mids >= lo) & (mids < hi)
        out["word_count"] = float(np.count_nonzero(in_span))
    if speech_span < MIN_RATE_SPAN_S:
        return out
    syllables = math.nan
    if timing.syllable_source == "transcript" and timing.word_syllables is not None:
        syllables = float(timing.word_syllables[in_span].sum())
    if not syllables > 0 and timing.nuclei_measurable:
        nuc = timing.nuclei_s
        # speech without a single nucleus is not "0 syllables/s": the nuclei were not found
        syllables = float(np.count_nonzero((nuc >= lo) & (nuc < hi))) or math.nan
    if syllables > 0:
        out["syllable_count"] = syllables
        out["speaking_rate_syl_per_s"] = syllables / speech_span
    if timing.word_mid_s is not None:
        out["speaking_rate_words_per_s"] = out["word_count"] / speech_span
    inside = [(a, b) for a, b in timing.pauses if start_s <= (a + b) / 2 < end_s]
    out["pause_count"] = float(len(inside))
    out["pause_mean_s"] = float(np.mean([b - a for a, b in inside])) if inside else math.nan
    clipped = sum(max(0.0, min(b, hi) - max(a, lo)) for a, b in timing.pauses)
    out["pause_ratio"] = float(clipped / speech_span)
    return out


# ---------------------------------------------------------------- pitch fallback

PITCH_FALLBACK_BELOW_S = 0.25  # primary tracker's voiced time in the speech below which Praat is asked
FALLBACK_MAX_DEVIATION_ST = 5.0  # fallback frames further than this from their median are octave errors


def praat_pitch_hz(audio16k: np.ndarray, times: np.ndarray, fmin: float = 65.0, fmax: float = 500.0) -> np.ndarray:
    """F0 (Hz, NaN unvoiced) at ``times`` from Praat's autocorrelation pitch (Boersma 1993;
    parselmouth, Praat's standard voicing/silence/octave settings, 10 ms steps)."""
    import parselmouth

    snd = parselmouth.Sound(np.asarray(audio16k, np.float64), TARGET_SR)
    pitch = snd.to_pitch_ac(time_step=0.01, pitch_floor=fmin, pitch_ceiling=fmax)
    f = np.asarray(pitch.selected_array["frequency"], np.float64)
    t = np.asarray(pitch.xs(), np.float64)
    out = np.full(np.shape(times), np.nan)
    if f.size == 0:
        return out
    f = np.where(f > 0, f, np.nan)
    idx = np.clip(np.round((np.asarray(times) - t[0]) / 0.01).astype(int), 0, f.size - 1)
    inside = (times >= t[0] - 0.01) & (times <= t[-1] + 0.01)
    out[inside] = f[idx[inside]]
    return out


def in_speech(times: np.ndarray, timing: "SpeechTiming") -> np.ndarray:
    """Frames inside the speech extent and outside its pauses."""
    if not math.isfinite(timing.speech_start_s):
        return np.zeros(np.shape(times), bool)
    keep = (times >= timing.speech_start_s) & (times <= timing.speech_end_s)
    for a, b in timing.pauses:
        keep &= ~((times > a) & (times < b))
    return keep


def pitch_fallback(audio16k: np.ndarray, times: np.ndarray, voiced: np.ndarray, f0_st: np.ndarray,
                   timing: "SpeechTiming", hop_s: float, fmin: float = 65.0,
                   fmax: float = 500.0) -> tuple[np.ndarray, np.ndarray, bool]:
    """(voiced, f0 in st, used): Praat's pitch inside the speech when the primary tracker found
    less than ``PITCH_FALLBACK_BELOW_S`` of voicing there.

    Why: on speaker 1001's CREMA-D FLV clips (quiet, breathy speech over a steady ~100-230 Hz
    room hum about 20 dB down) openSMILE's SHS and pYIN reject almost every frame, while Praat's
    autocorrelation tracker, whose voicing decision is relative to the clip's peak intensity,
    finds the voice at plausible male F0 (106-123 Hz). Frames outside the speech (the hum in the
    silences) are never used, and inside it Praat still jumps to the hum or an octave now and
    then, so frames more than ``FALLBACK_MAX_DEVIATION_ST`` from the median are dropped (this caps
    the pitch range such a clip can show; the evidence rules then decide whether what is left
    suffices). CREPE was tried and tracks the hum itself (voiced at ~226 Hz in the silences)."""
    speech = in_speech(times, timing)
    if np.count_nonzero(voiced & speech) * hop_s >= PITCH_FALLBACK_BELOW_S or not speech.any():
        return voiced, f0_st, False
    f_st = hz_to_st(praat_pitch_hz(audio16k, times, fmin, fmax))
    alt = np.isfinite(f_st) & speech
    if alt.any():
        # octave errors and the hum: keep frames within a fourth of the median of the speech
        alt &= np.abs(f_st - np.median(f_st[alt])) <= FALLBACK_MAX_DEVIATION_ST
    if np.count_nonzero(alt) <= np.count_nonzero(voiced):
        return voiced, f0_st, False
    return alt, np.where(alt, f_st, np.nan), True


# ---------------------------------------------------------------- syllables of words


_VOWELS = set("aeiouyäöüàâéèêëîïôùûœæøå")


@functools.lru_cache(maxsize=16)
def _hyphenator(language: str | None):
    """pyphen dictionary for a Whisper language code ("en", "de", ...); English when unknown.
    left/right = 1: syllables at word edges count too ("a-gain")."""
    import pyphen

    lang = (language or "en").lower()
    chosen = pyphen.language_fallback(lang) or pyphen.language_fallback(f"{lang}_{lang}") or "en_US"
    return pyphen.Pyphen(lang=chosen, left=1, right=1)


def _part_syllables(part: str, english: bool) -> int:
    groups = re.findall(f"[{''.join(sorted(_VOWELS))}]+", part)
    n = len(groups)
    if english and n > 1 and part.endswith("e") and not part.endswith(("le", "ee", "ye")) and groups[-1] == "e":
        n -= 1  # silent final e: "there", "make"
    return n


@functools.lru_cache(maxsize=65536)
def word_syllables(word: str, language: str | None = None) -> int:
    """Syllables of one written word: pyphen splits it at its hyphenation points (language from
    the transcript), each part counts its vowel groups (a silent final "e" not counted in
    English): "hello" 2, "there" 1, "beautiful" 3, "gefahren" 3. 0 for tokens without letters."""
    letters = "".join(ch for ch in word.lower() if ch.isalpha())
    if not letters:
        return 0
    english = (language or "en").lower().startswith("en")
    parts = _hyphenator(language).inserted(letters).split("-")
    return max(1, sum(_part_syllables(part, english) for part in parts))


# ---------------------------------------------------------------- voicing rhythm, contours


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of the True runs of a boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], np.asarray(mask, np.int8), [0]])))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def voicing_measures(voiced: np.ndarray, hop_s: float, f0_st: np.ndarray | None = None) -> dict[str, float]:
    """Voiced time, rhythm of voiced/unvoiced stretches (eGeMAPS' VoicedSegmentsPerSec,
    MeanVoicedSegmentLength, MeanUnvoicedSegmentLength) and mean rising/falling pitch slopes
    (st/s, per voiced run, between successive turning points of the contour)."""
    v = np.asarray(voiced, bool)
    out: dict[str, float] = {"voiced_duration_s": float(np.count_nonzero(v) * hop_s)}
    if v.size == 0:
        return out
    on = runs(v)
    off = [(a, b) for a, b in runs(~v) if a > 0 and b < v.size]  # gaps between voiced stretches
    span_s = v.size * hop_s
    if on:
        out["voiced_segments_per_s"] = len(on) / span_s
        out["voiced_segment_mean_s"] = float(np.mean([(b - a) * hop_s for a, b in on]))
    if off:
        out["unvoiced_segment_mean_s"] = float(np.mean([(b - a) * hop_s for a, b in off]))
    if f0_st is not None:
        rises, falls = [], []
        for a, b in on:
            seg = np.asarray(f0_st[a:b], np.float64)
            if seg.size < 3 or not np.all(np.isfinite(seg)):
                continue
            d = np.diff(seg)
            turn = np.flatnonzero(np.diff(np.sign(d)) != 0) + 1  # turning points of the contour
            bounds = np.concatenate([[0], turn, [seg.size - 1]])
            for i0, i1 in zip(bounds[:-1], bounds[1:]):
                if i1 - i0 < 2:
                    continue
                slope = (seg[i1] - seg[i0]) / ((i1 - i0) * hop_s)
                (rises if slope > 0 else falls).append(abs(slope))
        if rises:
            out["pitch_rise_st_per_s"] = float(np.mean(rises))
        if falls:
            out["pitch_fall_st_per_s"] = float(np.mean(falls))
    return out


def contour_dynamics(values: np.ndarray, hop_s: float, unit_range: bool = True) -> dict[str, float]:
    """Loudness dynamics of a contour: 80th-20th percentile range (``loudness_range``, only for
    sone loudness: ``unit_range``) and peaks per second (eGeMAPS' loudnessPeaksPerSec: local
    maxima standing out from their neighbours)."""
    x = np.asarray(values, np.float64)
    x = x[np.isfinite(x)]
    if x.size < 3:
        return {}
    out: dict[str, float] = {}
    if unit_range:
        p20, p80 = np.percentile(x, [20, 80])
        out["loudness_range"] = float(p80 - p20)
    from scipy.signal import find_peaks

    prominence = 0.1 * float(np.ptp(x)) if np.ptp(x) > 0 else None
    peaks, _ = find_peaks(x, prominence=prominence)
    out["loudness_peaks_per_s"] = float(peaks.size / (x.size * hop_s))
    return out


def spectral_balance(audio16k: np.ndarray, frame_times: np.ndarray, voiced: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame spectral-balance descriptors with eGeMAPS' definitions, for backends without
    openSMILE: alpha ratio (dB, 1-5 kHz vs 50-1000 Hz energy: openSMILE's sign, near 0 for
    effortful voices, strongly negative for soft ones), Hammarberg index (dB, strongest
    0-2 kHz vs 2-5 kHz), spectral slopes (dB/Hz regression over 0-500 and 500-1500 Hz) and
    spectral flux (over all frames). 25 ms Hamming frames at ``frame_times``."""
    n = 512
    win = int(0.025 * TARGET_SR)
    half = win // 2
    padded = np.pad(audio16k.astype(np.float64), (half, half))
    starts = np.clip(np.round(frame_times * TARGET_SR).astype(int), 0, padded.size - win)
    frames = padded[starts[:, None] + np.arange(win)[None, :]] * np.hamming(win)
    power = np.abs(np.fft.rfft(frames, n)) ** 2 + 1e-12
    freqs = np.fft.rfftfreq(n, 1 / TARGET_SR)
    band = lambda lo, hi: (freqs >= lo) & (freqs < hi)  # noqa: E731
    out = {
        "alpha_ratio_db": 10 * np.log10(power[:, band(1000, 5000)].sum(1) / power[:, band(50, 1000)].sum(1)),
        "hammarberg_db": 10 * np.log10(power[:, band(0, 2000)].max(1) / power[:, band(2000, 5000)].max(1)),
    }
    db = 10 * np.log10(power)
    for key, (lo, hi) in (("spectral_slope_0_500", (0, 500)), ("spectral_slope_500_1500", (500, 1500))):
        f = freqs[band(lo, hi)]
        fc = f - f.mean()
        out[key] = (db[:, band(lo, hi)] - db[:, band(lo, hi)].mean(1, keepdims=True)) @ fc / float(fc @ fc)
    mag = np.sqrt(power)
    norm = mag / np.maximum(mag.sum(1, keepdims=True), 1e-12)
    out["spectral_flux"] = np.concatenate([[np.nan], np.sum(np.diff(norm, axis=0) ** 2, axis=1)])
    for key in ("alpha_ratio_db", "hammarberg_db", "spectral_slope_0_500", "spectral_slope_500_1500"):
        out[key] = np.where(voiced, out[key], np.nan)
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
