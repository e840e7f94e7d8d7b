"""Converters on real cue records: py-feat AU tables, MELD dialogue text, EmoDB prosody."""
from __future__ import annotations

import csv
import math
import random

import pytest

from textualize.converters import FRAGMENT_KEYS, textualize_sample
from textualize.converters.config import FaceConfig, ProsodyConfig, TextualizeConfig, TranscriptConfig
from textualize.converters.face import describe_aus, face_fragment, window_summary
from textualize.converters.prosody import prosody_fragment
from textualize.converters.transcript import clean_text, collapse_repeats, context_fragment, transcript_fragment
from textualize.corpora.base import Sample
from textualize.cues import (
    AUStats, ClipCues, FacialCues, MediaInfo, MissingCue, ProsodyCues, ProsodyMeasures, SpeechSegment,
    Transcript, from_json, to_json,
)
from textualize.normalization import fit_norm_stats
from textualize.visual_cues.temporal import summarize_aus

NEWS_FPS = 25.0  # the py-feat news sample videos; their tables hold every 2nd frame


def pyfeat_table(path, fps=None) -> FacialCues:
    """A real py-feat Fex CSV imported with the project's csv AU backend."""
    from textualize.registry import AU_BACKENDS

    cues = AU_BACKENDS.get("pyfeat-csv")(fps=fps).from_table(str(path))
    assert isinstance(cues, FacialCues), cues
    return cues


def st(mean, mx=None, frac=1.0, peak=0.0, onset=0.0, sustained=False) -> AUStats:
    return AUStats(mean=mean, max=mean if mx is None else mx, peak_time_s=peak, onset_time_s=onset,
                   active_fraction=frac, sustained=sustained)


# ---------------------------------------------------------------- transcript


def test_clean_text_quotes_mojibake_and_spaces():
    assert clean_text("Oh my God, he’s lost it.  He’s totally  lost it. ") == "Oh my God, he's lost it. He's totally lost it."
    assert clean_text("“Quote” ‘single’") == "\"Quote\" 'single'"
    assert clean_text("He\x92s here") == "He's here"  # cp1252 apostrophe read as Latin-1 (MELD)
    assert clean_text("Youâ€™re a genius!") == "You're a genius!"  # UTF-8 read as cp1252
    assert clean_text("Â Oh, Â\xa0hi") == "Oh, hi"
    assert clean_text("Wait…what—now") == "Wait...what - now"
    assert clean_text("a\u200bb\x00c") == "abc"
    assert clean_text("   ") == ""


def test_meld_dev_utterances_have_no_curly_quotes_after_cleaning(shared_dir):
    rows = list(csv.DictReader(open(shared_dir / "data/meld/dev_sent_emo.csv", encoding="utf-8")))
    curly = [r["Utterance"] for r in rows if any(c in r["Utterance"] for c in "’‘“”")]
    assert len(curly) > 50  # the real file has them
    for u in curly:
        out = clean_text(u)
        assert not any(c in out for c in "’‘“”…") and out == out.strip() and "  " not in out


def test_whisper_markers_hallucinations_and_loops_are_dropped():
    asr = Transcript(
        text="", language="en", language_probability=0.99, duration_s=6.0,
        segments=[
            SpeechSegment(" [Music] I'm sorry. I'm sorry. I'm sorry. I'm sorry. I'm sorry.", 0.0, 3.0),
            SpeechSegment(" Thanks for watching!", 3.0, 4.0),
            SpeechSegment(" you", 4.0, 5.0, no_speech_prob=0.92, avg_logprob=-1.4),  # Whisper's silence rule
            SpeechSegment(" ♪ la la la ♪ Okay, fine (upbeat music).", 5.0, 6.0),
        ],
    )
    assert transcript_fragment(asr, TranscriptConfig()) == "I'm sorry. I'm sorry. I'm sorry. Okay, fine."
    kept = transcript_fragment(asr, TranscriptConfig(drop_markers=False, max_repeats=0, hallucination_phrases=(),
                                                     drop_silence_segments=False))
    assert "[Music]" in kept and "Thanks for watching!" in kept and kept.count("I'm sorry") == 5 and " you " in kept
    # a real triple "no" survives the default (up to 3 copies), a decoding loop does not
    assert collapse_repeats("No, no, no! Get out.", 3) == "No, no, no! Get out."
    assert collapse_repeats("go go go go go go go home", 3) == "go go go home"
    # segment-less transcripts are cleaned as a whole
    plain = Transcript(text=" [BLANK_AUDIO] ", language="en", language_probability=1.0, duration_s=1.0)
    assert transcript_fragment(plain, TranscriptConfig()) == "(no speech transcribed)"


def test_gold_vs_asr_and_missing_markers():
    asr = Transcript(text=" Don’t forget a jacket. ", language="en", language_probability=1.0, duration_s=2.0)
    assert transcript_fragment(asr, TranscriptConfig(), gold="Dont forget a jacket") == "Dont forget a jacket"
    assert transcript_fragment(asr, TranscriptConfig(prefer_gold=False), gold="Dont forget") == "Don't forget a jacket."
    assert transcript_fragment(asr, TranscriptConfig()) == "Don't forget a jacket."
    assert transcript_fragment(MissingCue("no_speech"), TranscriptConfig()) == "(no speech detected)"
    assert transcript_fragment(MissingCue("no_audio_track"), TranscriptConfig()) == "(no audio track)"
    # an ASR failure falls back to gold even when ASR is preferred
    assert transcript_fragment(MissingCue("no_speech"), TranscriptConfig(prefer_gold=False), gold="Hi.") == "Hi."
    assert transcript_fragment(None, TranscriptConfig(), gold="  ") == "(no speech transcribed)"
    assert transcript_fragment(None, TranscriptConfig()) == "(no speech transcribed)"


def test_dialogue_context_from_real_meld_dialogue(shared_dir):
    rows = list(csv.DictReader(open(shared_dir / "data/meld/dev_sent_emo.csv", encoding="utf-8")))
    dia = [r for r in rows if r["Dialogue_ID"] == "1"]
    assert len(dia) >= 3
    history = [(r["Speaker"], r["Utterance"]) for r in dia[:-1]]
    text = context_fragment(history, TranscriptConfig(context_turns=2))
    lines = text.splitlines()
    assert len(lines) == 2
    for (speaker, utt), line in zip(history[-2:], lines):
        assert line == f"{speaker}: {clean_text(utt)}"
    assert context_fragment(history, TranscriptConfig(context_turns=0)) == ""
    assert context_fragment([], TranscriptConfig(context_turns=3)) == ""
    long = context_fragment([("Ross", "word " * 200)], TranscriptConfig(context_turns=1, max_context_chars=40))
    assert long.startswith("Ross: word") and long.endswith(" ...") and len(long) < 60


# ---------------------------------------------------------------- face


def test_real_pyfeat_frame_probability_thresholds_and_order(pyfeat_data):
    face = pyfeat_table(pyfeat_data / "Feat_Test.csv")
    assert face.au_scale == "probability" and len(face.times_s) == 1
    # AU25 .966, AU12 .964, AU10 .927 (>= .9 strong), AU06 .874 (moderate), AU07 .695, AU14 .647,
    # AU01 .563, AU02 .511 (weak) -- top 5, strongest first; one image: no temporal words
    assert face_fragment(face, FaceConfig()) == (
        "strong lips part (AU25), strong lip corner puller (AU12), strong upper lip raiser (AU10), "
        "moderate cheek raiser (AU06), weak lid tightener (AU07)"
    )
    everything = face_fragment(face, FaceConfig(top_n=50))
    assert everything.count("(AU") == 8 and everything.endswith("weak outer brow raiser (AU02)")
    assert face_fragment(face, FaceConfig(), mode="numeric").startswith("AU25 p=0.97, AU12 p=0.96, AU10 p=0.93")
    assert face_fragment(face, FaceConfig(emotions_top_k=2)).endswith("; face looks happy (0.99), surprised (0.01)")


def test_thresholds_are_per_scale():
    summary = {"AU12": st(0.6), "AU04": st(2.4), "AU01": st(0.35)}
    cfg = FaceConfig()
    # probability: 0.6 active ("weak"); 0.35 not; 2.4 is not a probability but >= .9 -> strong
    assert describe_aus({"AU12": st(0.6), "AU01": st(0.35)}, "probability", cfg) == "weak lip corner puller (AU12)"
    # OpenFace 0-5: 0.6 and 0.35 are below trace level (1.0)
    assert describe_aus(summary, "intensity_0_5", cfg) == "moderate brow lowerer (AU04)"
    assert describe_aus(summary, "intensity_0_5", cfg, mode="numeric") == "AU04 2.4/5"
    assert describe_aus({"AU04": st(3.2)}, "intensity_0_5", cfg) == "strong brow lowerer (AU04)"
    assert describe_aus({"AU04": st(1.0)}, "intensity_0_5", cfg) == "slight brow lowerer (AU04)"
    # blendshape activation: 0.35 slight, 0.6 moderate
    assert describe_aus({"AU12": st(0.6), "AU01": st(0.35)}, "activation", cfg) == (
        "moderate lip corner puller (AU12), slight inner brow raiser (AU01)"
    )
    with pytest.raises(ValueError, match="no AU thresholds for scale 'percent'"):
        describe_aus(summary, "percent", cfg)


def test_ordering_top_n_and_statistic():
    summary = {"AU06": st(0.2, 2.0, frac=0.5), "AU12": st(0.5, 3.5, frac=0.2), "AU25": st(1.0, 2.0, frac=0.9)}
    # apex (max) on the intensity scale: AU12 first; AU25 and AU06 tie at 2.0 -> longer activity first
    assert describe_aus(summary, "intensity_0_5", FaceConfig(), mode="numeric") == "AU12 3.5/5, AU25 2.0/5, AU06 2.0/5"
    assert describe_aus(summary, "intensity_0_5", FaceConfig(top_n=1)) == "strong lip corner puller (AU12)"
    # probability is graded on the mean: a one-frame spike is not an active AU
    spike = {"AU24": st(0.2, 0.98, frac=0.05), "AU10": st(0.77, 0.98, frac=0.8)}
    assert describe_aus(spike, "probability", FaceConfig()) == "moderate upper lip raiser (AU10)"
    # cue tables may give only means: max NaN -> the mean is used
    assert describe_aus({"AU12": st(2.5, math.nan)}, "intensity_0_5", FaceConfig()) == "moderate lip corner puller (AU12)"


def test_temporal_words():
    cfg = FaceConfig()
    span = (0.0, 3.0)
    words = describe_aus(
        {
            "AU12": st(1.8, 3.4, frac=0.9, peak=1.0, onset=0.0, sustained=True),
            "AU04": st(0.3, 2.2, frac=0.1, peak=2.8, onset=2.6),  # starts in the last third
            "AU01": st(0.9, 1.5, frac=0.5, peak=2.5, onset=0.2),  # peaks in the last third
            "AU06": st(1.9, 2.0, frac=0.9, peak=2.9, onset=0.0),  # flat: its argmax is noise
        },
        "intensity_0_5", cfg, span=span,
    )
    assert words == (
        "sustained strong lip corner puller (AU12), brief moderate brow lowerer (AU04) appearing late, "
        "moderate cheek raiser (AU06), slight inner brow raiser (AU01) peaking late"
    )
    assert describe_aus({"AU12": st(1.8, 3.4, sustained=True)}, "intensity_0_5", FaceConfig(temporal=False), span=span) \
        == "strong lip corner puller (AU12)"


def test_real_news_clips_temporal_summary_and_windows(shared_dir):
    good = pyfeat_table(shared_dir / "data/pyfeat_news_sample/001.csv", fps=NEWS_FPS)
    assert len(good.times_s) == 20 and good.times_s[-1] == pytest.approx(38 / NEWS_FPS)
    text = face_fragment(good, FaceConfig(emotions_top_k=1))
    # a news anchor smiling through good news: AU12 present in every frame for 1.5 s
    assert text.startswith("sustained strong lip corner puller (AU12)")
    assert text.endswith("; face looks happy (0.97)")
    bad = face_fragment(pyfeat_table(shared_dir / "data/pyfeat_news_sample/015.csv", fps=NEWS_FPS), FaceConfig())
    assert "lip corner puller" not in bad and "inner brow raiser (AU01)" in bad
    # a window recomputes the statistics from the frames inside it
    summary, rows = window_summary(good, 0.5, 1.0)
    assert [good.times_s[t] for t in rows] == pytest.approx([0.56, 0.64, 0.72, 0.8, 0.88, 0.96])
    k = good.au_names.index("AU06")
    assert summary["AU06"].mean == pytest.approx(sum(good.au_values[t][k] for t in rows) / len(rows))
    assert summary["AU06"].mean != pytest.approx(good.au_summary["AU06"].mean)
    assert summary == summarize_aus(good.au_names, good.au_values, good.times_s, "probability", 0.5, 1.0)
    windowed = face_fragment(good, FaceConfig(), start_s=0.5, end_s=0.7)
    assert "sustained" not in windowed  # 3 frames = 0.24 s cannot be sustained (>= 0.5 s)
    assert "lip corner puller (AU12)" in windowed
    assert face_fragment(good, FaceConfig(), start_s=0.57, end_s=0.6) == "no video frames sampled between 0.57 and 0.60 s"
    with pytest.raises(ValueError, match="before its start"):
        face_fragment(good, FaceConfig(), start_s=1.0, end_s=0.5)


def test_face_missing_markers(shared_dir):
    cfg = FaceConfig()
    assert face_fragment(MissingCue("no_face"), cfg) == "no face detected"
    assert face_fragment(MissingCue("no_video_track"), cfg) == "no video (audio only)"
    assert face_fragment(None, cfg) == "face not analysed"
    face = pyfeat_table(shared_dir / "data/pyfeat_news_sample/002.csv", fps=NEWS_FPS)
    gone = FacialCues(**{**face.__dict__, "face_present": [False] * len(face.times_s)})
    assert face_fragment(gone, cfg) == "no face detected"
    half = [t % 2 == 0 for t in range(len(face.times_s))]
    values = [row if p else [math.nan] * len(row) for row, p in zip(face.au_values, half)]
    partly = FacialCues(**{**face.__dict__, "face_present": half, "au_values": values,
                           "au_summary": summarize_aus(face.au_names, values, face.times_s, face.au_scale)})
    assert face_fragment(partly, cfg).startswith("face visible in 50% of frames; ")
    calm = {au: st(0.1) for au in face.au_names}
    assert face_fragment(FacialCues(**{**face.__dict__, "au_summary": calm}), cfg) == "no facial action units active"


def test_summary_only_face_cues_from_a_cue_table():
    face = FacialCues(au_names=["AU04", "AU12"], au_scale="intensity_0_5", times_s=[],
                      au_summary={"AU12": st(2.1, math.nan, frac=math.nan), "AU04": st(0.4, math.nan, frac=math.nan)},
                      emotion_names=["happiness", "sadness"], emotion_values=[[0.8, 0.1]])
    assert face_fragment(face, FaceConfig(emotions_top_k=1)) == "moderate lip corner puller (AU12); face looks happy (0.80)"
    assert face_fragment(face, FaceConfig(emotions_top_k=2), mode="numeric") == (
        "AU12 2.1/5; face emotion scores: happiness 0.80, sadness 0.10"
    )


# ---------------------------------------------------------------- prosody


def realistic_rows(n=120, seed=0):
    """Training rows drawn around typical adult-speech values (two speakers, one higher-pitched)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        speaker = "f1" if i % 2 else "m1"
        base = 36.0 if speaker == "f1" else 26.0  # ~220 Hz vs ~120 Hz in semitones re 27.5 Hz
        rows.append((speaker, {
            "pitch_mean_st": rng.gauss(base, 1.5), "pitch_sd_st": abs(rng.gauss(2.5, 0.8)),
            "loudness_mean": abs(rng.gauss(0.9, 0.3)), "loudness_sd": abs(rng.gauss(0.5, 0.15)),
            "speaking_rate_syl_per_s": rng.gauss(4.5, 0.8), "pause_ratio": rng.uniform(0.0, 0.3),
            "jitter_local": abs(rng.gauss(0.02, 0.006)), "shimmer_local_db": abs(rng.gauss(1.1, 0.25)),
            "hnr_db": rng.gauss(8.0, 2.5),
        }))
    return rows


def measures(**kw) -> ProsodyMeasures:
    base = dict(start_s=0.0, end_s=2.5, pitch_mean_hz=212.0, pitch_mean_st=35.3, pitch_sd_st=4.5, loudness_mean=1.5,
                loudness_sd=0.5, speaking_rate_syl_per_s=3.0, pause_count=2.0, pause_ratio=0.15,
                jitter_local=0.021, shimmer_local_db=1.1, hnr_db=8.0)
    base.update(kw)
    return ProsodyMeasures(**base)


def test_prosody_words_from_fitted_norm_stats():
    ns = fit_norm_stats(realistic_rows(), min_per_speaker=10)
    f1_edges = ns.speakers["f1"]["pitch_mean_st"].edges
    m = measures(pitch_mean_st=(f1_edges[1] + f1_edges[2]) / 2)  # f1's median pitch, ~36 st (220 Hz)
    cfg = ProsodyConfig()
    # against everybody it is "high" (half the training voices are ~120 Hz) ...
    dataset = prosody_fragment(m, cfg, ns, speaker=None)
    assert dataset.startswith("high pitch, very high pitch variation, very high loudness, moderate loudness variation, "
                              "very slow speaking rate, ")
    # ... but for the higher-pitched speaker it is "moderate" (her mean): per-speaker bins
    assert prosody_fragment(m, cfg, ns, speaker="f1").startswith("moderate pitch, ")
    assert prosody_fragment(m, cfg, ns, speaker="m1").startswith("very high pitch, ")
    assert prosody_fragment(m, ProsodyConfig(per_speaker=False), ns, speaker="f1") == dataset
    assert prosody_fragment(m, cfg, ns, speaker="unknown") == dataset  # no stats -> dataset level
    six = ProsodyConfig(extra_measures=())  # the six core measures only (earlier versions' prompts)
    assert prosody_fragment(measures(pause_count=0.0, pause_ratio=0.0), six, ns).endswith(
        "no pauses; levels relative to the training set")
    vq = prosody_fragment(m, ProsodyConfig(voice_quality=True), ns)
    assert vq.endswith("moderate jitter, moderate shimmer, moderate harmonics-to-noise ratio; "
                       "levels relative to the training set")
    # the words say what they are relative to: the speaker's own clips, or the training set
    assert prosody_fragment(m, cfg, ns, speaker="f1").endswith("; levels relative to this speaker")
    assert prosody_fragment(m, cfg, ns, speaker="unknown").endswith("; levels relative to the training set")
    assert "levels relative" not in prosody_fragment(m, ProsodyConfig(reference_note=False), ns, speaker="f1")


def test_prosody_seven_levels_set_the_bins():
    seven = ("extremely low", "very low", "low", "moderate", "high", "very high", "extremely high")
    cfg = ProsodyConfig()
    assert cfg.bin_words == seven
    assert cfg.quantiles == pytest.approx([i / 7 for i in range(1, 7)], abs=1e-6)
    five = ProsodyConfig(bin_words=seven[1:-1], rate_words=cfg.rate_words[1:-1])
    assert five.quantiles == (0.2, 0.4, 0.6, 0.8)  # five words: the quintiles of earlier versions
    ns = fit_norm_stats(realistic_rows(), quantiles=cfg.quantiles)
    text = prosody_fragment(measures(pitch_mean_st=80.0, loudness_mean=0.0), cfg, ns)
    assert text.startswith("extremely high pitch, ") and "extremely low loudness," in text
    # statistics with five bins (earlier builds) render with the middle five of the seven words
    old = fit_norm_stats(realistic_rows())
    assert prosody_fragment(measures(pitch_mean_st=80.0), cfg, old).startswith("very high pitch, ")
    with pytest.raises(ValueError, match="same number of levels"):
        ProsodyConfig(bin_words=seven[1:-1])


def test_prosody_nan_missing_and_errors():
    ns = fit_norm_stats(realistic_rows())
    cfg = ProsodyConfig()
    text = prosody_fragment(measures(pitch_mean_st=math.nan, pitch_sd_st=math.nan, pitch_mean_hz=math.nan), cfg, ns)
    assert "pitch" not in text.split(";")[0] and text.endswith("; not measurable: pitch, pitch variation")
    nothing = ProsodyMeasures(start_s=0.0, end_s=1.0)
    assert prosody_fragment(nothing, cfg, ns).startswith("no measurable prosody (not measurable: pitch, ")
    assert prosody_fragment(MissingCue("no_speech"), cfg, ns) == "no speech detected"
    assert prosody_fragment(MissingCue("no_audio_track"), cfg, ns) == "no audio track"
    assert prosody_fragment(MissingCue("silence"), cfg, ns) == "no speech detected (silence)"
    with pytest.raises(ValueError, match="words-mode prosody needs fitted NormStats"):
        prosody_fragment(measures(), cfg, None)
    # a measure the training split never had is named, not guessed
    partial = fit_norm_stats([(s, {k: v for k, v in r.items() if k != "pause_ratio"}) for s, r in realistic_rows()])
    assert prosody_fragment(measures(), cfg, partial).endswith("; no training statistics for pauses")
    three = fit_norm_stats(realistic_rows(), quantiles=(1 / 3, 2 / 3))
    assert prosody_fragment(measures(), cfg, three).startswith("high pitch, high pitch variation, high loudness")


def test_prosody_numeric_mode():
    ns = fit_norm_stats(realistic_rows())
    m = measures()
    text = prosody_fragment(ProsodyCues(clip=m), ProsodyConfig(voice_quality=True), ns, mode="numeric")
    z = ns.zscore("pitch_mean_st", m.pitch_mean_st)
    assert text.startswith(f"pitch 212 Hz ({z:+.1f} SD), pitch variation 4.5 st (")
    assert "speaking rate 3.0 syllables/s (" in text and "2 pauses (15% of the time, " in text
    assert "jitter 2.1% (" in text and "shimmer 1.10 dB (" in text and "HNR 8.0 dB (" in text
    # numeric mode works without statistics (no z-scores)
    assert prosody_fragment(m, ProsodyConfig(), None, mode="numeric").startswith(
        "pitch 212 Hz, pitch variation 4.5 st, loudness 1.50 sone, loudness variation 0.50 sone"
    )


@pytest.mark.slow
def test_real_emodb_anger_is_described_louder_than_sadness(shared_dir):
    """Real openSMILE measures of 16 EmoDB clips (speakers 03, 08): the loudness words follow the
    well-known acoustic difference between hot anger and sadness."""
    from textualize.media import load_audio
    from textualize.registry import PROSODY_BACKENDS

    backend = PROSODY_BACKENDS.get("opensmile")()
    files = [f for lab in ("W", "T") for spk in ("03", "08") for f in sorted(shared_dir.glob(f"data/emodb/{spk}*{lab}?.wav"))[:4]]
    assert len(files) == 16
    cues = {f: backend.measure(load_audio(f, 16000), 16000) for f in files}
    assert all(isinstance(c, ProsodyCues) for c in cues.values())
    wanted = ("pitch_mean_st", "pitch_sd_st", "loudness_mean", "loudness_sd", "speaking_rate_syl_per_s", "pause_ratio")
    ns = fit_norm_stats([(f.name[:2], {k: getattr(c.clip, k) for k in wanted}) for f, c in cues.items()])
    levels = ("very low", "low", "moderate", "high", "very high")

    def loudness_level(f):
        text = prosody_fragment(cues[f], ProsodyConfig(), ns, speaker=f.name[:2])
        return levels.index(text.split(" loudness,")[0].split(", ")[-1])

    anger = [loudness_level(f) for f in files if f.name[5] == "W"]
    sadness = [loudness_level(f) for f in files if f.name[5] == "T"]
    # measured: anger 2.5, sadness 1.25 quintile levels on average (chance: equal)
    assert sum(anger) / 8 - sum(sadness) / 8 >= 1.0, (anger, sadness)
    numeric = prosody_fragment(cues[files[0]], ProsodyConfig(), ns, mode="numeric")
    assert numeric.startswith("pitch ") and " Hz (" in numeric and "sone" in numeric


# ---------------------------------------------------------------- one sample


def test_textualize_sample_with_precomputed_and_clip_cues(shared_dir):
    face = pyfeat_table(shared_dir / "data/pyfeat_news_sample/001.csv", fps=NEWS_FPS)
    ns = fit_norm_stats(realistic_rows())
    sample = Sample(id="news-001", label="good", split="test", speaker="f1", transcript="Your loan has been approved",
                    context=[("Banker", "I have news for you…"), ("Client", "Tell me!")],
                    precomputed={"face": face, "prosody": ProsodyCues(clip=measures())})
    cfg = TextualizeConfig(transcript=TranscriptConfig(context_turns=1))
    frags = textualize_sample(sample, None, cfg, ns)
    assert set(frags) == set(FRAGMENT_KEYS)
    assert frags["transcript"] == "Your loan has been approved" and frags["context"] == "Client: Tell me!"
    assert frags["face"].startswith("sustained strong lip corner puller (AU12)")
    assert frags["voice"] == prosody_fragment(measures(), cfg.prosody, ns, speaker="f1") and frags["speaker"] == "f1"
    assert frags["voice"].startswith("low pitch, ")  # 35.3 st is low for f1 (her mean is ~36)
    numeric = textualize_sample(sample, None, TextualizeConfig(mode="numeric"), ns)
    assert numeric["face"].startswith("AU12 p=1.00 (active 100%)") and numeric["voice"].startswith("pitch 212 Hz (")
    # extracted ClipCues override precomputed ones; MissingCue -> markers; a sub-window of the clip
    clip = ClipCues(clip_id="c", media=MediaInfo(path="x.mp4", content_sha256="0", duration_s=1.6),
                    transcript=MissingCue("no_speech"), prosody=MissingCue("no_speech"), face=face)
    window = Sample(id="w", label="good", split="test", start_s=0.5, end_s=1.0)
    frags = textualize_sample(window, clip, cfg, ns)
    assert frags["transcript"] == "(no speech detected)" and frags["voice"] == "no speech detected"
    assert frags["face"] == face_fragment(face, cfg.face, start_s=0.5, end_s=1.0) and "sustained" not in frags["face"]
    with pytest.raises(ValueError, match="lies outside its face cues"):
        textualize_sample(Sample(id="far", label="good", split="test", start_s=10.0, end_s=12.0), clip, cfg, ns)
    # cue records survive the JSON cache round trip with the same text
    again = from_json(to_json(clip))
    assert textualize_sample(window, again, cfg, ns) == frags


def test_config_round_trip_and_hash():
    cfg = TextualizeConfig(mode="numeric", face=FaceConfig(top_n=3, emotions_top_k=2),
                           transcript=TranscriptConfig(context_turns=2))
    back = TextualizeConfig.from_dict(cfg.to_dict())
    assert back == cfg and back.hash == cfg.hash
    assert TextualizeConfig().hash != cfg.hash
    with pytest.raises(ValueError, match="unknown textualization mode 'prose'"):
        TextualizeConfig(mode="prose")

    class Build:  # what build.BuildConfig exposes
        mode, context_turns, prefer_gold_transcript = "numeric", 3, False

    built = TextualizeConfig.from_build(Build())
    assert built.mode == "numeric" and built.transcript.context_turns == 3 and not built.transcript.prefer_gold


def test_fast_bins_equal_normstats_bin():
    """The converter's bisect binning is NormStats.bin, including tied edges of discrete counts."""
    from textualize.converters.prosody import _bin

    rows = realistic_rows(80)
    rng = random.Random(1)
    for _, r in rows:
        r["pause_count"] = float(rng.choice([0, 0, 0, 1, 1, 2]))
    ns = fit_norm_stats(rows, min_per_speaker=10)
    for measure in ("pitch_mean_st", "pause_count", "hnr_db"):
        values = [r[measure] for _, r in rows] + [-1e9, 1e9, 0.0, 1.0, 2.0]
        for v in values:
            for spk in (None, "f1", "nobody"):
                assert _bin(ns, measure, v, spk) == ns.bin(measure, v, speaker=spk), (measure, v, spk)
    assert _bin(ns, "not_a_measure", 1.0, None) is None


def test_cues_restricted_to_a_sample_span():
    """Segments of a long video are described by their own words and prosody only."""
    import math

    from textualize.converters.spans import prosody_in_span, transcript_in_span
    from textualize.cues import MissingCue, ProsodyCues, ProsodyMeasures, SpeechSegment, Transcript, Word

    words = [Word(" I", 0.0, 0.2), Word(" am", 0.3, 0.5), Word(" fine.", 0.6, 1.0), Word(" Really?", 5.0, 5.6)]
    tr = Transcript("I am fine. Really?", "en", 1.0, 6.0, [SpeechSegment(" I am fine.", 0.0, 1.0, words=words[:3]),
                                                           SpeechSegment(" Really?", 5.0, 5.6, words=words[3:])])
    assert transcript_in_span(tr, 4.5, 6.0).text == "Really?"
    assert transcript_in_span(tr, 0.0, 1.2).text == "I am fine."
    assert isinstance(transcript_in_span(tr, 2.0, 4.0), MissingCue)
    windows = [ProsodyMeasures(0.0, 2.0, pitch_mean_hz=100.0), ProsodyMeasures(1.0, 3.0, pitch_mean_hz=200.0),
               ProsodyMeasures(2.0, 4.0, pitch_mean_hz=math.nan)]
    pc = ProsodyCues(clip=ProsodyMeasures(0.0, 4.0, pitch_mean_hz=150.0), windows=windows, window_s=2.0, hop_s=1.0)
    span = prosody_in_span(pc, 0.0, 2.0)  # window 1 overlaps 2 s, window 2 overlaps 1 s, window 3 is NaN
    assert span.clip.pitch_mean_hz == pytest.approx((100 * 2 + 200 * 1) / 3)
    assert prosody_in_span(pc, 0.0, 4.0) is pc  # the whole clip: unchanged
