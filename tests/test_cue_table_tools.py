"""The cue-table adapter on per-clip tables as real tools write them: OpenWillis (vocal_acoustics +
emotional_expressivity summaries), openSMILE eGeMAPS / ComParE functionals (real runs), OpenFace
and py-feat summaries (from the real tables py-feat ships), Praat/parselmouth script names.
Column names come from the tools' sources; tables are written at test time."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from textualize.corpora.cue_table import PRAAT_DB_TO_DBFS
from textualize.cues import FacialCues, ProsodyCues
from textualize.registry import CORPORA

SR = 16_000
# OpenWillis vocal_acoustics summary (openwillis-voice config/acoustic.json + acoustic_util.common_summary)
OW_VOICE = {
    "f0_mean": 182.0, "f0_stddev": 31.0, "f0_min": 96.0, "f0_max": 296.0, "f0_range": 200.0,
    "f1_mean": 610.0, "f1_stddev": 150.0, "f2_mean": 1620.0, "f3_mean": 2700.0, "f4_mean": 3800.0,
    "loudness_mean": 66.5, "loudness_stddev": 9.0, "loudness_min": 31.0, "loudness_max": 80.0, "loudness_range": 49.0,
    "hnr_mean": 11.2, "hnr_stddev": 5.1, "hnr_min": 0.5, "hnr_max": 25.0, "hnr_range": 24.5,
    "jitter": 0.021, "jitter_abs": 0.00012, "jitter_rap": 0.009, "jitter_ppq5": 0.011, "jitter_ddp": 0.027,
    "shimmer": 0.11, "shimmer_db": 0.98, "shimmer_apq3": 0.045, "shimmer_apq5": 0.06, "shimmer_apq11": 0.09,
    "shimmer_dda": 0.135, "gne_ratio": 0.9, "pause_meandur": 0.62, "pause_rate": 11.0, "spir": 0.4,
    "dur_med": 0.55, "dur_mad": 0.1, "silence_ratio": 48.0, "rel_f0_sd": 0.17, "rel_se0_sd": 0.14,
    "f0_kurtosis": 0.3, "f0_skewness": 0.6,
}
# OpenWillis emotional_expressivity summary (py-feat emotions x 100 + py-feat AUs, _mean/_std)
OW_AUS = ["AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU11", "AU12", "AU14", "AU15",
          "AU17", "AU20", "AU23", "AU24", "AU25", "AU26", "AU28", "AU43"]
OW_EMOTIONS = ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"]


def _openwillis_row(i: int) -> dict:
    rng = np.random.default_rng(i)
    row = {k: v * (1 + 0.05 * i) for k, v in OW_VOICE.items()}
    for au in OW_AUS:
        row[f"{au}_mean"], row[f"{au}_std"] = float(rng.uniform(0, 1)), float(rng.uniform(0, 0.3))
    emo = rng.dirichlet(np.ones(len(OW_EMOTIONS))) * 100
    for e, v in zip(OW_EMOTIONS, emo):
        row[f"{e}_mean"], row[f"{e}_std"] = float(v), float(v / 5)
    row["mouth_openness_mean"], row["mouth_openness_std"] = 7.5, 2.0
    return row


def _write(tmp_path, rows, name="cues.csv"):
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_openwillis_voice_and_face_summary_builds_with_units(tmp_path):
    rows = [{"id": f"c{i}", "label": "pos" if i % 2 else "neg", "split": "train", **_openwillis_row(i)} for i in range(4)]
    adapter = CORPORA.get("cue-table")()
    samples = adapter.samples(_write(tmp_path, rows))
    s, r = samples[1], rows[1]
    p = s.precomputed["prosody"]
    assert isinstance(p, ProsodyCues)
    m = p.clip
    assert m.pitch_mean_hz == pytest.approx(r["f0_mean"])
    assert m.pitch_mean_st == pytest.approx(12 * math.log2(r["f0_mean"] / 27.5))
    assert m.pitch_sd_st == pytest.approx(12 / math.log(2) * r["f0_stddev"] / r["f0_mean"])
    # loudness_mean is Praat intensity in dB (not sone): dBFS = dB - 93.98
    assert math.isnan(m.loudness_mean) and m.rms_dbfs == pytest.approx(r["loudness_mean"] - 93.979, abs=1e-3)
    assert m.hnr_db == r["hnr_mean"] and m.jitter_local == r["jitter"]
    assert m.shimmer_local_db == r["shimmer_db"]  # not the fraction column "shimmer"
    assert m.voiced_ratio == pytest.approx(1 - r["silence_ratio"] / 100)
    assert m.pause_mean_s == r["pause_meandur"]
    assert p.functionals["shimmer"] == r["shimmer"] and p.functionals["jitter_abs"] == r["jitter_abs"]
    assert p.functionals["f1_mean"] == r["f1_mean"] and "shimmer_db" not in p.functionals
    mapping = p.provenance.params["prosody_columns"]
    assert mapping["loudness_mean"] == ["rms_dbfs", "dB"] and mapping["shimmer_db"] == ["shimmer_local_db", "dB"]
    face = s.precomputed["face"]
    assert isinstance(face, FacialCues) and face.au_scale == "probability" and len(face.au_names) == 20
    assert face.au_summary["AU12"].mean == pytest.approx(r["AU12_mean"])
    assert face.emotion_names == OW_EMOTIONS
    assert face.emotion_values[0] == pytest.approx([r[f"{e}_mean"] / 100 for e in OW_EMOTIONS])  # percent
    assert sum(face.emotion_values[0]) == pytest.approx(1.0)
    notices = " | ".join(adapter.notices)
    assert "read as percent" in notices
    kept = [n for n in adapter.notices if "not verbalised" in n]
    assert len(kept) == 1 and "AU01_std" in kept[0]  # listed once (the list is truncated)
    assert float(s.meta["AU01_std"]) == pytest.approx(r["AU01_std"])  # kept in meta
    assert float(s.meta["mouth_openness_mean"]) == pytest.approx(r["mouth_openness_mean"])


@pytest.mark.slow
def test_openwillis_table_builds_a_dataset(tmp_path):
    from datasets import load_from_disk

    from textualize.build import BuildConfig, build_dataset

    rows = [{"id": f"c{i}", "label": "pos" if i % 2 else "neg", "split": "train" if i < 6 else "test",
             **_openwillis_row(i)} for i in range(8)]
    out = tmp_path / "out"
    build_dataset(BuildConfig(dataset="cue-table", root=str(_write(tmp_path, rows)), out=str(out),
                              modalities=("face", "voice"), mode="numeric", tokenizer=None,
                              converter_config={"prosody": {"measures": ["pitch_mean_st", "pitch_sd_st", "rms_dbfs",
                                                                          "pause_ratio"], "voice_quality": True}}),
                  log=lambda m: None)
    dd = load_from_disk(str(out))
    text = dd["train"]["text"][1]
    # OpenWillis' loudness_mean (Praat dB) is spoken as energy in dBFS, never as sone
    assert "energy -2" in text and "dBFS" in text and "pitch 1" in text and "Hz" in text and "sone" not in text
    assert "shimmer 1.0" in text and "jitter 2.2%" in text


@pytest.fixture(scope="module")
def voice():
    t = np.arange(int(1.5 * SR)) / SR
    f0 = 140 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(0.6**h * np.sin(h * phase) for h in range(1, 10)) * (0.3 + 0.2 * np.sin(2 * np.pi * 1.3 * t) ** 2)
    return (0.3 * x + 0.002 * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)


def test_opensmile_egemaps_functionals_real_run(tmp_path, voice):
    import opensmile

    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals)
    rows = []
    for i, gain in enumerate((1.0, 0.5, 0.25)):
        func = smile.process_signal(voice * gain, SR).iloc[0]
        rows.append({"id": f"e{i}", "label": "x", "split": "train", **{k: float(v) for k, v in func.items()}})
    adapter = CORPORA.get("cue-table")()
    samples = adapter.samples(_write(tmp_path, rows))
    for s, r in zip(samples, rows):
        m = s.precomputed["prosody"].clip
        assert m.pitch_mean_st == pytest.approx(r["F0semitoneFrom27.5Hz_sma3nz_amean"])
        assert m.pitch_sd_st == pytest.approx(r["F0semitoneFrom27.5Hz_sma3nz_stddevNorm"] * r["F0semitoneFrom27.5Hz_sma3nz_amean"])
        assert m.pitch_range_st == pytest.approx(r["F0semitoneFrom27.5Hz_sma3nz_pctlrange0-2"])
        assert m.loudness_mean == pytest.approx(r["loudness_sma3_amean"])  # sone
        assert m.loudness_sd == pytest.approx(r["loudness_sma3_stddevNorm"] * r["loudness_sma3_amean"])
        assert m.jitter_local == pytest.approx(r["jitterLocal_sma3nz_amean"])
        assert m.shimmer_local_db == pytest.approx(r["shimmerLocaldB_sma3nz_amean"])
        assert m.hnr_db == pytest.approx(r["HNRdBACF_sma3nz_amean"])
        assert 25 < m.pitch_mean_st < 40 and math.isnan(m.rms_dbfs)
    louder, quieter = samples[0].precomputed["prosody"].clip, samples[2].precomputed["prosody"].clip
    assert louder.loudness_mean > quieter.loudness_mean
    assert sum("not verbalised" in n for n in adapter.notices) <= 1


@pytest.mark.slow
def test_opensmile_compare_functionals_real_run(tmp_path, voice):
    import opensmile

    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.ComParE_2016, feature_level=opensmile.FeatureLevel.Functionals)
    func = smile.process_signal(voice, SR).iloc[0]
    rows = [{"id": "k0", "label": "x", "split": "train", **{k: float(v) for k, v in func.items()}}]
    (s,) = CORPORA.get("cue-table")().samples(_write(tmp_path, rows))
    p = s.precomputed["prosody"]
    # posamean is the voiced-frame mean in Hz; amean counts unvoiced frames as 0 and is only kept
    assert p.clip.pitch_mean_hz == pytest.approx(func["F0final_sma_posamean"])
    assert 120 < p.clip.pitch_mean_hz < 170
    assert p.clip.jitter_local == pytest.approx(func["jitterLocal_sma_amean"])
    assert math.isnan(p.clip.shimmer_local_db)  # ComParE's shimmerLocal is a fraction
    assert p.functionals["shimmerLocal_sma_amean"] == pytest.approx(func["shimmerLocal_sma_amean"])
    assert "F0final_sma_amean" in p.functionals


def _pyfeat_summary(frames: pd.DataFrame) -> dict:
    """What py-feat's ``Fex.extract_summary(mean, std, max, min)`` writes: ``mean_AU12``, ``std_AU12``,
    ``max_AU12``, ``min_AU12``, ``sem_AU12`` … (feat/data.py; checked against Fex in the slow test)."""
    num = frames.select_dtypes("number")
    out = {}
    for prefix, stat in (("mean", num.mean()), ("sem", num.sem()), ("std", num.std()), ("max", num.max()),
                         ("min", num.min())):
        out.update({f"{prefix}_{k}": float(v) for k, v in stat.items()})
    return out


def test_openface_and_pyfeat_summaries_from_real_tables(tmp_path, pyfeat_data):
    of = pd.read_csv(pyfeat_data / "OpenFace_Test.csv")  # real OpenFace 2 output: " AU01_r" with a space
    of_row = {"id": "of", "label": "x", "split": "train", **of.mean(numeric_only=True).to_dict()}
    adapter = CORPORA.get("cue-table")()
    s_of = adapter.samples(_write(tmp_path, [of_row], "openface.csv"))[0]
    face = s_of.precomputed["face"]
    r_cols = [c for c in of.columns if c.strip().endswith("_r")]
    assert face.au_scale == "intensity_0_5" and len(r_cols) == 17 and len(face.au_names) == 18  # + AU28 (_c only)
    assert face.au_summary["AU12"].mean == pytest.approx(of[" AU12_r"].mean())
    assert face.au_summary["AU12"].active_fraction == pytest.approx(of[" AU12_c"].mean())
    assert face.au_summary["AU28"].active_fraction == pytest.approx(of[" AU28_c"].mean())

    frames = pd.read_csv(pyfeat_data / "Feat_Test.csv")  # a real py-feat Fex table
    summary = _pyfeat_summary(frames)
    adapter = CORPORA.get("cue-table")()
    s_pf = adapter.samples(_write(tmp_path, [{"id": "pf", "label": "x", "split": "train", **summary}], "pyfeat.csv"))[0]
    face = s_pf.precomputed["face"]
    assert face.au_scale == "probability" and len(face.au_names) == 20
    assert face.au_summary["AU12"].mean == pytest.approx(summary["mean_AU12"])
    assert face.au_summary["AU12"].max == pytest.approx(summary["max_AU12"])
    assert face.emotion_names == OW_EMOTIONS
    assert face.emotion_values[0][0] == pytest.approx(summary["mean_anger"])
    kept = [n for n in adapter.notices if "not verbalised" in n]
    assert len(kept) == 1 and "sem_AU01" in kept[0]
    assert "mean_FaceScore" in s_pf.meta  # one frame: its std is blank and dropped


@pytest.mark.slow
def test_pyfeat_extract_summary_names(pyfeat_data):
    """The column names of the fast test are the ones py-feat's own Fex writes."""
    from feat.utils.io import read_feat

    fex = read_feat(str(pyfeat_data / "Feat_Test.csv"))
    real = fex.extract_summary(mean=True, std=True, max=True, min=True, ignore_sessions=True)
    ours = _pyfeat_summary(pd.read_csv(pyfeat_data / "Feat_Test.csv"))
    for col in ("mean_AU12", "max_AU12", "std_AU01", "min_AU43", "mean_anger", "mean_neutral"):
        assert col in real.columns and col in ours
    assert real["mean_AU12"].iloc[0] == pytest.approx(ours["mean_AU12"])


def test_praat_script_names_and_praat_backend_round_trip(tmp_path, voice):
    from textualize.registry import PROSODY_BACKENDS

    # David Feinberg's parselmouth script ("Measure Pitch, HNR, Jitter, Shimmer, and Formants")
    feinberg = {"meanF0Hz": 210.0, "stdevF0Hz": 25.0, "hnr": 14.0, "localJitter": 0.012,
                "localabsoluteJitter": 6e-5, "rapJitter": 0.006, "ppq5Jitter": 0.007, "ddpJitter": 0.018,
                "localShimmer": 0.07, "localdbShimmer": 0.62, "apq3Shimmer": 0.03, "aqpq5Shimmer": 0.04,
                "apq11Shimmer": 0.06, "ddaShimmer": 0.09}
    (s,) = CORPORA.get("cue-table")().samples(_write(tmp_path, [{"id": "f", "label": "x", "split": "train", **feinberg}]))
    m = s.precomputed["prosody"].clip
    assert (m.pitch_mean_hz, m.hnr_db, m.jitter_local, m.shimmer_local_db) == (210.0, 14.0, 0.012, 0.62)
    assert m.pitch_sd_st == pytest.approx(17.312 * 25 / 210, rel=1e-3)
    assert s.precomputed["prosody"].functionals["localShimmer"] == 0.07
    # the praat backend's own functionals written out as a table come back as the same measures
    cues = PROSODY_BACKENDS.get("praat")().measure(voice)
    row = {"id": "p", "label": "x", "split": "train", **cues.functionals}
    (s,) = CORPORA.get("cue-table")().samples(_write(tmp_path, [row], "praat.csv"))
    m = s.precomputed["prosody"].clip
    assert m.pitch_mean_hz == pytest.approx(cues.functionals["praat_f0_mean_hz"])
    assert m.jitter_local == pytest.approx(cues.clip.jitter_local)
    assert m.shimmer_local_db == pytest.approx(cues.clip.shimmer_local_db)
    assert m.hnr_db == pytest.approx(cues.clip.hnr_db) and m.voiced_ratio == pytest.approx(cues.clip.voiced_ratio)


def test_unit_rules_and_column_map(tmp_path):
    base = {"id": "a", "label": "x", "split": "train"}
    cue_table = CORPORA.get("cue-table")

    def one(extra, **kw):
        return cue_table().samples(_write(tmp_path, [{**base, **extra}]), **kw)[0].precomputed["prosody"].clip

    assert one({"loudness": 0.8}).loudness_mean == 0.8  # sone
    assert one({"loudness": 70.0}).rms_dbfs == pytest.approx(70 - PRAAT_DB_TO_DBFS)
    assert one({"intensity": -23.0}).rms_dbfs == -23.0 and one({"intensity_db": 71.0}).rms_dbfs == pytest.approx(71 - 93.979, abs=1e-3)
    assert one({"jitter_percent": 1.5}).jitter_local == pytest.approx(0.015)
    assert one({"wpm": 150}).speaking_rate_words_per_s == pytest.approx(2.5)
    assert math.isnan(one({"shimmer": 0.08}).shimmer_local_db)  # a fraction: kept, not dB
    # a direct measure wins over a derived one; higher-priority name over a generic alias
    m = one({"f0_mean": 200.0, "pitch_mean_st": 33.0, "hnr": 9.0, "hnr_mean": 12.0})
    assert m.pitch_mean_st == 33.0 and m.hnr_db == 12.0

    errors = [
        ({"jitter": 1.8}, "jitter_percent"),
        ({"shimmer": 0.9}, "shimmer_db"),
        ({"pitch": 120.0, "f0": 121.0}, "equal priority"),
        ({"rms_dbfs": 12.0}, "positive values"),
        ({"silence_ratio": 140.0}, "unvoiced"),
    ]
    for extra, message in errors:
        with pytest.raises(ValueError, match=message):
            one(extra)
    rows = [{**base, "id": "a", "loudness": 5.0}, {**base, "id": "b", "loudness": 70.0}]
    with pytest.raises(ValueError, match="neither sone"):
        cue_table().samples(_write(tmp_path, rows))

    # --column-map: custom names with units; a tie resolved by keeping one column
    cmap = tmp_path / "map.yaml"
    cmap.write_text("pitch_avg: {measure: pitch_mean_hz, unit: Hz}\n"
                    "loud_db: {measure: rms_dbfs, unit: dB}\n"
                    "pausing: {measure: pause_ratio, unit: percent}\n"
                    "shim: {measure: shimmer_local_db, unit: dB}\n"
                    "f0: keep\n")
    m = one({"pitch_avg": 190.0, "loud_db": 70.0, "pausing": 20.0, "shim": 0.9, "pitch": 120.0, "f0": 121.0},
            column_map=str(cmap))
    assert m.pitch_mean_hz == 190.0 and m.pause_ratio == pytest.approx(0.2) and m.shimmer_local_db == 0.9
    assert m.rms_dbfs == pytest.approx(70 - PRAAT_DB_TO_DBFS)
    for text, message in (("a: {measure: pitch_mean_hz, unit: sone}\n", "cannot be read from unit 'sone'"),
                          ("a: {measure: loudness_db}\n", "unknown measure 'loudness_db'"),
                          ("zz: pitch_mean_hz\n", "does not have: zz")):
        cmap.write_text(text)
        with pytest.raises(ValueError, match=message):
            one({"a": 1.0}, column_map=str(cmap))
