"""The faster audio step: prosody primed beside ASR gives the same cues as one after the other;
faster-whisper's batched pipeline (on by default from 60 s, greedy) still gives words with
timestamps, and long voiced stretches are cut into windows that fit Whisper's 30 s."""
from __future__ import annotations

import math

import numpy as np
import pytest

from textualize.cues import ProsodyCues, Transcript, to_json
from textualize.media import load_audio


@pytest.fixture(scope="module")
def extractor():
    from textualize.extract import CueExtractor, ExtractConfig

    return CueExtractor(ExtractConfig(visual=False))


def _same(a, b):
    """JSON forms equal, NaN == NaN."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-12)
    return a == b


@pytest.mark.slow
def test_concurrent_prosody_gives_the_same_cues(extractor, crema_d):
    from textualize.audio_cues.speech_rate import LastClipMemo

    clip = crema_d / "1002_DFA_ANG_XX.mp3"
    out = {}
    for concurrent in (False, True):
        for k, v in list(vars(extractor.prosody).items()):  # no reuse across the two runs
            if isinstance(v, LastClipMemo):
                setattr(extractor.prosody, k, LastClipMemo())
        extractor.concurrent_prosody = concurrent
        cues, seq = extractor.extract(clip, "c", parts={"audio"})
        out[concurrent] = (cues, seq)
    (a, sa), (b, sb) = out[False], out[True]
    assert isinstance(a.prosody, ProsodyCues) and isinstance(a.transcript, Transcript)
    assert _same(to_json(a.prosody), to_json(b.prosody))
    assert _same(to_json(a.transcript), to_json(b.transcript))
    np.testing.assert_array_equal(sa["audio_lld"], sb["audio_lld"])


@pytest.mark.slow
def test_batched_pipeline_on_long_audio_keeps_word_timestamps(extractor, crema_d):
    audio = np.concatenate([load_audio(p, 16_000) for p in sorted(crema_d.glob("1002_*.mp3"))[:4]])
    t = _transcribe_batched(extractor.asr, audio, 5.0)  # the clips are short: a low threshold exercises the pipeline
    assert isinstance(t, Transcript) and t.provenance.params["pipeline"] == "batched"
    assert t.provenance.params["beam_size"] == 1  # the default on the batched path: greedy
    words = t.words
    assert len(words) >= 8
    assert all(0 <= w.start_s <= w.end_s <= t.duration_s + 1e-6 for w in words)
    assert [w.start_s for w in words] == sorted(w.start_s for w in words)


def _transcribe_batched(asr, audio, min_s: float):
    """The shared model's transcript with the batched pipeline on from ``min_s`` seconds, setting restored."""
    old = asr.batched_min_s
    try:
        asr.batched_min_s = min_s
        return asr.transcribe(audio, 16_000)
    finally:
        asr.batched_min_s = old


def test_voiced_windows_cut_between_chunks_and_fit_30_s():
    from textualize.audio_cues.asr_faster_whisper import voiced_windows

    sr = 16_000
    chunks = [{"start": a * sr, "end": b * sr} for a, b in [(0, 12), (13, 25), (27, 33), (40, 75), (80, 81)]]
    windows = voiced_windows(chunks, window_s=30.0)
    # voiced time: 12 + 12 + 6 = 30 s fits one window; the 35 s chunk stands alone; then 1 s
    assert windows == [{"start": 0.0, "end": 30.0}, {"start": 30.0, "end": 65.0}, {"start": 65.0, "end": 66.0}]
    assert voiced_windows([]) == []


@pytest.mark.slow
def test_batched_pipeline_splits_a_long_voiced_stretch_into_whole_windows(extractor, espeak_wav):
    """Regression: one voiced stretch over 30 s (pauses under Silero's 2 s) once made faster-whisper's
    batched pipeline align over more mel frames than its window held and abort the process."""
    from textualize.audio_cues.asr_faster_whisper import speech_chunks

    sentence = load_audio(espeak_wav, 16_000)
    gap = np.zeros(int(0.3 * 16_000), np.float32)
    audio = np.concatenate([x for _ in range(8) for x in (sentence, gap)])  # ~49 s, 8 x 16 words
    asr = extractor.asr
    (chunk,), _ = speech_chunks(audio, asr._vad_options)  # Silero alone: one 49 s stretch
    assert (chunk["end"] - chunk["start"]) / 16_000 > 40
    t = _transcribe_batched(asr, audio, 30.0)
    assert isinstance(t, Transcript) and t.provenance.params["pipeline"] == "batched"
    assert t.provenance.params["windows"] == 2
    assert all(b - a <= 29.0 + 1e-6 for a, b in t.vad_segments)  # the gate's cut when batching
    words = t.words
    assert 8 * 16 * 0.9 <= len(words) <= 8 * 16 * 1.1
    assert all(0 <= w.start_s <= w.end_s <= t.duration_s + 1e-6 for w in words)
    assert [w.start_s for w in words] == sorted(w.start_s for w in words)
    assert words[-1].end_s > t.duration_s - 3.0  # the end is transcribed, not cut off


def test_batched_options_are_checked():
    from textualize.extract import CueExtractor, ExtractConfig
    from textualize.registry import ASR_BACKENDS

    asr = CueExtractor(ExtractConfig(visual=False, asr_batched_min_s=90, asr_batched_beam_size=2)).asr
    assert (asr.batched_min_s, asr.batched_beam_size) == (90.0, 2)
    assert CueExtractor(ExtractConfig(visual=False, asr_batched_min_s=None)).asr.batched_min_s is None

    cls = ASR_BACKENDS.get("faster-whisper")
    with pytest.raises(ValueError, match="batched_min_s"):
        cls(batched_min_s=0)
    with pytest.raises(ValueError, match="batch_size"):
        cls(batch_size=0)


def test_opensmile_prepare_runs_one_pass_for_measure_and_lld(crema_d):
    """Beside ASR, ``prepare`` runs openSMILE once for both levels; ``measure`` and ``lld`` of the
    same clip reuse it (the functionals used to be a second pass, after ASR, alone on one core)."""
    from textualize.audio_cues.prosody_opensmile import OpenSmileProsody

    backend = OpenSmileProsody()
    calls = []
    both = backend._compute_both
    backend._compute_both = lambda x: (calls.append(x.size), both(x))[1]
    audio = load_audio(crema_d / "1002_DFA_ANG_XX.mp3", 16_000)
    backend.prepare(audio)
    cues = backend.measure(audio)
    backend.lld(audio)
    assert calls == [audio.size]
    assert isinstance(cues, ProsodyCues) and len(cues.functionals) == 88
    backend.prepare(np.zeros(100, np.float32))  # too short / silent: nothing to prepare, no error
    assert len(calls) == 1


def test_opensmile_one_pass_equals_the_two_single_level_runs(crema_d):
    """The two-sink pass gives exactly what ``opensmile.Smile`` gives level by level."""
    import opensmile

    from textualize.audio_cues.prosody_opensmile import OpenSmileProsody

    backend = OpenSmileProsody()
    audio = load_audio(crema_d / "1002_DFA_ANG_XX.mp3", 16_000)
    (names, times, values), functionals = backend._compute_both(audio)
    lld_smile = backend._smile()
    func_smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                 feature_level=opensmile.FeatureLevel.Functionals)
    lld = lld_smile.process_signal(audio, 16_000)
    func = func_smile.process_signal(audio, 16_000)
    assert names == list(lld.columns) and list(functionals) == list(func.columns)
    np.testing.assert_allclose(values, lld.to_numpy(), rtol=1e-6, atol=1e-9)
    start = lld.index.get_level_values("start").total_seconds().to_numpy()
    end = lld.index.get_level_values("end").total_seconds().to_numpy()
    np.testing.assert_allclose(times, (start + end) / 2, atol=1e-6)
    np.testing.assert_allclose(list(functionals.values()), func.iloc[0].to_numpy(), rtol=1e-6, atol=1e-9)
