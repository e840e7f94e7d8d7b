"""Interfaces every audio backend implements (registered in ``textualize.registry``)."""
from __future__ import annotations

from typing import Protocol

import numpy as np

from textualize.cues import MissingCue, ProsodyCues, Transcript, Word

SAMPLE_RATE = 16_000  # every audio backend receives float32 mono at this rate


class ASRBackend(Protocol):
    """Constructed once per worker as ``cls(model=None, device="cpu", language=None)``;
    ``model=None`` means the offline default. Loading failures raise ``textualize.models.ModelUnavailableError``."""

    name: str

    def transcribe(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Transcript | MissingCue:
        """Word timestamps, VAD segments, language, no-speech probability; ``MissingCue('no_speech')``
        when nothing is said (silence, noise)."""


class ProsodyBackend(Protocol):
    """Constructed once per worker as ``cls(window_s=2.0, hop_s=1.0)``."""

    name: str

    def measure(
        self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE, words: list[Word] | None = None
    ) -> ProsodyCues | MissingCue:
        """Per-clip and per-window measures; ``words`` (from ASR) give words/s and pauses.
        ``MissingCue('silence')`` for digital silence or no voiced frames."""

    def lld(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> tuple[list[str], float, np.ndarray]:
        """Low-level descriptor sequence for the feature baseline: (names, hop in s, T x D float32)."""
