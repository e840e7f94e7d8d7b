"""Prosody from openSMILE's eGeMAPSv02 (Eyben et al. 2016), the field's standard parameter set.

openSMILE runs once per clip and hands back both the low-level descriptors (10 ms frames) and the
88 clip-level functionals, through the two external sinks of the package's multi-level output
config (one pass, not one per level); windows are slices of the LLD frames, so windowing costs no
extra pass.
Unvoiced frames are 0 in eGeMAPS' ``*_sma3nz`` descriptors; statistics use voiced frames only.
"""
from __future__ import annotations

import math

import numpy as np

from textualize.audio_cues import speech_rate as sr
from textualize.cues import MissingCue, ProsodyCues, ProsodyMeasures, Provenance, Word, time_windows
from textualize.registry import PROSODY_BACKENDS

F0 = "F0semitoneFrom27.5Hz_sma3nz"
LOUDNESS = "Loudness_sma3"
JITTER = "jitterLocal_sma3nz"
SHIMMER = "shimmerLocaldB_sma3nz"
HNR = "HNRdBACF_sma3nz"
# per-frame descriptors averaged over voiced frames (eGeMAPS computes their functionals the same way)
VOICED_MEANS = {
    "alpha_ratio_db": "alphaRatio_sma3", "hammarberg_db": "hammarbergIndex_sma3",
    "spectral_slope_0_500": "slope0-500_sma3", "spectral_slope_500_1500": "slope500-1500_sma3",
    "h1_h2_db": "logRelF0-H1-H2_sma3nz", "h1_a3_db": "logRelF0-H1-A3_sma3nz",
    "f1_hz": "F1frequency_sma3nz", "f2_hz": "F2frequency_sma3nz", "f3_hz": "F3frequency_sma3nz",
}
FLUX = "spectralFlux_sma3"
LLD_HOP_S = 0.01
VERSION = 2  # 2: spectral balance, formants, loudness dynamics, voicing rhythm, evidence durations,
# Praat pitch fallback
OWN_VOICING_MIN_FRAMES = 25  # openSMILE's own voiced frames behind its nz voice-quality/formant LLDs
LLD_MIN_SAMPLES = int(0.1 * sr.TARGET_SR)  # less than one 60 ms pitch frame plus context


@PROSODY_BACKENDS.register("opensmile")
class OpenSmileProsody:
    """eGeMAPSv02 prosody: pitch, loudness, jitter, shimmer, HNR, voicing; rates from speech_rate."""

    name = "opensmile"
    version = VERSION

    def __init__(self, window_s: float = 2.0, hop_s: float = 1.0, **options):
        if options:
            raise TypeError(f"opensmile prosody: unknown options {sorted(options)}")
        time_windows(1.0, window_s, hop_s)  # validates window/hop
        self.window_s = float(window_s)
        self.hop_s = float(hop_s)
        self._lld_smile = None
        self._version = ""
        self._pass_memo = sr.LastClipMemo()  # prepare() (beside ASR), measure() and lld() share one pass
        self._smile()

    def _smile(self):
        """The LLD-level ``opensmile.Smile`` (config paths, feature names), built once per instance
        (building costs ~0.5-1 s); the extraction itself runs both levels in ``_compute_both``."""
        if self._lld_smile is None:
            try:
                import opensmile
            except ImportError as e:  # pragma: no cover - dependency of the package
                from textualize.models import ModelUnavailableError

                raise ModelUnavailableError(f"openSMILE is not installed: pip install opensmile ({e})") from None
            self._lld_smile = opensmile.Smile(
                feature_set=opensmile.FeatureSet.eGeMAPSv02,
                feature_level=opensmile.FeatureLevel.LowLevelDescriptors,
            )
            self._version = opensmile.__version__
        return self._lld_smile

    def _one_pass(self, audio16k: np.ndarray):
        return self._pass_memo.get(audio16k, self._compute_both)

    def _compute_both(self, audio16k: np.ndarray):
        """LLDs ``(names, frame centres s, values)`` and functionals ``{name: value}`` from one run of
        the eGeMAPSv02 config. ``opensmile.Smile`` reads one level per run, so asking it for both
        levels ran the whole LLD graph twice; the package ships a two-sink output config
        (``standard_external_data_output_multi``) for exactly this, fed here the way ``Smile``
        feeds its single sink (16-bit PCM, same options)."""
        import os

        from opensmile.core.config import config as smile_config
        from opensmile.core.lib import OpenSMILE

        lld_smile = self._smile()
        root = lld_smile.default_config_root
        options = {
            "source": os.path.join(root, smile_config.EXTERNAL_INPUT_CONFIG),
            "sampleRate": sr.TARGET_SR,
            "nBits": 16,
            "sink": os.path.join(root, smile_config.EXTERNAL_OUTPUT_MULTI_CONFIG),
            "sinkLevelLLD": "lld",
            "sinkLevelFunc": "func",
            "bufferModeRbConf": os.path.join(root, "shared/BufferModeRb.conf.inc"),
            "frameModeFunctionalsConf": os.path.join(root, "shared/FrameModeFunctionals.conf.inc"),
        }
        rows: dict[str, list] = {"extsinklld": [], "extsinkfunc": []}
        spans: list[tuple[float, float]] = []

        def collect(sink):
            def callback(data, meta):
                rows[sink].append(np.array(data, dtype=np.float64).ravel())
                if sink == "extsinklld":
                    spans.append((meta.time, meta.time + meta.lengthSec))
            return callback

        pcm = np.clip(np.asarray(audio16k, np.float64) * 32768.0, -32768, 32767).astype(np.int16)
        smile = OpenSMILE()
        try:
            smile.initialize(config_file=lld_smile.config_path, options=options, loglevel=0, log_file="", debug=False)
            names = {sink: [smile.external_sink_get_element_name(sink, i)
                            for i in range(smile.external_sink_get_num_elements(sink))] for sink in rows}
            for sink in rows:
                smile.external_sink_set_callback_ex(sink, collect(sink))
            smile.external_audio_source_write_data(smile_config.EXTERNAL_SOURCE_COMPONENT, bytes(pcm))
            smile.external_audio_source_set_eoi(smile_config.EXTERNAL_SOURCE_COMPONENT)
            smile.run()
        except Exception as e:
            raise ValueError(f"openSMILE failed on {audio16k.size} samples: {type(e).__name__}: {e}") from None
        finally:
            smile.free()
        if not rows["extsinkfunc"]:
            raise ValueError(f"openSMILE gave no functionals for {audio16k.size} samples (clip too short)")
        n_lld = len(names["extsinklld"])
        values = np.vstack(rows["extsinklld"]) if rows["extsinklld"] else np.zeros((0, n_lld))
        if spans:  # as Smile's frame index: the first frame starts at 0, the last ends at the signal's end
            spans[0] = (0.0, spans[0][1])
            spans[-1] = (spans[-1][0], audio16k.size / sr.TARGET_SR)
        times = np.array([(a + b) / 2.0 for a, b in spans], dtype=np.float64)
        functionals = dict(zip(names["extsinkfunc"], (float(v) for v in rows["extsinkfunc"][0])))
        return (names["extsinklld"], times, values), functionals

    def prepare(self, audio: np.ndarray, sample_rate: int = sr.TARGET_SR) -> None:
        """The word-independent openSMILE pass of a clip, kept for ``measure``/``lld`` of the same
        audio; extraction runs this beside ASR."""
        x = sr.as_mono_16k(audio, sample_rate)
        if sr.missing_reason(x) is None:  # MIN_DURATION_S also keeps it above LLD_MIN_SAMPLES
            self._one_pass(x)

    def lld(self, audio: np.ndarray, sample_rate: int = sr.TARGET_SR) -> tuple[list[str], float, np.ndarray]:
        """The 25 eGeMAPSv02 LLDs at a 10 ms hop (unvoiced frames 0 in ``*_sma3nz`` columns)."""
        x = sr.as_mono_16k(audio, sample_rate)
        if x.size < LLD_MIN_SAMPLES:  # openSMILE would return one NaN row with a warning
            names = list(self._smile().feature_names)
            return names, LLD_HOP_S, np.zeros((0, len(names)), np.float32)
        names, _, values = self._one_pass(x)[0]
        return names, LLD_HOP_S, np.nan_to_num(values, nan=0.0).astype(np.float32)

    def measure(self, audio: np.ndarray, sample_rate: int = sr.TARGET_SR,
                words: list[Word] | None = None, language: str | None = None) -> ProsodyCues | MissingCue:
        x = sr.as_mono_16k(audio, sample_rate)
        missing = sr.missing_reason(x)
        if missing is not None:
            return missing
        (names, times, values), functionals = self._one_pass(x)
        col = {n: values[:, i] for i, n in enumerate(names)}
        f0 = col[F0]
        voiced = f0 > 0
        if not np.any(voiced) and not words:
            # audible but no voiced frame and no recognised word: nothing to describe as speech
            return MissingCue("no_speech", "openSMILE found no voiced frame (no F0) in the clip")
        # words but no voicing (whispered or low-quality audio): loudness, rate and pauses are still
        # measured; pitch and voice quality stay NaN and the converters say so
        f0_st = np.where(voiced, f0, np.nan)
        duration = x.size / sr.TARGET_SR
        timing = sr.speech_timing(x, times, voiced, words, language=language)
        own_voiced = voiced
        voiced, f0_st, fallback = sr.pitch_fallback(x, times, voiced, f0_st, timing, LLD_HOP_S)
        if fallback and not words:  # syllable nuclei need the voicing
            timing = sr.speech_timing(x, times, voiced, words, language=language)

        def span(a: float, b: float) -> ProsodyMeasures:
            sel = (times >= a) & (times < b)
            v = sel & voiced
            own = sel & own_voiced
            # openSMILE's nz descriptors exist only on its own voiced frames: with Praat's pitch,
            # they are used when openSMILE itself voiced enough of the span
            nz_ok = not fallback or np.count_nonzero(own) >= OWN_VOICING_MIN_FRAMES
            parts = [sr.pitch_stats(f0_st[sel]), sr.rate_and_pause_measures(timing, a, b),
                     sr.voicing_measures(voiced[sel], LLD_HOP_S, f0_st[sel])]
            level = {"rms_dbfs": sr.rms_dbfs(x[int(a * sr.TARGET_SR):int(math.ceil(b * sr.TARGET_SR))])}
            if np.any(sel):
                loud = col[LOUDNESS][sel]
                level.update(loudness_mean=float(loud.mean()), loudness_sd=float(loud.std()),
                             voiced_ratio=float(np.count_nonzero(v) / np.count_nonzero(sel)),
                             spectral_flux=float(col[FLUX][sel].mean()))
                level.update(sr.contour_dynamics(loud, LLD_HOP_S))
                for key, name in VOICED_MEANS.items():
                    if name.endswith("nz") and not nz_ok:
                        continue
                    vals = col[name][own if name.endswith("nz") else v]
                    vals = vals[vals != 0] if name.endswith("nz") else vals
                    if vals.size >= 3:
                        level[key] = float(vals.mean())
            if np.count_nonzero(own) >= 3 and nz_ok:
                v = own
                # openSMILE's "nz" convention: 0 marks "not computed" even inside voiced frames
                for key, name in (("jitter_local", JITTER), ("shimmer_local_db", SHIMMER), ("hnr_db", HNR)):
                    vals = col[name][v]
                    vals = vals[vals != 0]
                    if vals.size:
                        level[key] = float(vals.mean())
            return sr.measures(a, b, *parts, level)

        clip = span(0.0, duration)
        windows = [span(a, b) for a, b in time_windows(duration, self.window_s, self.hop_s)]
        return ProsodyCues(
            clip=clip,
            windows=windows,
            window_s=self.window_s,
            hop_s=self.hop_s,
            functionals=functionals,
            provenance=Provenance(
                backend="opensmile",
                model="eGeMAPSv02",
                version=self._version,
                params={"window_s": self.window_s, "hop_s": self.hop_s, "lld_hop_s": LLD_HOP_S,
                        "pause_source": timing.pause_source, "min_pause_s": sr.MIN_PAUSE_S,
                        "syllable_source": timing.syllable_source, "backend_version": VERSION,
                        "pitch_source": "praat-ac (fallback)" if fallback else "opensmile-shs"},
            ),
        )
