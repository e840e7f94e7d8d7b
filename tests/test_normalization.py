"""NormStats: quantile bins fitted on a training split, per-speaker fallback, JSON round trip."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from textualize.normalization import LEVEL_WORDS, NormStats, fit_norm_stats


def _train_rows(seed: int = 0):
    """Two speakers with different pitch levels (A ~ 120 Hz, B ~ 220 Hz) plus a rare speaker C."""
    rng = np.random.default_rng(seed)
    rows = [("A", {"pitch_mean_hz": float(v), "pause_count": int(p)})
            for v, p in zip(rng.normal(120, 10, 50), rng.integers(0, 3, 50))]
    rows += [("B", {"pitch_mean_hz": float(v), "pause_count": int(p)})
             for v, p in zip(rng.normal(220, 20, 50), rng.integers(0, 3, 50))]
    rows += [("C", {"pitch_mean_hz": 300.0, "pause_count": 1})] * 3
    rows += [(None, {"pitch_mean_hz": math.nan, "pause_count": None})]
    return rows


def test_dataset_edges_are_training_quantiles():
    rows = _train_rows()
    stats = fit_norm_stats(rows, ["pitch_mean_hz"])
    values = [r[1]["pitch_mean_hz"] for r in rows if math.isfinite(r[1]["pitch_mean_hz"])]
    assert stats.dataset["pitch_mean_hz"].count == len(values) == 103  # NaN ignored
    assert np.allclose(stats.dataset["pitch_mean_hz"].edges, np.quantile(values, [0.2, 0.4, 0.6, 0.8]))
    assert stats.n_bins == 5
    # about a fifth of the training values fall in each bin
    bins = [stats.bin("pitch_mean_hz", v) for v in values]
    counts = np.bincount(bins, minlength=5)
    assert counts.min() >= 18 and counts.max() <= 23


def test_bins_are_monotonic_in_value():
    stats = fit_norm_stats(_train_rows(), ["pitch_mean_hz", "pause_count"])
    for measure, grid in (("pitch_mean_hz", np.linspace(50, 400, 500)), ("pause_count", np.arange(-1, 5))):
        for speaker in (None, "A", "B"):
            bins = [stats.bin(measure, float(v), speaker) for v in grid]
            assert all(b is not None for b in bins)
            assert all(b2 >= b1 for b1, b2 in zip(bins, bins[1:])), (measure, speaker)
            assert bins[0] == 0 and bins[-1] == 4
    # tied edges of a discrete cue: the tied value lands in the middle of its run of bins
    edges = stats.dataset["pause_count"].edges
    assert edges == sorted(edges) and len(set(edges)) < len(edges)


def test_per_speaker_stats_and_fallback():
    stats = fit_norm_stats(_train_rows(), ["pitch_mean_hz"], min_per_speaker=10)
    assert set(stats.speakers) == {"A", "B"}  # C has only 3 samples
    # 150 Hz: high for low-pitched speaker A, very low for high-pitched speaker B
    assert stats.level_word("pitch_mean_hz", 150.0, "A") == "very high"
    assert stats.level_word("pitch_mean_hz", 150.0, "B") == "very low"
    # rare and unseen speakers fall back to the dataset level
    for sp in ("C", "never-seen", None):
        assert stats.bin("pitch_mean_hz", 150.0, sp) == stats.bin("pitch_mean_hz", 150.0)
    assert stats.zscore("pitch_mean_hz", 120.0, "A") == pytest.approx(
        (120.0 - stats.speakers["A"]["pitch_mean_hz"].mean) / stats.speakers["A"]["pitch_mean_hz"].sd)
    assert abs(stats.zscore("pitch_mean_hz", 220.0, "B")) < 0.5
    assert stats.zscore("pitch_mean_hz", 220.0, "A") > 5


def test_nan_unknown_and_empty_measures_give_none():
    rows = [("A", {"x": 1.0, "au12": math.nan}), ("A", {"x": 2.0, "au12": None}), ("B", {"x": 3.0})]
    stats = fit_norm_stats(rows)
    assert stats.measures == ["au12", "x"]
    assert stats.dataset["au12"].count == 0 and stats.dataset["au12"].edges == []
    assert stats.bin("au12", 0.5) is None  # a measure with no finite training value
    assert stats.bin("x", math.nan) is None
    assert stats.bin("x", None) is None
    assert stats.level_word("unknown", 1.0) is None
    assert stats.zscore("x", float("inf")) is None


def test_flat_dict_rows_with_speaker_key_and_au_values():
    """Generic numeric cues (AU means) given as flat dicts, speaker under a custom key."""
    rng = np.random.default_rng(1)
    rows = [{"spk": f"s{i % 3}", "AU12_mean": float(v), "AU04_mean": float(w)}
            for i, (v, w) in enumerate(zip(rng.uniform(0, 1, 90), rng.uniform(0, 5, 90)))]
    stats = fit_norm_stats(rows, speaker_key="spk", min_per_speaker=20)
    assert set(stats.speakers) == {"s0", "s1", "s2"}
    assert stats.measures == ["AU04_mean", "AU12_mean"]
    assert stats.level_word("AU12_mean", 0.99, "s1") == "very high"
    assert stats.level_word("AU04_mean", 0.01) == "very low"


def test_three_bins_and_bad_quantiles():
    stats = fit_norm_stats([(None, {"x": float(v)}) for v in range(100)], quantiles=(1 / 3, 2 / 3))
    assert [stats.level_word("x", v) for v in (5, 50, 95)] == list(LEVEL_WORDS[3])
    with pytest.raises(ValueError, match="quantiles"):
        fit_norm_stats([(None, {"x": 1.0})], quantiles=(0.5, 0.2))
    with pytest.raises(ValueError, match="row 0"):
        fit_norm_stats([("A", 1.0, 2.0)])


def test_round_trip_dict_and_file(tmp_path):
    stats = fit_norm_stats(_train_rows() + [("A", {"empty": math.nan})])
    d = stats.to_dict()
    json.dumps(d, allow_nan=False)  # strict JSON: no NaN leaks
    again = NormStats.from_dict(json.loads(json.dumps(d)))
    assert again.to_dict() == d
    path = tmp_path / "norm" / "prosody_norm.json"
    stats.save(path)
    loaded = NormStats.load(path)
    for v in (90.0, 130.0, 180.0, 260.0):
        for sp in ("A", "B", "C", None):
            assert loaded.bin("pitch_mean_hz", v, sp) == stats.bin("pitch_mean_hz", v, sp)
            assert loaded.zscore("pitch_mean_hz", v, sp) == stats.zscore("pitch_mean_hz", v, sp)
    assert loaded.bin("empty", 1.0) is None
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="bad.json"):
        NormStats.load(tmp_path / "bad.json")


def test_real_au_means_from_pyfeat_news(shared_dir):
    """Real per-clip AU means (py-feat on 20 news videos): train on 15 clips, bin the other 5."""
    import pandas as pd

    folder = shared_dir / "data" / "pyfeat_news_sample"
    clips = sorted(folder.glob("0[0-9][0-9].csv"))
    assert len(clips) == 20
    rows = []
    for p in clips:
        df = pd.read_csv(p)
        aus = [c for c in df.columns if c.startswith("AU")]
        rows.append((None, {c: float(df[c].mean()) for c in aus}))
    stats = fit_norm_stats(rows[:15])
    assert len(stats.measures) >= 15
    for _, values in rows[15:]:
        for m, v in values.items():
            b = stats.bin(m, v)
            assert b is not None and 0 <= b <= 4
            assert stats.level_word(m, v) in LEVEL_WORDS[5]
