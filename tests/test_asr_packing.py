"""ASR packing (textualize/audio_cues/asr_packing.py): split-back bookkeeping on synthetic word
lists, then real Whisper tiny.en on real CREMA-D demo clips, packed vs one clip at a time."""
from __future__ import annotations

import math
from types import SimpleNamespace

import jiwer
import numpy as np
import pytest

from textualize.audio_cues import asr_packing as P
from textualize.cues import MissingCue, Transcript
from textualize.media import load_audio

SR = 16_000


# ---------------------------------------------------------------- bookkeeping (no model)


def test_plan_packs_greedy_in_order_on_the_timestamp_grid():
    packs, alone = P.plan_packs([2.5, 3.0, 12.0, 9.9, 2.0, math.nan, 0.0, 8.0], max_clip_s=10, max_pack_s=15, gap_s=1)
    assert alone == [2, 5, 6]  # too long, NaN (unpackable), empty
    assert [[s.index for s in p] for p in packs] == [[0, 1], [3, 4], [7]]  # in order, never reordered
    for pack in packs:
        assert pack[0].offset_s == 0.0
        for a, b in zip(pack, pack[1:]):
            assert b.offset_s >= a.end_s + 1.0 - 1e-9  # at least the gap between clips
            assert abs(b.offset_s / P.TIME_STEP_S - round(b.offset_s / P.TIME_STEP_S)) < 1e-6
        assert pack[-1].end_s <= 15 + 1e-9
    with pytest.raises(ValueError):
        P.plan_packs([1.0], max_clip_s=20, max_pack_s=10)


def test_assemble_places_each_clip_at_its_offset():
    slots = [P.Slot(0, 0.0, 0.5), P.Slot(1, 1.5, 0.25)]
    a, b = np.full(8000, 0.1, np.float32), np.full(4000, -0.2, np.float32)
    pack = P.assemble([a, b], slots)
    assert pack.size == round(1.75 * SR)
    assert np.all(pack[:8000] == 0.1) and np.all(pack[8000:24000] == 0) and np.all(pack[24000:] == -0.2)


def test_assign_majority_overlap_then_nearest():
    slots = [P.Slot(0, 0.0, 2.0), P.Slot(1, 3.0, 2.0)]
    assert P.assign(0.5, 0.9, slots) == 0
    assert P.assign(3.2, 3.5, slots) == 1
    assert P.assign(1.3, 3.3, slots) == 0  # 0.7 s in clip 0, 0.3 s in clip 1
    assert P.assign(1.9, 3.5, slots) == 1  # 0.1 s vs 0.5 s
    assert P.assign(2.2, 2.4, slots) == 0  # wholly in the gap, nearer clip 0's end
    assert P.assign(2.7, 2.9, slots) == 1  # wholly in the gap, nearer clip 1's start
    assert P.assign(2.5, 2.5, slots) == 0  # equidistant: the earlier clip


def _seg(words, avg_logprob=-0.3):
    ws = [SimpleNamespace(word=w, start=a, end=b, probability=0.9) for w, a, b in words]
    return SimpleNamespace(words=ws, avg_logprob=avg_logprob, no_speech_prob=0.01, compression_ratio=1.0)


def test_split_segments_rebases_and_splits_a_segment_spanning_two_clips():
    slots = [P.Slot(0, 0.0, 2.0), P.Slot(1, 3.0, 1.5), P.Slot(2, 5.5, 1.0)]
    segs = [_seg([(" Hello", 0.1, 0.5), (" there.", 0.5, 2.1), (" Good", 3.05, 3.4), (" night", 3.4, 4.8)])]
    out = P.split_segments(segs, slots)
    assert [p["text"] for p in out[0]] == ["Hello there."]
    assert [p["text"] for p in out[1]] == ["Good night"]
    assert out[2] == []  # nothing said in the third clip: none of its neighbours' words
    assert out[0][0]["words"][-1][2] == 2.0  # clamped to the clip's length
    assert out[1][0]["words"][0][1] == pytest.approx(0.05) and out[1][0]["words"][-1][2] == 1.5
    for k, parts in enumerate(out):
        for p in parts:
            for _, a, b, _ in p["words"]:
                assert 0.0 <= a <= b <= slots[k].length_s


def test_fallback_reason_applies_whispers_checks_per_clip():
    opts = {"log_prob_threshold": -1.0, "compression_ratio_threshold": 2.4}
    ok = [{"text": "Don't forget a jacket", "avg_logprob": -0.2}]
    assert P.fallback_reason(ok, opts) is None
    assert P.fallback_reason([], opts) == "no_words_in_pack"
    assert P.fallback_reason([{"text": "x", "avg_logprob": -1.5}], opts) == "low_avg_logprob"
    loop = [{"text": "they're not linked up, " * 8, "avg_logprob": -0.2}]
    assert P.fallback_reason(loop, opts) == "high_compression_ratio"
    assert P.fallback_reason(loop, {"log_prob_threshold": None, "compression_ratio_threshold": None}) is None


def test_pack_decode_options_never_condition_on_other_clips():
    o = P.pack_decode_options({"beam_size": 5, "temperature": [0.0, 0.2], "condition_on_previous_text": True,
                               "initial_prompt": "leak"})
    assert o["condition_on_previous_text"] is False and o["initial_prompt"] is None and o["temperature"] == 0.0


# ---------------------------------------------------------------- real Whisper tiny.en, real clips


@pytest.fixture(scope="module")
def fw():
    from textualize.registry import ASR_BACKENDS

    return ASR_BACKENDS.get("faster-whisper")(cpu_threads=1)


@pytest.fixture(scope="module")
def clips(crema_d):
    return [load_audio(p, SR) for p in sorted(crema_d.glob("1002_*.mp3"))[:3]]


def _norm(t: str) -> str:
    return jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(), jiwer.Strip()])(t)


def test_real_packed_matches_per_clip_and_words_stay_in_their_clip(fw, clips):
    """3 real CREMA-D clips in one pack: text close to one-at-a-time decoding, word times close,
    every word inside its own clip and its VAD speech."""
    solo = [fw.transcribe(a) for a in clips]
    transcriber = P.PackedTranscriber(fw)
    packed = transcriber.transcribe_many(clips)
    assert transcriber.stats["packs"] == 1 and transcriber.stats["packed_clips"] + transcriber.stats["fallback"] == 3
    assert all(isinstance(t, Transcript) for t in packed)
    w = jiwer.wer([_norm(s.text) for s in solo], [_norm(p.text) for p in packed])
    assert w <= 0.2, [(s.text, p.text) for s, p in zip(solo, packed)]
    diffs = []
    for a, s, p in zip(clips, solo, packed):
        assert p.duration_s == pytest.approx(a.size / SR)
        assert p.vad_segments == s.vad_segments
        assert p.provenance.params["pipeline"] in ("packed", "sequential")
        for word in p.words:
            assert 0.0 <= word.start_s <= word.end_s <= p.duration_s + 1e-6
            assert any(lo - 0.05 <= word.start_s <= hi + 0.05 for lo, hi in p.vad_segments), word
        if [x.text for x in s.words] == [x.text for x in p.words]:
            diffs += [abs(x.start_s - y.start_s) for x, y in zip(s.words, p.words)]
    assert diffs and float(np.median(diffs)) < 0.1, diffs


def test_real_silent_slot_in_a_pack_gets_no_words(fw, clips):
    """Silence forced into a pack (the VAD gate keeps silent clips out: see the next test) gets none
    of its neighbours' words, and the neighbours keep theirs. Whisper may still hallucinate a word
    on pure silence ("You"), exactly as it does on that silence decoded alone."""
    voiced = [clips[0], np.zeros(2 * SR, np.float32), clips[1]]
    packs, _ = P.plan_packs([v.size / SR for v in voiced])
    slots = packs[0]
    assert len(slots) == 3
    out, _ = P.decode_per_clip(fw.model, P.assemble(voiced, slots), slots,
                               P.pack_decode_options(fw.transcribe_options), None)
    silent_text = " ".join(_norm(p["text"]) for p in out[1])
    assert not {"forget", "jacket", "check", "dont"} & set(silent_text.split()), silent_text
    assert len(silent_text.split()) <= 2
    assert all(0.0 <= a <= b <= slots[1].length_s for p in out[1] for _, a, b, _ in p["words"])
    assert all(out[k] and "forget" in _norm(out[k][0]["text"]) for k in (0, 2))


def test_real_silent_and_bad_clips_are_their_own_results(fw, clips):
    bad = (clips[1] * 32767).astype(np.int16)
    results = P.PackedTranscriber(fw).transcribe_many([clips[0], np.zeros(3 * SR, np.float32), bad, clips[2]])
    assert isinstance(results[0], Transcript) and isinstance(results[3], Transcript)
    assert isinstance(results[1], MissingCue) and results[1].reason == "no_speech"
    assert isinstance(results[2], ValueError) and "floating-point" in str(results[2])
    assert "forget" in _norm(results[3].text)


def test_extraction_with_packing_is_cached_per_clip_and_records_failures(crema_d, tmp_path):
    from textualize.extract import ExtractConfig, part_keys, run_extraction

    paths = sorted(crema_d.glob("1002_*.mp3"))[:2]
    items = [(p.stem, p) for p in paths] + [("missing", tmp_path / "nope.mp3")]
    config = ExtractConfig(visual=False, save_sequences=False, asr_pack_short_clips=True)
    assert part_keys("x" * 64, config) != part_keys("x" * 64, ExtractConfig(visual=False, save_sequences=False))
    out = tmp_path / "cues"
    s1 = run_extraction(items, out, config, progress=False)
    assert (s1.done, s1.failed) == (2, 1) and s1.failures[0]["clip_id"] == "missing"
    from textualize.extract import load_clip

    for p in paths:
        cues = load_clip(out, p.stem)
        assert isinstance(cues.transcript, Transcript) and "forget" in _norm(cues.transcript.text)
        assert cues.transcript.provenance.params["pipeline"] in ("packed", "sequential")
    s2 = run_extraction(items, out, config, progress=False)
    assert (s2.cached, s2.done, s2.failed) == (2, 0, 1)


# ---------------------------------------------------------------- batched decoding of a pack (PACK_VERSION 2)


def test_batch_size_must_be_positive(fw):
    with pytest.raises(ValueError, match="batch_size"):
        P.PackedTranscriber(fw, batch_size=0)


@pytest.fixture(scope="module")
def emodb_clips(shared_dir):
    folder = shared_dir / "data" / "emodb"
    wavs = sorted(folder.glob("*.wav"))
    if not wavs:
        pytest.skip(f"EmoDB clips not found under {folder}")
    return [load_audio(p, SR) for p in wavs[:: max(1, len(wavs) // 6)][:6]]


def test_real_batched_pack_matches_one_by_one_and_per_clip(fw, crema_d):
    """All 12 real CREMA-D clips: the pack's clips decoded in one batched generate/align call give
    the transcripts of the one-by-one decode (WER <= 0.05) and of per-clip transcription
    (WER <= 0.15), and provenance says how each clip was decoded."""
    clips = [load_audio(p, SR) for p in sorted(crema_d.iterdir())]
    solo = [fw.transcribe(a) for a in clips]
    one = P.PackedTranscriber(fw, batch_size=1).transcribe_many(clips)
    batched_tr = P.PackedTranscriber(fw)
    batched = batched_tr.transcribe_many(clips)
    assert batched_tr.stats["packs"] >= 2 and batched_tr.stats["packed_clips"] >= 10
    text = lambda ts: [_norm(t.text) for t in ts]  # noqa: E731
    assert jiwer.wer(text(one), text(batched)) <= 0.05, list(zip(text(one), text(batched)))
    assert jiwer.wer(text(solo), text(batched)) <= 0.15, list(zip(text(solo), text(batched)))
    for a, t in zip(clips, batched):
        params = t.provenance.params
        if params["pipeline"] == "packed":
            assert params["pack"]["decoding"] == "own_view_batched" and params["pack"]["version"] == P.PACK_VERSION
            assert 1 <= params["pack"]["decode_batch"] <= params["pack"]["clips"] and params["pack"]["beam_size"] == 5
        for w in t.words:
            assert 0.0 <= w.start_s <= w.end_s <= a.size / SR + 1e-6


def test_real_batched_rows_are_isolated(fw, clips):
    """A clip's batched decode does not depend on its batch mates' text: a pack of a clip and
    silence decodes that clip as in a batch of one; the silent row gets none of its words."""
    voiced = [clips[0], np.zeros(2 * SR, np.float32), clips[2]]
    packs, _ = P.plan_packs([v.size / SR for v in voiced])
    options = P.pack_decode_options(fw.transcribe_options)
    audio = P.assemble(voiced, packs[0])
    one, _ = P.decode_per_clip(fw.model, audio, packs[0], options, None, batch_size=1)
    batched, _ = P.decode_per_clip(fw.model, audio, packs[0], options, None, batch_size=3)
    for k in (0, 2):
        assert _norm(batched[k][0]["text"]) == _norm(one[k][0]["text"])
        assert "forget" in _norm(batched[k][0]["text"])
    silent = " ".join(_norm(p["text"]) for p in batched[1])
    assert not {"forget", "jacket", "check", "dont"} & set(silent.split()), silent


def test_real_clip_failing_its_checks_falls_back_alone(fw, clips, monkeypatch):
    """One clip of a batched pack fails Whisper's per-clip checks (forced here for the clip whose
    text says "check": the real checks are tested above): only that clip is transcribed again on
    its own; its pack mates keep their batched decode."""
    real = P.fallback_reason

    def strict(parts, options):
        if any("check" in _norm(p["text"]) for p in parts):
            return "low_avg_logprob"
        return real(parts, options)

    monkeypatch.setattr(P, "fallback_reason", strict)
    tr = P.PackedTranscriber(fw)
    results = tr.transcribe_many(clips)
    kinds = [r.provenance.params["pipeline"] for r in results]
    fell = [r for r in results if r.provenance.params.get("pack_fallback")]
    assert fell and tr.stats["fallback"] == len(fell) < len(clips)
    for r in fell:
        assert r.provenance.params["pipeline"] == "sequential" and r.provenance.params["pack_fallback"] == "low_avg_logprob"
    assert kinds.count("packed") == len(clips) - len(fell) >= 1


def test_real_emodb_batched_pack_keeps_each_clips_result(fw, emodb_clips):
    """Real EmoDB (German speech through English tiny.en: many clips fail Whisper's checks): every
    clip gets its own Transcript or MissingCue, either packed (batched) or redone alone, never an
    exception; the packed ones say so in their provenance."""
    tr = P.PackedTranscriber(fw)
    results = tr.transcribe_many(emodb_clips)
    assert len(results) == len(emodb_clips)
    assert all(isinstance(r, (Transcript, MissingCue)) for r in results), results
    done = [r for r in results if isinstance(r, Transcript)]
    assert tr.stats["packed_clips"] + tr.stats["fallback"] + tr.stats["alone"] == len(done)
    for r in done:
        p = r.provenance.params
        assert (p["pipeline"] == "packed") != bool(p.get("pack_fallback")), p
