"""Packing short clips into shared Whisper windows (opt-in: ``ExtractConfig.asr_pack_short_clips``,
``extract-cues --asr-pack``).

Whisper's encoder always processes a 30 s window, so a 2.5 s utterance costs almost as much as
30 s of audio (bench/RESULTS.md). Here several short clips share one window: each clip's voiced
audio (after the same Silero VAD gate as the per-clip path; silent clips never enter a pack) is
laid end to end with ``GAP_S`` of silence between clips, on Whisper's 20 ms timestamp grid.

Mode ``"encoder"`` (the default): the pack is encoded once, then each clip is decoded on its
own: its decoder sees the pack's encoder frames of that clip only, the rest of the window being
the encoding of Whisper's padding (what a solo decode of a short clip sees), with the prompt
start-of-transcript + the clip's start timestamp. No clip's text is ever in another clip's
decoder context and no other clip's frames reach its decode; what remains shared is the
encoder's self-attention over the whole pack, so a clip's transcript can depend on its pack
mates. bench/RESULTS.md measures that (word error rate packed vs per clip). Word times: the
cross-attention alignment (DTW) of the clip's own tokens over the same view, re-based to the
clip and mapped to its original timeline through its VAD chunks, as the per-clip path does.

Mode ``"window"`` (measured, not recommended): the pack is transcribed as one audio file and the
words are split back by time (a word goes to the clip whose span holds most of it, one wholly in
a gap to the nearest clip). Inside one window the decoder conditions each clip on the text of
the clips before it, whatever ``condition_on_previous_text`` says: on CREMA-D the clips' words
leaked into each other (bench/RESULTS.md).

Both modes decode at the first temperature only (a repeated sentence across clips would trip a
pack-wide compression-ratio check and re-decode everything by sampling) and then apply Whisper's
own quality checks per clip: a clip whose decode has ``avg_logprob`` below ``log_prob_threshold``,
whose text compresses above ``compression_ratio_threshold``, that meets Whisper's no-speech rule,
or that got no words, is transcribed again on its own, exactly as without packing (``pack_fallback``
in its provenance).
"""
from __future__ import annotations

import math
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from textualize.audio_cues.base import SAMPLE_RATE
from textualize.cues import MissingCue, SpeechSegment, Transcript, Word

GAP_S = 1.0  # silence between packed clips: longer than a pause inside an utterance
MAX_CLIP_S = 10.0  # clips with more voiced audio than this are transcribed on their own
MAX_PACK_S = 29.0  # under the 30 s window, so the last clip's end timestamp fits
TIME_STEP_S = 0.02  # Whisper's timestamp resolution: clips start on this grid
CONTEXT_S = 0.5  # mode "encoder": silence each clip's decoder sees around it (half the gap)
DECODE_BATCH = 24  # mode "encoder": clips of a pack decoded (and aligned) per CTranslate2 call; 1 = one by one
PACK_VERSION = 2  # part of the audio cache key when packing is on; bump when packed output changes
# (2: the clips of a pack are decoded as one batch, DECODE_BATCH)


@dataclass(frozen=True)
class Slot:
    """Where one clip's voiced audio lies in its pack (seconds of pack time)."""

    index: int  # position of the clip in the caller's list
    offset_s: float
    length_s: float

    @property
    def end_s(self) -> float:
        return self.offset_s + self.length_s


def plan_packs(
    lengths: Sequence[float], max_clip_s: float = MAX_CLIP_S, max_pack_s: float = MAX_PACK_S, gap_s: float = GAP_S
) -> tuple[list[list[Slot]], list[int]]:
    """Greedy packing in input order: (packs of slots, indices of clips to transcribe alone).

    A clip joins the current pack while ``offset + length <= max_pack_s``; a clip longer than
    ``max_clip_s`` (or NaN) is never packed. A pack of one clip is still a pack (same decoding)."""
    if not (gap_s >= 0 and max_clip_s > 0 and max_pack_s >= max_clip_s):
        raise ValueError(f"need gap_s >= 0 and 0 < max_clip_s <= max_pack_s; got {gap_s}, {max_clip_s}, {max_pack_s}")
    packs: list[list[Slot]] = []
    alone: list[int] = []
    current: list[Slot] = []
    cursor = 0.0
    for i, length in enumerate(lengths):
        length = float(length)
        if not (0 < length <= max_clip_s):
            alone.append(i)
            continue
        start = math.ceil(round((cursor + gap_s) / TIME_STEP_S, 6)) * TIME_STEP_S if current else 0.0
        if current and start + length > max_pack_s:
            packs.append(current)
            current, start = [], 0.0
        current.append(Slot(i, start, length))
        cursor = start + length
    if current:
        packs.append(current)
    return packs, alone


def assemble(voiced: Sequence[np.ndarray], slots: Sequence[Slot]) -> np.ndarray:
    """The pack's audio: each slot's samples at its offset, silence (zeros) elsewhere."""
    end = max(round(s.end_s * SAMPLE_RATE) for s in slots)
    out = np.zeros(end, dtype=np.float32)
    for s, a in zip(slots, voiced):
        start = round(s.offset_s * SAMPLE_RATE)
        out[start:start + a.size] = a[: out.size - start]
    return out


def assign(start_s: float, end_s: float, slots: Sequence[Slot]) -> int:
    """Position in ``slots`` of the clip a word belongs to: most overlap with its span; a word with
    no overlap (wholly inside a gap, or a zero-length word) goes to the nearest slot, ties to the
    earlier one."""
    best, best_overlap = -1, 0.0
    for k, s in enumerate(slots):
        overlap = min(end_s, s.end_s) - max(start_s, s.offset_s)
        if overlap > best_overlap:
            best, best_overlap = k, overlap
    if best >= 0:
        return best
    mid = 0.5 * (start_s + end_s)
    return min(range(len(slots)), key=lambda k: (max(slots[k].offset_s - mid, mid - slots[k].end_s, 0.0), k))


def split_segments(segments: Sequence[Any], slots: Sequence[Slot]) -> list[list[dict]]:
    """Pack segments (faster-whisper ``Segment``s with ``words``) -> per slot, a list of segment
    dicts ``{text, start, end, words: [(text, start, end, prob)], avg_logprob, no_speech_prob,
    compression_ratio}`` with times re-based to the slot (0 = start of its voiced audio, clamped
    to its length). A pack segment spanning two clips becomes one segment in each."""
    out: list[list[dict]] = [[] for _ in slots]
    for seg in segments:
        parts: dict[int, list] = {}
        for w in seg.words or []:
            parts.setdefault(assign(float(w.start), float(w.end), slots), []).append(w)
        for k, words in parts.items():
            s = slots[k]
            rebased = [(w.word, min(max(float(w.start) - s.offset_s, 0.0), s.length_s),
                        min(max(float(w.end) - s.offset_s, 0.0), s.length_s), float(w.probability)) for w in words]
            out[k].append({
                "text": "".join(w.word for w in words).strip(),
                "start": rebased[0][1], "end": rebased[-1][2], "words": rebased,
                "avg_logprob": float(seg.avg_logprob), "no_speech_prob": float(seg.no_speech_prob),
                "compression_ratio": float(seg.compression_ratio),
            })
    return out


def fallback_reason(parts: list[dict], options: dict[str, Any]) -> str | None:
    """Why a clip's packed result is not kept (Whisper's own per-window checks, per clip), or None."""
    from faster_whisper.transcribe import get_compression_ratio

    text = " ".join(p["text"] for p in parts).strip()
    if not text:
        return "no_words_in_pack"
    lp = options.get("log_prob_threshold", -1.0)
    ns = options.get("no_speech_threshold", 0.6)
    if ns is not None and any(p.get("no_speech_prob", 0.0) > ns and (lp is None or p["avg_logprob"] < lp) for p in parts):
        return "no_speech"  # Whisper's own rule would skip this window
    if lp is not None and min(p["avg_logprob"] for p in parts) < lp:
        return "low_avg_logprob"
    cr = options.get("compression_ratio_threshold", 2.4)
    if cr is not None and get_compression_ratio(text) > cr:
        return "high_compression_ratio"
    return None


def pack_decode_options(options: dict[str, Any]) -> dict[str, Any]:
    """The backend's decoding options, made pack-safe (see the module docstring)."""
    temperature = options.get("temperature", 0.0)
    first = temperature[0] if isinstance(temperature, (list, tuple)) else temperature
    return {**options, "temperature": first, "condition_on_previous_text": False, "initial_prompt": None,
            "prefix": None, "compression_ratio_threshold": None, "hotwords": None}


@dataclass
class _Info:
    language: str
    language_probability: float


def _clip_tokens(tokens: list[int], ts_begin: int, eot: int, slot: Slot) -> list[int]:
    """Text tokens of one clip's decode: stop at end of text, or at a timestamp opening text at or
    after the clip's end (the decoder going on into the gap or the next clip)."""
    kept: list[int] = []
    for k, t in enumerate(tokens):
        if t == eot:
            break
        if t >= ts_begin:
            opens_text = k + 1 < len(tokens) and tokens[k + 1] < eot
            if opens_text and (t - ts_begin) * TIME_STEP_S >= slot.end_s:
                break
            continue
        kept.append(t)
    return kept


_BLANK: dict[int, np.ndarray] = {}


def _blank_memory(fw_model) -> np.ndarray:
    """Encoder output of a window of Whisper's padding only (zero log-mel frames), once per model:
    what a solo decode of a short clip sees beyond the clip."""
    key = id(fw_model)
    if key not in _BLANK:
        import ctranslate2

        fe = fw_model.feature_extractor
        view = fw_model.encode(np.zeros((fw_model.model.n_mels, fe.nb_max_frames), np.float32))
        _BLANK.clear()
        _BLANK[key] = np.asarray(view if fw_model.model.device == "cpu" else view.to_device(ctranslate2.Device.cpu))
    return _BLANK[key]


def decode_per_clip(fw_model, pack_audio: np.ndarray, slots: Sequence[Slot], options: dict[str, Any],
                    language: str | None, batch_size: int = 1) -> tuple[list[list[dict]], _Info]:
    """Mode "encoder": one encoder pass for the whole pack, then each clip decoded on its own.

    Each clip's decoder prompt is just start-of-transcript and the timestamp of the clip's start,
    so no clip's text is ever in another clip's decoder context. Word times come from the
    cross-attention alignment (DTW) of the clip's own tokens over that same view.

    ``batch_size`` > 1: up to that many clips' decodes run as one CTranslate2 ``generate`` call
    (and their word alignments as one ``align`` call). Each batch row is still one clip's own view
    (its encoder frames, Whisper's padding elsewhere) and its own prompt: beam search keeps each
    row's hypotheses apart, so batching changes the arithmetic's grouping, not what a clip sees.
    On 2 CPU cores a tiny.en decoder step is dominated by per-call overhead, which a batch shares
    (bench/RESULTS.md). One thing differs from ``batch_size=1``: the length limit is the batch's
    largest, and a clip's tokens are then cut to its own limit (only a looping decode reaches it;
    Whisper's compression-ratio check sends such a clip to be redone alone)."""
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens, merge_punctuations

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    tokenizer = Tokenizer(fw_model.hf_tokenizer, fw_model.model.is_multilingual, task="transcribe",
                          language=language or "en")
    features = fw_model.feature_extractor(pack_audio)
    content_frames = features.shape[-1] - 1
    if content_frames > fw_model.feature_extractor.nb_max_frames:
        raise ValueError(f"pack of {len(pack_audio) / SAMPLE_RATE:.2f} s exceeds one Whisper window")
    encoder_output = fw_model.encode(pad_or_trim(features[:, :content_frames]))
    ts_begin, eot = tokenizer.timestamp_begin, tokenizer.eot
    base_suppress = list(get_suppressed_tokens(tokenizer, options.get("suppress_tokens", [-1])) or [])
    n_ts = fw_model.feature_extractor.nb_max_frames // 2 + 1  # <|0.00|> .. <|30.00|>
    beam = int(options.get("beam_size", 5))
    decode_kwargs = dict(
        beam_size=beam, patience=float(options.get("patience", 1)),
        length_penalty=float(options.get("length_penalty", 1)),
        repetition_penalty=float(options.get("repetition_penalty", 1)),
        no_repeat_ngram_size=int(options.get("no_repeat_ngram_size", 0)),
        suppress_blank=bool(options.get("suppress_blank", True)), return_scores=True, return_no_speech_prob=True,
    )
    temperature = float(options.get("temperature", 0.0))
    if temperature > 0:
        decode_kwargs.update(beam_size=1, sampling_temperature=temperature, sampling_topk=0,
                             num_hypotheses=int(options.get("best_of", 5)))
    import ctranslate2

    def to_numpy(view) -> np.ndarray:
        return np.asarray(view if fw_model.model.device == "cpu" else view.to_device(ctranslate2.Device.cpu))

    memory = to_numpy(encoder_output)
    blank = _blank_memory(fw_model)
    fps = 1.0 / (2 * fw_model.feature_extractor.time_per_frame)  # encoder frames per second (50)
    decoded: list[dict] = []
    for b0 in range(0, len(slots), batch_size):
        batch = slots[b0:b0 + batch_size]
        # each clip's encoder frames in a window that is otherwise Whisper's padding, as in a solo
        # decode: the encoder saw the whole pack, but no other clip's frames or text reach its decode
        # (the whole 1500-frame view: cropping it to the clip and some padding around it changed
        # the transcripts, WER 0.05-0.8 against the full view on CREMA-D; bench/RESULTS.md)
        views = np.repeat(blank, len(batch), axis=0)
        ends, budgets, prompts = [], [], []
        for k, s in enumerate(batch):
            f0 = max(0, math.floor(s.offset_s * fps) - 1)
            f1 = min(memory.shape[1], math.ceil(s.end_s * fps) + 1)
            views[k, f0:f1] = memory[0, f0:f1]
            ends.append(f1)
            budgets.append(max(16, math.ceil(s.length_s * 12) + 8))  # ~12 tokens/s of speech, generous
            prompts.append(list(tokenizer.sot_sequence) + [ts_begin + round(s.offset_s / TIME_STEP_S)])
        view = ctranslate2.StorageView.from_array(np.ascontiguousarray(views))
        results = fw_model.model.generate(view, prompts, max_length=len(prompts[0]) + max(budgets),
                                          suppress_tokens=base_suppress, max_initial_timestamp_index=n_ts,
                                          **decode_kwargs)
        rows = []
        for k, r in enumerate(results):
            best = max(range(len(r.sequences_ids)), key=lambda h: r.scores[h])
            tokens = r.sequences_ids[best]
            seq_len = len(tokens)
            avg_logprob = float(r.scores[best] * (seq_len ** decode_kwargs["length_penalty"]) / (seq_len + 1))
            text_tokens = [t for t in tokens[:budgets[k]] if t < eot]
            rows.append({"tokens": text_tokens, "avg_logprob": avg_logprob, "no_speech_prob": float(r.no_speech_prob),
                         "words": []})
        # word times: cross-attention alignment (DTW) of each clip's tokens over its own view, up to
        # the clip's end (mel frames); clips with no text are left out of the batch
        todo = [k for k, row in enumerate(rows) if row["tokens"]]
        if todo:
            aligned_view = view if len(todo) == len(rows) else ctranslate2.StorageView.from_array(
                np.ascontiguousarray(views[todo]))
            words = fw_model.find_alignment(tokenizer, [rows[k]["tokens"] for k in todo], aligned_view,
                                            [min(content_frames, 2 * ends[k]) for k in todo])
            for k, w in zip(todo, words):
                rows[k]["words"] = w
        decoded.extend(rows)
    out: list[list[dict]] = []
    for s, d in zip(slots, decoded):
        words = d["words"]
        merge_punctuations(words, options.get("prepend_punctuations", "\"'“¿([{-"),
                           options.get("append_punctuations", "\"'.。,，!！?？:：”)]}、"))
        words = [w for w in words if w["word"]]
        text = tokenizer.decode(d["tokens"]).strip()
        if not words or not text:
            out.append([])
            continue
        rebased = [(w["word"], min(max(float(w["start"]) - s.offset_s, 0.0), s.length_s),
                    min(max(float(w["end"]) - s.offset_s, 0.0), s.length_s), float(w["probability"])) for w in words]
        out.append([{"text": text, "start": rebased[0][1], "end": rebased[-1][2], "words": rebased,
                     "avg_logprob": d["avg_logprob"], "no_speech_prob": d["no_speech_prob"],
                     "compression_ratio": get_compression_ratio(text)}])
    return out, _Info(language=language or "en", language_probability=1.0 if language else math.nan)


class PackedTranscriber:
    """Transcribes many clips through one ``FasterWhisperASR``, short ones packed.

    ``submit(audios)`` gates each clip now (input checks, VAD) and returns one ``Future`` per clip,
    resolved in pack order by ``run`` (normally on a worker thread, so the caller can work on the
    clips of one pack while the next is decoded). Each future holds the clip's ``Transcript`` or
    ``MissingCue``, or the exception its clip raised (a bad clip never takes its pack down)."""

    MODES = ("encoder", "window")

    def __init__(self, asr, max_clip_s: float = MAX_CLIP_S, max_pack_s: float = MAX_PACK_S, gap_s: float = GAP_S,
                 mode: str = "encoder", batch_size: int = DECODE_BATCH):
        if mode not in self.MODES:
            raise ValueError(f"packing mode must be one of {self.MODES}, got {mode!r}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size (clips decoded per call) must be >= 1, got {batch_size!r}")
        self.asr, self.mode, self.batch_size = asr, mode, int(batch_size)
        self.max_clip_s, self.max_pack_s, self.gap_s = float(max_clip_s), float(max_pack_s), float(gap_s)
        self.stats = {"packs": 0, "packed_clips": 0, "alone": 0, "fallback": 0}

    def packable(self) -> bool:
        """Packing needs a known language: a multilingual model would detect one for the whole pack."""
        return not self.asr.multilingual or bool(self.asr.language)

    def plan(self, audios: Sequence[np.ndarray], sample_rate: int = SAMPLE_RATE) -> tuple[list[Future], list[Callable[[], None]]]:
        """One future per clip and the jobs (to run in order) that resolve them."""
        from faster_whisper.vad import collect_chunks

        from textualize.audio_cues.asr_faster_whisper import speech_or_missing

        futures = [Future() for _ in audios]
        gated: dict[int, tuple] = {}
        for i, a in enumerate(audios):
            try:
                g = speech_or_missing(a, sample_rate, self.asr._vad_options)
            except Exception as e:  # a bad clip is that clip's failure
                futures[i].set_exception(e)
                continue
            if isinstance(g, MissingCue):
                futures[i].set_result(g)
            else:
                gated[i] = g
        order = sorted(gated)
        voiced = {i: np.concatenate(collect_chunks(gated[i][0], gated[i][3])[0], axis=0) for i in order}
        lengths = [voiced[i].size / SAMPLE_RATE if self.packable() else math.nan for i in order]
        packs, alone = plan_packs(lengths, self.max_clip_s, self.max_pack_s, self.gap_s)
        jobs: list[Callable[[], None]] = []
        for pack in packs:
            slots = [Slot(order[s.index], s.offset_s, s.length_s) for s in pack]
            jobs.append(lambda slots=slots: self._run_pack(slots, gated, voiced, audios, sample_rate, futures))
        for k in alone:
            i = order[k]
            jobs.append(lambda i=i: self._run_alone(i, audios[i], sample_rate, futures))
        return futures, jobs

    def _run_alone(self, i: int, audio, sample_rate: int, futures: list[Future], reason: str | None = None) -> None:
        try:
            result = self.asr.transcribe(audio, sample_rate)
            if reason and isinstance(result, Transcript) and result.provenance is not None:
                result.provenance.params["pack_fallback"] = reason
            futures[i].set_result(result)
        except Exception as e:
            futures[i].set_exception(e)
        self.stats["alone"] += reason is None
        self.stats["fallback"] += reason is not None

    def _run_pack(self, slots, gated, voiced, audios, sample_rate, futures) -> None:
        asr = self.asr
        pack_audio = assemble([voiced[s.index] for s in slots], slots)
        options = pack_decode_options(asr.transcribe_options)
        language = asr.language if asr.multilingual else None
        try:
            if self.mode == "window":
                segments_iter, info = asr.model.transcribe(pack_audio, language=language, word_timestamps=True,
                                                           vad_filter=False, **options)
                per_slot = split_segments(list(segments_iter), slots)
            else:
                per_slot, info = decode_per_clip(asr.model, pack_audio, slots, options, language, self.batch_size)
        except Exception as e:  # the pack failed as a whole: each clip on its own, its own errors
            for s in slots:
                self._run_alone(s.index, audios[s.index], sample_rate, futures, reason=f"pack_failed: {type(e).__name__}")
            return
        self.stats["packs"] += 1
        for k, s in enumerate(slots):
            reason = fallback_reason(per_slot[k], asr.transcribe_options)
            if reason is not None:
                self._run_alone(s.index, audios[s.index], sample_rate, futures, reason=reason)
                continue
            try:
                futures[s.index].set_result(self._transcript(s, per_slot[k], gated[s.index], info, len(slots)))
                self.stats["packed_clips"] += 1
            except Exception as e:
                futures[s.index].set_exception(e)

    def _transcript(self, slot: Slot, parts: list[dict], gated: tuple, info, n_clips: int) -> Transcript:
        """The clip's Transcript: slot times -> the clip's voiced time -> its original timeline
        (faster-whisper's ``restore_speech_timestamps`` rule: a word maps through the VAD chunk
        holding its middle)."""
        from faster_whisper.vad import SpeechTimestampsMap

        from textualize.audio_cues.asr_faster_whisper import clamp, english_only_note

        audio, extra, duration, chunks, spans = gated
        ts_map = SpeechTimestampsMap(chunks, SAMPLE_RATE)
        segments = []
        for p in parts:
            words = []
            for text, a, b, prob in p["words"]:
                chunk = ts_map.get_chunk_index((a + b) / 2)
                words.append(Word(text.strip(), clamp(ts_map.get_original_time(a, chunk), duration),
                                  clamp(ts_map.get_original_time(b, chunk), duration), prob))
            segments.append(SpeechSegment(text=p["text"], start_s=words[0].start_s, end_s=words[-1].end_s,
                                          no_speech_prob=p["no_speech_prob"], avg_logprob=p["avg_logprob"], words=words))
        asr = self.asr
        if not asr.multilingual:
            extra["language_note"] = english_only_note(asr.language)
        pack = {"mode": self.mode, "clips": n_clips, "offset_s": round(slot.offset_s, 3), "gap_s": self.gap_s,
                "max_pack_s": self.max_pack_s, "max_clip_s": self.max_clip_s, "version": PACK_VERSION,
                # how this clip was decoded: its own prompt and encoder view, beam as in the options,
                # in one batched generate/align call with up to decode_batch clips of its pack
                "decoding": "own_view_batched" if self.mode == "encoder" and self.batch_size > 1 else
                            ("own_view" if self.mode == "encoder" else "whole_window"),
                "decode_batch": min(self.batch_size, n_clips) if self.mode == "encoder" else None,
                "beam_size": int(asr.transcribe_options.get("beam_size", 5))}
        extra.update(pipeline="packed", pack=pack,
                     condition_on_previous_text=False)
        return Transcript(
            text=" ".join(s.text for s in segments),
            language=info.language,
            language_probability=float(info.language_probability) if asr.multilingual else math.nan,
            duration_s=duration,
            segments=segments,
            vad_segments=spans,
            provenance=asr._provenance(extra),
        )

    def transcribe_many(self, audios: Sequence[np.ndarray], sample_rate: int = SAMPLE_RATE) -> list:
        """Synchronous form: one result per clip (Transcript, MissingCue, or the clip's exception)."""
        futures, jobs = self.plan(audios, sample_rate)
        _run_jobs(jobs, futures)
        return [f.exception() or f.result() for f in futures]


def _run_jobs(jobs: list[Callable[[], None]], futures: list[Future]) -> None:
    """Run the jobs in order; a future that none of them resolved gets an error, never a hang."""
    error: BaseException | None = None
    for job in jobs:
        try:
            job()
        except BaseException as e:  # noqa: BLE001 - jobs record clip errors themselves; this is a bug guard
            error = e
    for f in futures:
        if not f.done():
            f.set_exception(RuntimeError(f"packed ASR left this clip without a result ({error!r})"))


def transcribe_in_background(asr, loaders: dict[str, Callable[[], np.ndarray]], executor, **pack_options) -> dict[str, Future]:
    """Load and transcribe several clips on ``executor`` (one thread), short ones packed.

    Returns one future per key, resolved pack by pack with ``(audio, transcript_or_missing)``, so
    the caller can measure prosody on one pack's clips while the next pack is decoded. A clip whose
    audio cannot be loaded, or whose transcription raises, gets that exception in its future."""
    outer = {key: Future() for key in loaders}

    def work() -> None:
        keys, audios = [], []
        for key, load in loaders.items():
            try:
                audios.append(load())
                keys.append(key)
            except BaseException as e:  # noqa: BLE001 - the clip's own failure, reported on its future
                outer[key].set_exception(e)
        try:
            transcriber = PackedTranscriber(asr, **pack_options)
            futures, jobs = transcriber.plan(audios)
        except BaseException as e:  # noqa: BLE001
            for key in keys:
                outer[key].set_exception(e)
            return

        def relay(key, audio):
            def done(f: Future) -> None:
                if f.exception() is not None:
                    outer[key].set_exception(f.exception())
                else:
                    outer[key].set_result((audio, f.result()))
            return done

        for key, audio, f in zip(keys, audios, futures):
            f.add_done_callback(relay(key, audio))
        _run_jobs(jobs, futures)

    executor.submit(work)
    return outer
