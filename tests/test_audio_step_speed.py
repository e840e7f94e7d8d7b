"""The faster audio step: prosody primed beside ASR gives the same cues as one after the other;
faster-whisper's batched pipeline (opt-in, off by default) still gives words with timestamps."""
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
    asr = extractor.asr
    old = asr.batched_min_s
    try:
        asr.batched_min_s = 5.0  # the clips are short: lower the threshold to exercise the pipeline
        t = asr.transcribe(audio, 16_000)
    finally:
        asr.batched_min_s = old
    assert isinstance(t, Transcript) and t.provenance.params["pipeline"] == "batched"
    words = t.words
    assert len(words) >= 8
    assert all(0 <= w.start_s <= w.end_s <= t.duration_s + 1e-6 for w in words)
    assert [w.start_s for w in words] == sorted(w.start_s for w in words)


def test_batched_options_are_checked():
    from textualize.registry import ASR_BACKENDS

    cls = ASR_BACKENDS.get("faster-whisper")
    with pytest.raises(ValueError, match="batched_min_s"):
        cls(batched_min_s=0)
    with pytest.raises(ValueError, match="batch_size"):
        cls(batch_size=0)
