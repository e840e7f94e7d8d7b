"""Prosody and voice quality from Praat itself (Boersma & Weenink), through praat-parselmouth.

The voice literature quotes Praat's own measures; this backend computes them with Praat's code
(parselmouth embeds Praat 6.1) and the settings of Praat's voice report, so the numbers can be
set beside published ones. Everything in Praat's conventions:

* **Pitch**: ``To Pitch (ac)`` (Boersma 1993 autocorrelation, Praat's standard voicing/octave
  costs) at a 10 ms step, with a speaker-adaptive floor and ceiling found in two passes (Hirst
  2011; De Looze & Hirst 2008): a first pass over 60-700 Hz gives the quantiles of the clip's
  voiced f0, then ``floor = 0.75 x q25`` and ``ceiling = 2.5 x q75`` (Hirst's 1.5 x q75 cuts the
  high excursions of expressive speech, e.g. anger; 2.5 is the factor Hirst recommends for it).
  The floor is kept in 40-300 Hz and the ceiling in 150-900 Hz; clips with fewer than
  ``MIN_FIRST_PASS_FRAMES`` voiced frames in the first pass keep 60-700 Hz. Rules are options.
* **Intensity**: ``To Intensity`` (minimum pitch = the adaptive floor, mean subtracted), in dB
  re 2e-5 with full scale taken as 1 Pa (Praat's convention for sound files, so about
  dBFS + 94); ``functionals`` get Praat's ``Get mean`` (energy averaging over the clip) and the
  mean and SD of the dB values over voiced frames; ``rms_dbfs`` as the other backends.
* **Jitter / shimmer**: ``To PointProcess (cc)`` glottal pulses, then Praat's ``Get jitter``
  (local, local absolute, rap, ppq5, ddp) and ``Get shimmer`` (local, local dB, apq3, apq5,
  apq11, dda) with the voice report's settings: periods 0.1-20 ms, maximum period factor 1.3,
  maximum amplitude factor 1.6. Fractions, not percent (Praat's voice report prints percent).
* **HNR**: ``To Harmonicity (cc)`` (10 ms, minimum pitch = floor, silence threshold 0.1,
  1 period per window), mean over the frames Praat counts as voiced (Praat's ``Get mean``).
* **Formants**: ``To Formant (burg)`` (5 formants, 25 ms window, pre-emphasis from 50 Hz) with
  Praat's recommended ceiling of 5000 Hz for a low voice and 5500 Hz for a high one (median f0
  below / above ``FORMANT_CEILING_SPLIT_HZ``); F1-F3 mean and median over voiced frames.

``ProsodyMeasures`` gets pitch (semitones re 27.5 Hz statistics, as the other backends),
``rms_dbfs``, ``voiced_ratio``, ``jitter_local``, ``shimmer_local_db``, ``hnr_db``, and rates and
pauses from ``speech_rate`` (syllable nuclei voiced by Praat's pitch). ``loudness_mean``/``_sd``
(eGeMAPS' sone) have no Praat counterpart and stay NaN. The remaining Praat measures of the clip
go into ``functionals`` under ``praat_*`` names with their unit in the name.
"""
from __future__ import annotations

import math

import numpy as np

from textualize.audio_cues import speech_rate as sr
from textualize.cues import MissingCue, ProsodyCues, ProsodyMeasures, Provenance, Word, time_windows
from textualize.registry import PROSODY_BACKENDS

TIME_STEP_S = 0.01
FIRST_PASS_HZ = (60.0, 700.0)
FLOOR_RULE = (25.0, 0.75)  # (percentile of first-pass voiced f0, factor)
CEILING_RULE = (75.0, 2.5)
FLOOR_LIMITS_HZ = (40.0, 300.0)
CEILING_LIMITS_HZ = (150.0, 900.0)
MIN_FIRST_PASS_FRAMES = 10
# Praat's voice-report settings (Praat manual, "Voice 2. Jitter" / "Voice 3. Shimmer")
PERIOD_FLOOR_S = 0.0001
PERIOD_CEILING_S = 0.02
MAX_PERIOD_FACTOR = 1.3
MAX_AMPLITUDE_FACTOR = 1.6
HNR_SILENCE_THRESHOLD = 0.1
HNR_PERIODS_PER_WINDOW = 1.0
FORMANT_CEILING_SPLIT_HZ = 160.0  # median f0 below: 5000 Hz ceiling (adult male), else 5500 Hz
FORMANT_CEILINGS_HZ = (5000.0, 5500.0)
N_FORMANTS = 3
JITTER_KINDS = ("local", "local, absolute", "rap", "ppq5", "ddp")
SHIMMER_KINDS = ("local", "local_dB", "apq3", "apq5", "apq11", "dda")
LLD_NAMES = ["F0semitoneFrom27.5Hz", "voiced", "intensity_dB", "HNR_dB", "F1_Hz", "F2_Hz", "F3_Hz"]


def _functional_name(kind: str, measure: str) -> str:
    return f"praat_{measure}_" + {"local": "local", "local, absolute": "local_abs_s", "local_dB": "local_db"}.get(
        kind, kind)


def adaptive_pitch_range(f0_hz: np.ndarray, floor_rule=FLOOR_RULE, ceiling_rule=CEILING_RULE) -> tuple[float, float, bool]:
    """(floor Hz, ceiling Hz, adapted?) from first-pass voiced f0 (0 = unvoiced), see module doc."""
    v = f0_hz[np.isfinite(f0_hz) & (f0_hz > 0)]
    if v.size < MIN_FIRST_PASS_FRAMES:
        return FIRST_PASS_HZ[0], FIRST_PASS_HZ[1], False
    floor = float(np.clip(floor_rule[1] * np.percentile(v, floor_rule[0]), *FLOOR_LIMITS_HZ))
    ceiling = float(np.clip(ceiling_rule[1] * np.percentile(v, ceiling_rule[0]), *CEILING_LIMITS_HZ))
    if ceiling <= floor * 1.5:  # keep at least a fifth of range whatever the data
        ceiling = floor * 1.5
    return floor, ceiling, True


class _Analysis:
    """Praat objects of one clip (pitch, pulses, intensity, harmonicity, formants) and arrays."""

    def __init__(self, x: np.ndarray, floor_rule, ceiling_rule, adaptive: bool = True):
        import parselmouth
        from parselmouth.praat import call

        self.sound = parselmouth.Sound(x.astype(np.float64), sampling_frequency=sr.TARGET_SR)
        first = self.sound.to_pitch_ac(time_step=TIME_STEP_S, pitch_floor=FIRST_PASS_HZ[0],
                                       pitch_ceiling=FIRST_PASS_HZ[1])
        if adaptive:
            self.floor, self.ceiling, self.adapted = adaptive_pitch_range(
                first.selected_array["frequency"], floor_rule, ceiling_rule)
        else:
            self.floor, self.ceiling, self.adapted = FIRST_PASS_HZ[0], FIRST_PASS_HZ[1], False
        pitch = first if not self.adapted else self.sound.to_pitch_ac(
            time_step=TIME_STEP_S, pitch_floor=self.floor, pitch_ceiling=self.ceiling)
        self.pitch = pitch
        self.times = np.asarray(pitch.xs(), dtype=np.float64)
        f0 = np.asarray(pitch.selected_array["frequency"], dtype=np.float64)
        self.voiced = f0 > 0
        self.f0_hz = np.where(self.voiced, f0, np.nan)
        self.pulses = call([self.sound, pitch], "To PointProcess (cc)")
        self.intensity = self.sound.to_intensity(minimum_pitch=self.floor, time_step=TIME_STEP_S,
                                                 subtract_mean=True)
        self.harmonicity = self.sound.to_harmonicity_cc(
            time_step=TIME_STEP_S, minimum_pitch=self.floor, silence_threshold=HNR_SILENCE_THRESHOLD,
            periods_per_window=HNR_PERIODS_PER_WINDOW)
        median = float(np.nanmedian(self.f0_hz)) if self.voiced.any() else math.nan
        self.formant_ceiling = FORMANT_CEILINGS_HZ[0] if median < FORMANT_CEILING_SPLIT_HZ else FORMANT_CEILINGS_HZ[1]
        self.formant = self.sound.to_formant_burg(time_step=TIME_STEP_S, max_number_of_formants=5,
                                                  maximum_formant=self.formant_ceiling, window_length=0.025,
                                                  pre_emphasis_from=50.0)

    def on_pitch_grid(self, obj, unvoiced_value: float | None = None) -> np.ndarray:
        """Values of a one-row Praat vector (intensity, harmonicity) at the pitch frame times."""
        xs = np.asarray(obj.xs(), dtype=np.float64)
        vals = np.asarray(obj.values[0], dtype=np.float64)
        if unvoiced_value is not None:  # Praat's -200 dB marks frames without periodicity
            ok = vals > -199.0
            if not ok.any():
                return np.full(self.times.shape, np.nan)
            xs, vals = xs[ok], vals[ok]
        return np.interp(self.times, xs, vals)

    def formants(self) -> np.ndarray:
        """F1..F3 (Hz) at every pitch frame, NaN where Praat found none or the frame is unvoiced."""
        if getattr(self, "_formants", None) is not None:
            return self._formants
        out = np.full((self.times.size, N_FORMANTS), np.nan)
        for i in np.flatnonzero(self.voiced):
            for n in range(N_FORMANTS):
                out[i, n] = self.formant.get_value_at_time(n + 1, float(self.times[i]))
        self._formants = out
        return out

    def jitter(self, kind: str, a: float = 0.0, b: float = 0.0) -> float:
        from parselmouth.praat import call

        return float(call(self.pulses, f"Get jitter ({kind})", a, b, PERIOD_FLOOR_S, PERIOD_CEILING_S,
                          MAX_PERIOD_FACTOR))

    def shimmer(self, kind: str, a: float = 0.0, b: float = 0.0) -> float:
        from parselmouth.praat import call

        return float(call([self.sound, self.pulses], f"Get shimmer ({kind})", a, b, PERIOD_FLOOR_S,
                          PERIOD_CEILING_S, MAX_PERIOD_FACTOR, MAX_AMPLITUDE_FACTOR))

    def n_periods(self, a: float = 0.0, b: float = 0.0) -> int:
        from parselmouth.praat import call

        return int(call(self.pulses, "Get number of periods", a, b, PERIOD_FLOOR_S, PERIOD_CEILING_S,
                        MAX_PERIOD_FACTOR))


def _finite(v: float) -> float | None:
    return v if v is not None and math.isfinite(v) else None


@PROSODY_BACKENDS.register("praat")
class PraatProsody:
    """Praat's pitch (two-pass adaptive range), intensity, jitter, shimmer, HNR and formants.

    Options: ``floor_rule``/``ceiling_rule`` = (percentile, factor) of the first-pass voiced f0
    (defaults (25, 0.75) and (75, 2.5)); ``adaptive=False`` keeps the 60-700 Hz first pass.
    """

    name = "praat"

    def __init__(self, window_s: float = 2.0, hop_s: float = 1.0, floor_rule=FLOOR_RULE,
                 ceiling_rule=CEILING_RULE, adaptive: bool = True, **options):
        if options:
            raise TypeError(f"praat prosody: unknown options {sorted(options)}")
        time_windows(1.0, window_s, hop_s)  # validates window/hop
        for rule in (floor_rule, ceiling_rule):
            q, f = rule
            if not (0 <= q <= 100 and f > 0):
                raise ValueError(f"a pitch-range rule is (percentile 0-100, factor > 0), got {rule}")
        self.window_s, self.hop_s = float(window_s), float(hop_s)
        self.floor_rule = (float(floor_rule[0]), float(floor_rule[1]))
        self.ceiling_rule = (float(ceiling_rule[0]), float(ceiling_rule[1]))
        self.adaptive = bool(adaptive)
        self._memo = sr.LastClipMemo()  # measure() and lld() of one clip share one analysis
        try:
            import parselmouth
        except ImportError as e:  # pragma: no cover - dependency of the package
            from textualize.models import ModelUnavailableError

            raise ModelUnavailableError(f"Praat backend needs praat-parselmouth: pip install praat-parselmouth ({e})") from None
        self._version = f"parselmouth {parselmouth.__version__}, Praat {parselmouth.PRAAT_VERSION}"

    def _analyse(self, x: np.ndarray) -> _Analysis:
        def compute(y):
            return _Analysis(y, self.floor_rule, self.ceiling_rule, self.adaptive)

        try:
            return self._memo.get(x, compute)
        except Exception as e:  # Praat raises PraatError with its own message; say which clip length
            if type(e).__name__ == "PraatError":
                raise ValueError(f"Praat failed on {x.size} samples: {e}") from None
            raise

    def prepare(self, audio: np.ndarray, sample_rate: int = sr.TARGET_SR) -> None:
        """The word-independent Praat analysis of a clip, kept for ``measure``/``lld`` of the same
        audio (extraction runs it beside ASR)."""
        x = sr.as_mono_16k(audio, sample_rate)
        if sr.missing_reason(x) is None:
            self._analyse(x).formants()

    def lld(self, audio: np.ndarray, sample_rate: int = sr.TARGET_SR) -> tuple[list[str], float, np.ndarray]:
        """Frame descriptors at Praat's pitch frames (10 ms): f0 in semitones re 27.5 Hz, voiced
        flag, intensity dB, HNR dB, F1-F3 Hz (f0, HNR and formants 0 in unvoiced frames, as in
        eGeMAPS' ``nz`` LLDs)."""
        x = sr.as_mono_16k(audio, sample_rate)
        if x.size < int(0.1 * sr.TARGET_SR):
            return list(LLD_NAMES), TIME_STEP_S, np.zeros((0, len(LLD_NAMES)), np.float32)
        an = self._analyse(x)
        st = np.nan_to_num(sr.hz_to_st(an.f0_hz), nan=0.0)
        inten = an.on_pitch_grid(an.intensity)
        hnr = np.where(an.voiced, an.on_pitch_grid(an.harmonicity, unvoiced_value=-200.0), np.nan)
        table = np.column_stack([st, an.voiced.astype(float), inten, np.nan_to_num(hnr, nan=0.0),
                                 np.nan_to_num(an.formants(), nan=0.0)])
        return list(LLD_NAMES), TIME_STEP_S, table.astype(np.float32)

    def measure(self, audio: np.ndarray, sample_rate: int = sr.TARGET_SR,
                words: list[Word] | None = None) -> ProsodyCues | MissingCue:
        import parselmouth  # noqa: F401  (version in provenance)

        x = sr.as_mono_16k(audio, sample_rate)
        missing = sr.missing_reason(x)
        if missing is not None:
            return missing
        an = self._analyse(x)
        times, voiced = an.times, an.voiced
        if not np.any(voiced) and not words:
            return MissingCue("no_speech", "Praat's pitch analysis found no voiced frame in the clip")
        f0_st = sr.hz_to_st(an.f0_hz)
        hx = np.asarray(an.harmonicity.xs(), dtype=np.float64)
        hv = np.asarray(an.harmonicity.values[0], dtype=np.float64)
        duration = x.size / sr.TARGET_SR
        timing = sr.speech_timing(x, times, voiced, words)

        def span(a: float, b: float, whole: bool = False) -> ProsodyMeasures:
            sel = (times >= a) & (times < b)
            v = sel & voiced
            level = {"rms_dbfs": sr.rms_dbfs(x[int(a * sr.TARGET_SR):int(math.ceil(b * sr.TARGET_SR))])}
            if np.any(sel):
                level["voiced_ratio"] = float(np.count_nonzero(v) / np.count_nonzero(sel))
            hsel = (hx >= a) & (hx < b) & (hv > -199.0)
            if np.count_nonzero(v) >= 3 and np.any(hsel):
                level["hnr_db"] = float(hv[hsel].mean())  # Praat's Get mean skips -200 dB frames
            ta, tb = (0.0, 0.0) if whole else (a, b)
            if an.n_periods(ta, tb) >= 3:
                for key, value in (("jitter_local", an.jitter("local", ta, tb)),
                                   ("shimmer_local_db", an.shimmer("local_dB", ta, tb))):
                    if _finite(value) is not None:
                        level[key] = value
            return sr.measures(a, b, sr.pitch_stats(f0_st[sel]), sr.rate_and_pause_measures(timing, a, b), level)

        clip = span(0.0, duration, whole=True)
        windows = [span(a, b) for a, b in time_windows(duration, self.window_s, self.hop_s)]
        return ProsodyCues(
            clip=clip,
            windows=windows,
            window_s=self.window_s,
            hop_s=self.hop_s,
            functionals=self._functionals(an),
            provenance=Provenance(
                backend="praat",
                model="Praat voice report (pitch ac, pulses cc, harmonicity cc, formant burg)",
                version=self._version,
                params={"window_s": self.window_s, "hop_s": self.hop_s, "time_step_s": TIME_STEP_S,
                        "adaptive_range": self.adaptive, "floor_rule": list(self.floor_rule),
                        "ceiling_rule": list(self.ceiling_rule), "first_pass_hz": list(FIRST_PASS_HZ),
                        "pitch_floor_hz": an.floor, "pitch_ceiling_hz": an.ceiling,
                        "period_range_s": [PERIOD_FLOOR_S, PERIOD_CEILING_S],
                        "max_period_factor": MAX_PERIOD_FACTOR, "max_amplitude_factor": MAX_AMPLITUDE_FACTOR,
                        "formant_ceiling_hz": an.formant_ceiling,
                        "pause_source": timing.pause_source, "min_pause_s": sr.MIN_PAUSE_S},
            ),
        )

    def _functionals(self, an: _Analysis) -> dict[str, float]:
        """Clip-level Praat measures with no ``ProsodyMeasures`` field; NaN when undefined."""
        f = an.f0_hz[an.voiced]
        out: dict[str, float] = {
            "praat_pitch_floor_hz": an.floor, "praat_pitch_ceiling_hz": an.ceiling,
            "praat_f0_mean_hz": float(f.mean()) if f.size else math.nan,
            "praat_f0_median_hz": float(np.median(f)) if f.size else math.nan,
            "praat_f0_sd_hz": float(f.std()) if f.size else math.nan,
            "praat_f0_min_hz": float(f.min()) if f.size else math.nan,
            "praat_f0_max_hz": float(f.max()) if f.size else math.nan,
            "praat_voiced_ratio": float(an.voiced.mean()) if an.voiced.size else math.nan,
        }
        from parselmouth.praat import call

        # Praat's Get mean (energy averaging: robust to the -300 dB frames of digital zeros)
        out["praat_intensity_mean_db"] = float(call(an.intensity, "Get mean", 0, 0, "energy"))
        iv = an.on_pitch_grid(an.intensity)[an.voiced]
        out["praat_intensity_voiced_mean_db"] = float(iv.mean()) if iv.size else math.nan
        out["praat_intensity_voiced_sd_db"] = float(iv.std()) if iv.size else math.nan
        out["praat_n_periods"] = float(an.n_periods())
        enough = out["praat_n_periods"] >= 3
        for kind in JITTER_KINDS:
            out[_functional_name(kind, "jitter")] = an.jitter(kind) if enough else math.nan
        for kind in SHIMMER_KINDS:
            out[_functional_name(kind, "shimmer")] = an.shimmer(kind) if enough else math.nan
        hv = np.asarray(an.harmonicity.values[0], dtype=np.float64)
        hv = hv[hv > -199.0]
        out["praat_hnr_mean_db"] = float(hv.mean()) if hv.size else math.nan
        out["praat_hnr_sd_db"] = float(hv.std()) if hv.size else math.nan
        out["praat_formant_ceiling_hz"] = an.formant_ceiling
        fm = an.formants()
        for n in range(N_FORMANTS):
            col = fm[:, n]
            col = col[np.isfinite(col)]
            out[f"praat_f{n + 1}_mean_hz"] = float(col.mean()) if col.size else math.nan
            out[f"praat_f{n + 1}_median_hz"] = float(np.median(col)) if col.size else math.nan
        return {k: float(v) for k, v in out.items()}

