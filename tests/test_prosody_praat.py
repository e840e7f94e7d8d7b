"""Praat backend (praat-parselmouth): synthetic voices with known pitch, jitter, shimmer and
formants, and real EmoDB speech beside openSMILE."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from textualize.cues import MissingCue, ProsodyCues, from_json, to_json
from textualize.media import load_audio
from textualize.registry import PROSODY_BACKENDS

SR = 16_000


@pytest.fixture(scope="module")
def praat():
    return PROSODY_BACKENDS.get("praat")(window_s=1.0, hop_s=0.5)


def pulse_voice(f0=150.0, dur=2.0, jitter_sd=0.0, shimmer_sd=0.0, seed=0):
    """Cycles with random periods T0 (1 + jitter_sd n) and peak amplitudes 1 + shimmer_sd n; each
    cycle is a sum of sines of its own phase (zero at both ends, so scaling stays continuous).
    Returns the signal and the true periods and amplitudes of the whole cycles."""
    rng = np.random.default_rng(seed)
    n = int(dur * f0 * 1.2) + 4
    periods = (1 / f0) * (1 + jitter_sd * rng.standard_normal(n))
    amps = 1 + shimmer_sd * rng.standard_normal(n)
    bounds = np.concatenate([[0.0], np.cumsum(periods)])
    t = np.arange(int(dur * SR)) / SR
    cyc = np.searchsorted(bounds, t, side="right") - 1
    phase = 2 * np.pi * (t - bounds[cyc]) / periods[cyc]
    wave = sum(0.7**h * np.sin(h * phase) for h in range(1, 9))
    k = int(np.searchsorted(bounds, dur)) - 1
    return (0.3 * amps[cyc] * wave).astype(np.float32), periods[:k], amps[:k]


def _ppq(v, k):
    """Praat's k-point perturbation quotient (rap = 3, ppq5 = 5, apq3/5/11)."""
    avg = np.convolve(v, np.ones(k) / k, mode="valid")
    return float(np.mean(np.abs(v[k // 2:len(v) - k // 2] - avg)) / np.mean(v))


def true_perturbation(periods, amps) -> dict[str, float]:
    """Praat's jitter and shimmer definitions applied to the synthesised cycles themselves."""
    return {
        "jitter_local": float(np.mean(np.abs(np.diff(periods))) / periods.mean()),
        "jitter_rap": _ppq(periods, 3), "jitter_ppq5": _ppq(periods, 5),
        "shimmer_local": float(np.mean(np.abs(np.diff(amps))) / amps.mean()),
        "shimmer_local_db": float(np.mean(np.abs(20 * np.log10(amps[1:] / amps[:-1])))),
        "shimmer_apq3": _ppq(amps, 3), "shimmer_apq5": _ppq(amps, 5), "shimmer_apq11": _ppq(amps, 11),
    }


def vowel(formants, f0=120.0, dur=1.5):
    """Impulse train through Klatt two-pole resonators at known formants (+ F4 3500, F5 4500 Hz,
    which Burg's 5-pole analysis needs to exist), with a -6 dB/octave source roll-off."""
    from scipy.signal import lfilter

    x = np.zeros(int(dur * SR))
    x[(np.arange(0, dur, 1 / f0) * SR).astype(int)] = 1.0
    for f, bw in zip(tuple(formants) + (3500.0, 4500.0), (130.0, 70.0, 160.0, 250.0, 200.0)):
        r = np.exp(-np.pi * bw / SR)
        c = 2 * r * np.cos(2 * np.pi * f / SR)
        x = lfilter([1 - c + r * r], [1, -c, r * r], x)
    x = lfilter([1], [1, -0.97], x)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def test_registered_with_options_checked():
    assert "praat" in PROSODY_BACKENDS.names()
    cls = PROSODY_BACKENDS.get("praat")
    b = cls(window_s=3.0, hop_s=1.5)
    assert b.name == "praat" and b.window_s == 3.0
    with pytest.raises(TypeError, match="unknown options"):
        cls(bogus=1)
    with pytest.raises(ValueError):
        cls(window_s=0.0)
    with pytest.raises(ValueError, match="pitch-range rule"):
        cls(floor_rule=(150, 0.75))


@pytest.mark.parametrize("f0", [90.0, 150.0, 220.0, 400.0])
def test_pitch_of_synthetic_voice_and_adaptive_range(praat, f0):
    x, _, _ = pulse_voice(f0=f0)
    cues = praat.measure(x)
    assert isinstance(cues, ProsodyCues)
    assert cues.clip.pitch_mean_hz == pytest.approx(f0, rel=0.005)
    assert cues.clip.voiced_ratio > 0.9
    fn = cues.functionals
    # second pass: floor 0.75 x q25, ceiling 2.5 x q75 of the first pass (limits 40-300 / 150-900)
    assert fn["praat_pitch_floor_hz"] == pytest.approx(min(0.75 * f0, 300.0), rel=0.01)
    assert fn["praat_pitch_ceiling_hz"] == pytest.approx(min(2.5 * f0, 900.0), rel=0.01)
    assert cues.provenance.params["pitch_floor_hz"] == fn["praat_pitch_floor_hz"]


def test_clean_periodic_voice_has_no_perturbation_and_high_hnr(praat):
    cues = praat.measure(pulse_voice()[0])
    fn = cues.functionals
    for k in ("praat_jitter_local", "praat_jitter_rap", "praat_jitter_ppq5", "praat_shimmer_local",
              "praat_shimmer_apq3", "praat_shimmer_apq11"):
        assert fn[k] < 1e-3, k
    assert cues.clip.hnr_db > 40 and fn["praat_hnr_mean_db"] == pytest.approx(cues.clip.hnr_db)


@pytest.mark.parametrize("jitter_sd,shimmer_sd", [(0.01, 0.0), (0.0, 0.05), (0.02, 0.1)])
def test_known_jitter_and_shimmer(praat, jitter_sd, shimmer_sd):
    x, periods, amps = pulse_voice(jitter_sd=jitter_sd, shimmer_sd=shimmer_sd, seed=3)
    cues = praat.measure(x)
    fn, truth = cues.functionals, true_perturbation(periods, amps)
    # Praat marks cycles by cross-correlation and measures each period's peak between its pulses:
    # jitter comes back within 10 % of the true value, shimmer within 25 % (Praat's period
    # straddles two synthetic cycles, which averages part of the amplitude step away)
    for key, tol in (("jitter_local", 0.1), ("jitter_rap", 0.1), ("jitter_ppq5", 0.1),
                     ("shimmer_local", 0.25), ("shimmer_local_db", 0.25), ("shimmer_apq3", 0.25),
                     ("shimmer_apq5", 0.25), ("shimmer_apq11", 0.25)):
        if truth[key] > 1e-6:
            assert fn[f"praat_{key}"] == pytest.approx(truth[key], rel=tol), key
        else:
            # unperturbed side: well below the perturbed values (jitter 1-2 %, shimmer 5-10 %, 0.4-0.9 dB)
            assert fn[f"praat_{key}"] < (0.05 if key == "shimmer_local_db" else 0.003), key
    assert cues.clip.jitter_local == fn["praat_jitter_local"]
    assert cues.clip.shimmer_local_db == fn["praat_shimmer_local_db"]
    # noise-free but perturbed: HNR falls as the perturbation grows
    assert 10 < cues.clip.hnr_db < 45


@pytest.mark.parametrize("formants,f0", [((700, 1220, 2600), 120), ((300, 2300, 3000), 120),
                                         ((730, 1090, 2440), 220), ((270, 2290, 3010), 220)])
def test_formants_of_synthetic_vowels(praat, formants, f0):
    cues = praat.measure(vowel(formants, f0=f0))
    fn = cues.functionals
    assert fn["praat_formant_ceiling_hz"] == (5000.0 if f0 < 160 else 5500.0)
    for n, f in enumerate(formants, start=1):
        assert fn[f"praat_f{n}_mean_hz"] == pytest.approx(f, rel=0.06 if f0 < 160 else 0.1), n


def test_windows_lld_and_serialisation(praat):
    x, _, _ = pulse_voice(dur=3.0, jitter_sd=0.01)
    cues = praat.measure(x)
    assert [(w.start_s, w.end_s) for w in cues.windows][:2] == [(0.0, 1.0), (0.5, 1.5)]
    for w in cues.windows:
        assert w.pitch_mean_hz == pytest.approx(150, rel=0.01)
        assert 0.005 < w.jitter_local < 0.03
    assert math.isnan(cues.clip.loudness_mean)  # no sone loudness in Praat
    back = from_json(json.loads(json.dumps(to_json(cues))))
    assert back.functionals == cues.functionals
    names, hop, table = praat.lld(x)
    assert names[:2] == ["F0semitoneFrom27.5Hz", "voiced"] and hop == 0.01
    assert table.shape[1] == len(names) and abs(table.shape[0] - 300) <= 5  # 10 ms frames over 3 s
    st = table[table[:, 1] > 0, 0]
    assert np.median(st) == pytest.approx(12 * np.log2(150 / 27.5), abs=0.1)


def test_silence_noise_and_bad_input(praat):
    assert isinstance(praat.measure(np.zeros(SR, np.float32)), MissingCue)
    assert praat.measure(np.zeros(SR, np.float32)).reason == "silence"
    assert praat.measure(np.ones(1000, np.float32) * 0.1).reason == "too_short"
    noise = np.random.default_rng(0).normal(0, 0.1, 2 * SR).astype(np.float32)
    out = praat.measure(noise)
    assert isinstance(out, MissingCue) and out.reason == "no_speech"
    with pytest.raises(ValueError, match="NaN"):
        praat.measure(np.full(SR, np.nan, np.float32))


@pytest.mark.slow
def test_emodb_real_speech_beside_opensmile(shared_dir, praat):
    """Real utterances: plausible voice-report values, and pitch agreeing with eGeMAPS."""
    smile = PROSODY_BACKENDS.get("opensmile")(window_s=1.0, hop_s=0.5)
    # the first anger (W) and the first sadness (T) file of three speakers, two male two female
    paths = sorted((shared_dir / "data" / "emodb").glob("*.wav"))
    chosen = {}
    for path in paths:
        key = (path.name[:2], path.name[5])
        if key[0] in {"03", "08", "11", "13"} and key[1] in "WT" and key not in chosen:
            chosen[key] = path
    if len(chosen) < 6:
        pytest.skip("../shared EmoDB lacks the chosen speakers")
    pitch_p, pitch_o = [], []
    for path in chosen.values():
        x = load_audio(path, SR)
        p, o = praat.measure(x), smile.measure(x)
        assert isinstance(p, ProsodyCues) and isinstance(o, ProsodyCues)
        fn = p.functionals
        assert 60 <= fn["praat_pitch_floor_hz"] < fn["praat_f0_median_hz"] < fn["praat_pitch_ceiling_hz"] <= 900
        assert 0.002 < p.clip.jitter_local < 0.08 and 0.2 < p.clip.shimmer_local_db < 2.5
        assert 0 < p.clip.hnr_db < 30
        assert 200 < fn["praat_f1_mean_hz"] < fn["praat_f2_mean_hz"] < fn["praat_f3_mean_hz"] < 4000
        assert fn["praat_jitter_rap"] < fn["praat_jitter_local"]
        assert 40 < fn["praat_intensity_mean_db"] < 100
        pitch_p.append(p.clip.pitch_mean_st)
        pitch_o.append(o.clip.pitch_mean_st)
    assert np.max(np.abs(np.subtract(pitch_p, pitch_o))) < 1.5  # semitones
    assert np.corrcoef(pitch_p, pitch_o)[0, 1] > 0.9
