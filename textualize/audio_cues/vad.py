"""Silero voice-activity detection matched to the signal's bandwidth (the gate of both ASR backends).

Telephone and many in-the-wild recordings carry nothing above 4 kHz (8 kHz sampling, G.711 μ-law,
8-bit PCM). Brought to 16 kHz they keep an empty upper band, and the 16 kHz-only Silero v6 export
inside faster-whisper under-fires on them: on CREMA-D ``1002_DFA_ANG_XX`` resampled to 8 kHz its
speech probability peaks at 0.43 (threshold 0.5; 0.85 on the original), so clear speech was
declared silent. Silero VAD is trained for 8 kHz input too; the ``silero-vad`` package ships that
path (peak 0.95 on the same audio). So: measure the share of energy in 4.5–7.5 kHz; narrowband
audio goes to Silero's 8 kHz model at its native rate, wideband audio to faster-whisper's bundled
16 kHz model exactly as before. Same decision rules (``VadOptions``) either way; the choice and
the measured band share are recorded in the transcript's provenance.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from textualize.audio_cues.base import SAMPLE_RATE

HIGH_BAND_HZ = (4500.0, 7500.0)
# Energy share of HIGH_BAND_HZ below which audio counts as narrowband. Measured on the CREMA-D demo
# clips and espeak-ng speech: wideband speech -29 to -10 dB; 8 kHz PCM / μ-law / 8-bit, or 8 kHz Opus,
# brought to 16 kHz: -74 to -42 dB. Erring towards 8 kHz is safe: speech is fully audible to that model.
NARROWBAND_DB = -35.0
NARROWBAND_RATE = 8_000
NO_VOICE_ACTIVITY = "Silero VAD found no voice activity"  # detail prefix the extractor relies on


def vad_options(vad_parameters: dict[str, Any] | None = None):
    """faster-whisper's ``VadOptions`` (its defaults unless overridden)."""
    from faster_whisper.vad import VadOptions

    try:
        return VadOptions(**(vad_parameters or {}))
    except TypeError as e:
        raise ValueError(f"bad vad_parameters {vad_parameters!r}: {e}") from None


def high_band_db(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Share of the signal's energy in 4.5–7.5 kHz, in dB (-inf for digital silence or too little
    audio to tell). Welch's averaged periodogram, so a few loud frames cannot dominate."""
    from scipy.signal import welch

    if audio.size < 256 or sample_rate < 2 * HIGH_BAND_HZ[1]:
        return -math.inf if sample_rate < 2 * HIGH_BAND_HZ[1] else math.nan
    freqs, psd = welch(audio.astype(np.float64, copy=False), fs=sample_rate, nperseg=min(1024, audio.size))
    total = float(psd.sum())
    if not total > 0:
        return math.nan
    band = float(psd[(freqs >= HIGH_BAND_HZ[0]) & (freqs < HIGH_BAND_HZ[1])].sum())
    return 10.0 * math.log10(band / total) if band > 0 else -math.inf


@functools.lru_cache(maxsize=1)
def _silero_8k():
    """Silero VAD ONNX model with the 8 kHz path (``silero-vad`` package), loaded once per process."""
    import torch

    from textualize.models import require_model

    require_model("silero-vad")  # a clear message naming the package if it is missing
    threads = torch.get_num_threads()
    try:
        from silero_vad import load_silero_vad
    finally:
        torch.set_num_threads(threads)  # silero_vad.model sets 1 thread process-wide on import
    return load_silero_vad(onnx=True)


def _silero_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("silero-vad")
    except PackageNotFoundError:
        return "unknown"


def speech_chunks(audio: np.ndarray, options=None) -> tuple[list[dict[str, int]], dict[str, Any]]:
    """Voiced chunks of 16 kHz mono audio as ``{"start", "end"}`` sample indices (faster-whisper's
    format, so its ``collect_chunks``/``restore_speech_timestamps`` apply) and how they were found."""
    options = options if options is not None else vad_options()
    band_db = high_band_db(audio)
    narrow = bool(band_db < NARROWBAND_DB)  # NaN (silence, too short) -> wideband path
    info: dict[str, Any] = {"high_band_db": None if math.isnan(band_db) else (round(band_db, 1) if math.isfinite(band_db) else "-inf"),
                            "narrowband": narrow}
    if not narrow:
        from faster_whisper.vad import get_speech_timestamps

        info.update(model="faster-whisper silero_vad_v6.onnx", sample_rate=SAMPLE_RATE)
        return get_speech_timestamps(audio, options, sampling_rate=SAMPLE_RATE), info

    import librosa
    import torch

    model = _silero_8k()  # first: it guards the thread setting that importing silero_vad changes
    from silero_vad import get_speech_timestamps as silero_timestamps

    ratio = SAMPLE_RATE // NARROWBAND_RATE
    low = librosa.resample(audio, orig_sr=SAMPLE_RATE, target_sr=NARROWBAND_RATE, res_type="soxr_hq").astype(np.float32)
    chunks = silero_timestamps(
        torch.from_numpy(np.ascontiguousarray(low)), model, sampling_rate=NARROWBAND_RATE,
        threshold=options.threshold, neg_threshold=options.neg_threshold,
        min_speech_duration_ms=options.min_speech_duration_ms, max_speech_duration_s=options.max_speech_duration_s,
        min_silence_duration_ms=options.min_silence_duration_ms, speech_pad_ms=options.speech_pad_ms,
    )
    info.update(model=f"silero-vad {_silero_version()} silero_vad.onnx", sample_rate=NARROWBAND_RATE)
    return [{"start": int(c["start"]) * ratio, "end": min(int(c["end"]) * ratio, len(audio))} for c in chunks], info


def chunk_spans(chunks: list[dict[str, int]], n_samples: int) -> list[tuple[float, float]]:
    """Sample chunks -> (start_s, end_s) spans, rounded to ms and clipped to the audio."""
    duration = n_samples / SAMPLE_RATE
    return [(round(c["start"] / SAMPLE_RATE, 3), min(round(c["end"] / SAMPLE_RATE, 3), duration)) for c in chunks]


def silero_vad_spans(audio: np.ndarray, options=None) -> list[tuple[float, float]]:
    """Voice-activity spans in seconds of 16 kHz mono audio (bandwidth-matched Silero VAD)."""
    chunks, _ = speech_chunks(audio, options)
    return chunk_spans(chunks, len(audio))
