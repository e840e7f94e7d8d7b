"""Precomputed cues (``--dataset cue-table``): for users who already ran their own extractors.

``root`` is a CSV (or a folder holding ``cue_table.csv``) with one row per clip: ``id``, ``label``,
``split`` (required); ``speaker``, ``transcript``, ``path`` (media, optional), ``start``, ``end``,
``au_scale``, ``face_table`` (optional); and cue columns. Labels/splits/ids follow the manifest
rules (``labels.txt`` beside the CSV or ``classes=``; "dev"/"val" -> "validation").

Face cues -> ``Sample.precomputed["face"]`` (``FacialCues`` with ``au_summary`` only):

* AU columns ``AU12``, ``AU12_mean``, ``AU12_r``, ``AU12_r_mean`` -> ``AUStats.mean``;
  ``AU12_max``/``AU12_r_max`` -> ``max``; ``AU12_c``/``AU12_c_mean``/``AU12_active_fraction``
  (OpenFace occurrence averaged over frames) -> ``active_fraction``; ``AU12_peak_time_s`` ->
  ``peak_time_s``; ``AU12_onset_time_s`` -> ``onset_time_s``. Any spelling of the id works
  (AU1, AU01, au12). py-feat's ``Fex.extract_summary`` prefixes (``mean_AU12``, ``max_AU12``) work
  too; ``_std``/``_stddev``/``_min`` twins (OpenWillis, py-feat ``std_AU12``) and OpenWillis'
  ``_speaking``/``_not_speaking`` splits are kept in meta, not verbalised.
* AU scale: the ``au_scale`` option, else an ``au_scale`` column (per row), else ``_r`` columns ->
  OpenFace ``intensity_0_5``, else all values within 0..1 -> py-feat ``probability``, else values
  within 0..5 -> ``intensity_0_5``. Scale names: probability | intensity_0_5 | activation (also
  "py-feat", "openface", "mediapipe").
* Face-emotion scores as py-feat names them (anger, disgust, fear, happiness, sadness, surprise,
  neutral; also Happy/Sad/Angry…) plain or ``_mean`` -> ``emotion_names``/``emotion_values`` (ONE
  row: the per-clip means; the per-frame lists stay empty); ``_max`` -> ``meta["face_emotion_max"]``.
  py-feat gives probabilities (0-1); OpenWillis multiplies them by 100: a table whose emotion values
  exceed 1 (all within 0-100) is read as percent and divided by 100 (a notice says so).
* ``face_table``: path (relative to the CSV) of a per-frame py-feat Fex / OpenFace CSV, imported
  with the ``csv`` AU backend when it is installed; its per-frame ``FacialCues`` replace the
  per-clip columns for that row.
* A table without any face column -> ``MissingCue("no_face")`` for every row; a row whose face
  cells are all empty -> ``MissingCue("no_face")`` for that row.

Prosody columns -> ``precomputed["prosody"] = ProsodyCues(clip=ProsodyMeasures(...))``. A column
is mapped only together with its unit: every recognised name carries the unit its tool writes, and
values are converted to the unit of the ``ProsodyMeasures`` field (Hz, semitones re 27.5 Hz, sone,
dBFS, fractions, dB, s). Names are matched case-insensitively after turning every non-alphanumeric
run into "_". Recognised tools (names looked up in their sources):

* **OpenWillis** ``vocal_acoustics`` summary: ``f0_mean`` (Hz), ``f0_stddev`` (Hz; SD in semitones
  ~ 17.31 x f0_stddev / f0_mean, first-order), ``hnr_mean`` (dB), ``jitter`` (fraction), ``shimmer_db``
  (dB), ``loudness_mean`` (Praat intensity in dB, see below), ``silence_ratio`` (percent of
  unvoiced frames: voiced_ratio = 1 - x/100), ``pause_meandur`` (s). Kept, not verbalised:
  ``f0_range``, ``jitter_abs`` (s), ``jitter_rap``/``ppq5``/``ddp``, ``shimmer`` (fraction),
  ``shimmer_apq3``/``5``/``11``/``dda``, ``spir``, ``pause_rate``, ``f1_mean``…, ``*_stddev`` …
* **openSMILE** eGeMAPS / GeMAPS functionals: ``F0semitoneFrom27.5Hz_sma3nz_amean`` (st),
  ``…_stddevNorm`` (x amean = SD in st), ``…_pctlrange0-2`` (st), ``loudness_sma3_amean`` (sone),
  ``loudness_sma3_stddevNorm`` (x amean = SD in sone), ``jitterLocal_sma3nz_amean`` (fraction),
  ``shimmerLocaldB_sma3nz_amean`` (dB), ``HNRdBACF_sma3nz_amean`` (dB). ComParE 2016:
  ``F0final_sma_posamean`` (Hz over voiced frames; ``F0final_sma_amean`` counts unvoiced frames as 0
  and is not mapped), ``jitterLocal_sma_amean`` (fraction); ``shimmerLocal_sma_amean`` is a
  fraction and ``logHNR_sma_amean`` a log ratio: kept, not verbalised.
* **Praat / parselmouth scripts** (Feinberg's "Measure Pitch, HNR, Jitter, Shimmer and Formants",
  Praat's voice report, this package's ``--prosody praat``): ``meanF0Hz``/``meanF0`` (Hz),
  ``stdevF0Hz`` (Hz, as OpenWillis' SD), ``hnr`` (dB), ``localJitter`` (fraction),
  ``localdbShimmer`` (dB), ``localShimmer`` (fraction, kept), ``praat_*`` names of the praat
  backend's functionals.
* Generic names: ``pitch_mean_hz``, ``pitch_mean_st``, ``pitch_sd_st``, ``pitch_range_st``,
  ``rms_dbfs``, ``speaking_rate``/``syllable_rate`` (syllables/s), ``words_per_s``/``wpm``,
  ``pause_count``/``pauses``, ``pause_mean_s``, ``pause_ratio``, ``voiced_ratio``,
  ``jitter_percent`` (percent), ``hnr_db`` … (``PROSODY_COLUMNS`` holds the full table).

Rules for ambiguous names (documented, value-checked, never silent):

* bare ``jitter``/``jitter_local`` are fractions (Praat's "Get jitter (local)", OpenWillis); a value
  above 0.3 cannot be one (Praat's maximum period factor 1.3 bounds it) and is an error.
* bare ``shimmer``/``shimmer_local`` are fractions (Praat, OpenWillis): kept, not verbalised
  (``ProsodyMeasures`` holds shimmer in dB); above 0.5 (beyond Praat's amplitude factor 1.6) is an
  error suggesting ``shimmer_db`` or ``--column-map``.
* ``loudness``/``loudness_mean``: values all within 0-20 are sone (eGeMAPS' loudness); values all
  at or above 20 are dB (Praat's intensity, as OpenWillis writes it) and go to ``rms_dbfs``.
* ``intensity``/``intensity_db``/``intensity_mean`` and dB-valued ``loudness``: values <= 0 are
  dBFS; positive values are Praat dB (re 2e-5 with full scale = 1 Pa, Praat's reading of a sound
  file), converted with dBFS = dB - 93.98 (a frame-dB mean, not an energy mean: an approximation).
  A column mixing both is an error.
* a measure given directly wins over one derived from another unit (``pitch_mean_st`` from
  ``f0_mean``); two direct columns for one measure keep the one of the higher-priority name
  (tool-specific before generic), and a tie is an error naming both.

``column_map`` (``--column-map FILE``, YAML/JSON ``{column: {measure: FIELD, unit: UNIT}}`` or
``{column: FIELD}`` for the field's own unit; ``measure: keep`` keeps a column unverbalised,
``measure: ignore`` drops it) overrides the built-in names; units are checked against the field
(``MEASURE_UNITS``). Prosody columns kept but not verbalised go to ``ProsodyCues.functionals``
under their column name; every column that is not verbalised stays in ``Sample.meta`` and is
listed once in the notices.

An empty/NaN cell -> the measure is NaN (converters omit it); a non-numeric cell is a ValueError
naming the row and column. No prosody column: a row with a media ``path`` gets no
``precomputed["prosody"]`` (extraction may run), a row without one gets
``MissingCue("not_requested")``. Provenance: backend ``cue-table``, with the column -> measure and
unit mapping in its params.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Callable, Sequence

from textualize import __version__
from textualize.corpora import listed, plural
from textualize.corpora.base import Sample
from textualize.corpora.manifest import ManifestAdapter, read_table, table_rows_to_samples
from textualize.cues import AUStats, FacialCues, MissingCue, ProsodyCues, ProsodyMeasures, Provenance
from textualize.registry import CORPORA

REQUIRED = ("id", "label", "split")
NON_CUE = {"id", "label", "split", "speaker", "transcript", "path", "media_path", "start", "end", "au_scale", "face_table"}

SCALE_ALIASES = {
    "probability": "probability", "prob": "probability", "py-feat": "probability", "pyfeat": "probability",
    "intensity_0_5": "intensity_0_5", "intensity": "intensity_0_5", "openface": "intensity_0_5", "0-5": "intensity_0_5",
    "activation": "activation", "mediapipe": "activation", "blendshape": "activation",
}

EMOTIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
EMOTION_ALIASES = {
    "anger": "anger", "angry": "anger", "disgust": "disgust", "disgusted": "disgust", "fear": "fear",
    "fearful": "fear", "happiness": "happiness", "happy": "happiness", "joy": "happiness", "sadness": "sadness",
    "sad": "sadness", "surprise": "surprise", "surprised": "surprise", "neutral": "neutral",
}

PRAAT_DB_TO_DBFS = -20.0 * math.log10(2e-5)  # 93.98 dB: Praat's intensity of a full-scale file is re 2e-5 Pa
FRACTION_LIMITS = {"jitter": 0.3, "shimmer": 0.5}  # Praat's period / amplitude factors bound them


def _st_of_hz(v: float) -> float:
    return 12.0 * math.log2(v / 27.5) if v > 0 else math.nan


# field -> unit -> converter to the field's unit (None: the column needs another column, see _DERIVED)
MEASURE_UNITS: dict[str, dict[str, Callable[[float], float]]] = {
    "pitch_mean_hz": {"Hz": float},
    "pitch_mean_st": {"semitones re 27.5 Hz": float, "Hz": _st_of_hz},
    "pitch_sd_st": {"semitones": float},
    "pitch_range_st": {"semitones": float},
    "loudness_mean": {"sone": float},
    "loudness_sd": {"sone": float},
    "rms_dbfs": {"dBFS": float, "dB": lambda v: v - PRAAT_DB_TO_DBFS},
    "speaking_rate_syl_per_s": {"syllables/s": float, "syllables/min": lambda v: v / 60},
    "speaking_rate_words_per_s": {"words/s": float, "words/min": lambda v: v / 60},
    "pause_count": {"count": float},
    "pause_mean_s": {"s": float, "ms": lambda v: v / 1000},
    "pause_ratio": {"fraction": float, "percent": lambda v: v / 100},
    "voiced_ratio": {"fraction": float, "percent": lambda v: v / 100,
                     "percent unvoiced": lambda v: 1 - v / 100, "fraction unvoiced": lambda v: 1 - v},
    "jitter_local": {"fraction": float, "percent": lambda v: v / 100},
    "shimmer_local_db": {"dB": float},
    "hnr_db": {"dB": float},
}
UNIT_ALIASES = {
    "hz": "Hz", "st": "semitones", "semitone": "semitones", "semitones": "semitones",
    "semitones re 27.5 hz": "semitones re 27.5 Hz", "st re 27.5 hz": "semitones re 27.5 Hz", "sone": "sone",
    "dbfs": "dBFS", "db": "dB", "db spl": "dB", "praat_db": "dB", "syllables/s": "syllables/s",
    "syl/s": "syllables/s", "syllables/min": "syllables/min", "words/s": "words/s", "words/min": "words/min",
    "wpm": "words/min", "count": "count", "s": "s", "sec": "s", "seconds": "s", "ms": "ms",
    "fraction": "fraction", "ratio": "fraction", "proportion": "fraction", "percent": "percent", "%": "percent",
    "pct": "percent", "percent unvoiced": "percent unvoiced", "fraction unvoiced": "fraction unvoiced",
}
KEEP = "keep"  # a recognised voice measure without a ProsodyMeasures field: kept, not verbalised


def _spec(measure: str, unit: str, priority: int = 1, *names: str) -> dict[str, tuple[str, str, int]]:
    return {n: (measure, unit, priority) for n in names}


# normalised column name -> (ProsodyMeasures field | "keep", unit as the tool writes it, priority)
# priority: 2 = a tool's exact name, 1 = a generic alias (see "Rules for ambiguous names")
PROSODY_COLUMNS: dict[str, tuple[str, str, int]] = {
    **_spec("pitch_mean_hz", "Hz", 1, "f0", "f0_hz", "f0_mean_hz", "pitch", "pitch_hz", "pitch_mean",
            "pitch_mean_hz", "mean_f0", "meanf0"),
    **_spec("pitch_mean_hz", "Hz", 2, "f0_mean", "meanf0hz", "f0final_sma_posamean", "praat_f0_mean_hz"),
    **_spec("pitch_mean_st", "semitones re 27.5 Hz", 1, "pitch_st", "pitch_mean_st", "f0_st", "f0_mean_st"),
    **_spec("pitch_mean_st", "semitones re 27.5 Hz", 2, "f0semitonefrom27_5hz_sma3nz_amean"),
    **_spec("pitch_sd_st", "semitones", 1, "pitch_sd_st", "pitch_std_st", "f0_sd_st", "f0_std_st"),
    **_spec("pitch_range_st", "semitones", 1, "pitch_range_st", "f0_range_st"),
    **_spec("pitch_range_st", "semitones", 2, "f0semitonefrom27_5hz_sma3nz_pctlrange0_2"),
    **_spec("loudness_mean", "sone", 2, "loudness_sma3_amean"),
    **_spec("loudness_sd", "sone", 1, "loudness_sd", "loudness_std"),
    **_spec("rms_dbfs", "dBFS", 1, "rms_dbfs", "rms_db", "energy_dbfs"),
    **_spec("speaking_rate_syl_per_s", "syllables/s", 1, "rate", "speaking_rate", "speech_rate", "syllable_rate",
            "syllables_per_s", "rate_syl_per_s", "speaking_rate_syl_per_s", "speechrate_nsyll_dur"),
    **_spec("speaking_rate_words_per_s", "words/s", 1, "words_per_s", "word_rate", "speaking_rate_words_per_s"),
    **_spec("speaking_rate_words_per_s", "words/min", 1, "wpm", "words_per_min"),
    **_spec("pause_count", "count", 1, "pauses", "pause_count", "n_pauses", "num_pauses", "npause"),
    **_spec("pause_mean_s", "s", 1, "pause_mean_s", "pause_mean", "mean_pause", "mean_pause_s",
            "mean_pause_duration", "pause_duration_mean"),
    **_spec("pause_mean_s", "s", 2, "pause_meandur"),
    **_spec("pause_ratio", "fraction", 1, "pause_ratio", "pause_fraction"),
    **_spec("voiced_ratio", "fraction", 1, "voiced_ratio", "voiced_fraction"),
    **_spec("voiced_ratio", "fraction", 2, "praat_voiced_ratio"),
    **_spec("voiced_ratio", "percent unvoiced", 2, "silence_ratio"),
    **_spec("jitter_local", "fraction", 1, "jitter", "jitter_local"),
    **_spec("jitter_local", "fraction", 2, "jitterlocal_sma3nz_amean", "jitterlocal_sma_amean", "localjitter",
            "praat_jitter_local"),
    **_spec("jitter_local", "percent", 1, "jitter_percent", "jitter_pct"),
    **_spec("shimmer_local_db", "dB", 1, "shimmer_db", "shimmer_local_db", "shimmerdb"),
    **_spec("shimmer_local_db", "dB", 2, "shimmerlocaldb_sma3nz_amean", "localdbshimmer", "praat_shimmer_local_db"),
    **_spec("hnr_db", "dB", 1, "hnr", "hnr_db", "harmonicity"),
    **_spec("hnr_db", "dB", 2, "hnrdbacf_sma3nz_amean", "hnr_mean", "praat_hnr_mean_db"),
    # Praat / OpenWillis measures with no ProsodyMeasures field: kept in functionals, not verbalised
    **_spec(KEEP, "fraction", 1, "shimmer", "shimmer_local", "localshimmer", "shimmerlocal_sma_amean"),
    **_spec(KEEP, "", 1, "f0_range", "f0_min", "f0_max", "jitter_abs", "jitter_rap", "jitter_ppq5", "jitter_ddp",
            "localabsolutejitter", "rapjitter", "ppq5jitter", "ddpjitter", "shimmer_apq3", "shimmer_apq5",
            "shimmer_apq11", "shimmer_dda", "apq3shimmer", "apq5shimmer", "apq11shimmer", "ddashimmer", "aqpq5shimmer",
            "spir", "pause_rate", "dur_med", "dur_mad", "gne_ratio", "rel_f0_sd", "rel_se0_sd", "f0_kurtosis",
            "f0_skewness", "f0final_sma_amean", "loghnr_sma_amean", "pcm_rmsenergy_sma_amean",
            "equivalentsoundlevel_dbp", "loudnesspeakspersec", "voicedsegmentspersec",
            "meanvoicedsegmentlengthsec", "meanunvoicedsegmentlength"),
}
# bare names whose unit is told by their values (see the module docstring)
_LOUDNESS_BY_VALUE = {"loudness": "loudness_mean", "loudness_mean": "loudness_mean"}
_INTENSITY_BY_VALUE = {"intensity", "intensity_db", "intensity_mean"}
_STATS_SUFFIX = re.compile(r"_(?:mean|stddev|std|sd|min|max|range)$")
_KEEP_FAMILIES = re.compile(r"^(?:f[1-4]|hnr|loudness|f0|praat_[a-z0-9_]+)_(?:mean|stddev|std|sd|min|max|range|median)?"
                            r"(?:_hz|_db)?$|^praat_")
# (measure, [(column needed, factor by which it multiplies the other)]): SD = stddevNorm x mean
_DERIVED_SD = {
    "pitch_sd_st": [("f0semitonefrom27_5hz_sma3nz_stddevnorm", "f0semitonefrom27_5hz_sma3nz_amean")],
    "loudness_sd": [("loudness_sma3_stddevnorm", "loudness_sma3_amean")],
}
_HZ_SD_TO_ST = 12.0 / math.log(2.0)  # d(st)/d(ln f): SD_st ~ 17.31 x SD_Hz / mean_Hz (first order)
_HZ_SD = (("f0_stddev", "f0_mean"), ("stdevf0hz", "meanf0hz"), ("praat_f0_sd_hz", "praat_f0_mean_hz"))

_AU_COL = re.compile(
    r"^(?:(mean|max|std|min|sem)_)?au[_ ]?0*(\d{1,2})(?:_(r|c))?"
    r"(?:_(mean|max|active_fraction|peak_time_s|onset_time_s|std|stddev|sd|min))?"
    r"(_speaking|_not_speaking)?$", re.IGNORECASE
)
_EMO_COL = re.compile(r"^(?:(mean|max|std|min|sem)_)?([a-z]+)(?:_(mean|max|std|stddev|sd|min))?(_speaking|_not_speaking)?$",
                      re.IGNORECASE)
_UNVERBALISED_STATS = {"std", "stddev", "sd", "min", "sem"}


def norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def load_column_map(column_map: str | Path | dict | None) -> dict[str, tuple[str, str]]:
    """``{column: (measure | "keep" | "ignore", unit)}`` from a YAML/JSON file or a mapping."""
    if column_map is None:
        return {}
    if isinstance(column_map, (str, Path)):
        import yaml

        path = Path(column_map)
        if not path.exists():
            raise ValueError(f"cue-table: column map {path} does not exist")
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}  # JSON is YAML
        where = str(path)
    else:
        data, where = column_map, "column_map"
    if not isinstance(data, dict):
        raise ValueError(f"{where}: a column map is a mapping column -> {{measure, unit}}, got {type(data).__name__}")
    out = {}
    for col, spec in data.items():
        if isinstance(spec, str):
            spec = {"measure": spec}
        if not isinstance(spec, dict) or "measure" not in spec:
            raise ValueError(f"{where}: column {col!r}: give {{measure: FIELD, unit: UNIT}} or a field name, got {spec!r}")
        measure, unit = str(spec["measure"]), spec.get("unit")
        if measure in (KEEP, "ignore"):
            out[str(col)] = (measure, str(unit or ""))
            continue
        if measure not in MEASURE_UNITS:
            raise ValueError(f"{where}: column {col!r}: unknown measure {measure!r}; choose one of "
                             f"{', '.join(MEASURE_UNITS)}, keep, ignore")
        allowed = MEASURE_UNITS[measure]
        unit = next(iter(allowed)) if unit is None else UNIT_ALIASES.get(str(unit).strip().lower(), str(unit))
        if unit not in allowed:
            raise ValueError(f"{where}: column {col!r}: {measure} cannot be read from unit {spec.get('unit')!r}; "
                             f"units accepted: {', '.join(allowed)}")
        out[str(col)] = (measure, unit)
    return out


def classify_columns(columns: Sequence[str], mapped: Sequence[str] = ()) -> tuple[dict, dict, dict, list[str], list[str]]:
    """Column -> (AU id, stat, kind) / (emotion, stat) / prosody spec (measure, unit, priority);
    plus face/voice columns recognised but not verbalised, and unrecognised columns."""
    au, emo, pros, unverbalised, other = {}, {}, {}, [], []
    for c in columns:
        if c in NON_CUE or c in mapped:
            continue
        name = c.strip()
        m = _AU_COL.match(name)
        if m:
            prefix, num, kind, stat, split = m.groups()
            if prefix and stat:  # "mean_AU12_max" is no tool's name
                other.append(c)
                continue
            kind = (kind or "").lower()
            stat = (prefix or stat or "mean").lower()
            if split or stat in _UNVERBALISED_STATS:
                unverbalised.append(c)
                continue
            if kind == "c" and stat == "mean":
                stat = "active_fraction"
            au[c] = (f"AU{int(num):02d}", stat, kind)
            continue
        m = _EMO_COL.match(name)
        if m and m.group(2).lower() in EMOTION_ALIASES and not (m.group(1) and m.group(3)):
            stat = (m.group(1) or m.group(3) or "mean").lower()
            if m.group(4) or stat in _UNVERBALISED_STATS:
                unverbalised.append(c)
            else:
                emo[c] = (EMOTION_ALIASES[m.group(2).lower()], stat)
            continue
        key = norm(c)
        if key in PROSODY_COLUMNS:
            pros[c] = PROSODY_COLUMNS[key]
        elif key in _LOUDNESS_BY_VALUE or key in _INTENSITY_BY_VALUE:
            pros[c] = ("?", "by value", 1)  # resolved on the values (resolve_units)
        elif any(key == a for pair in _HZ_SD for a in pair[:1]) or any(key == d for v in _DERIVED_SD.values()
                                                                      for d, _ in v):
            pros[c] = ("derived", "", 0)
        elif _KEEP_FAMILIES.match(key):  # voice summaries without a field (formants, SDs, ranges)
            pros[c] = (KEEP, "", 0)
        elif key.startswith("mouth_openness_") and _STATS_SUFFIX.search(key):  # OpenWillis face summary
            unverbalised.append(c)
        else:
            other.append(c)
    return au, emo, pros, unverbalised, other


def _check_range(path: Path, c: str, vals: list[float], limit: float, what: str, hint: str) -> None:
    bad = [v for v in vals if math.isfinite(v) and (v < 0 or v > limit)]
    if bad:
        raise ValueError(f"{path}: column {c!r} has values up to {max(bad):g}; as {what} it must lie in 0..{limit:g}. {hint}")


def resolve_prosody_columns(path: Path, pros_cols: dict, values: dict) -> tuple[dict, list[str]]:
    """Apply the unit rules of the module docstring.

    Returns ``{label: (field, unit, priority, value_of(row) -> float in the field's unit)}`` (one
    entry per field; label = the column, or "a x b" for a derived value) and the voice columns kept
    but not verbalised."""
    candidates: dict[str, list[tuple[int, str, str]]] = {}  # field -> [(priority, column, unit)]
    kept: list[str] = []
    derived_inputs: dict[str, str] = {}
    for c, (measure, unit, prio) in pros_cols.items():
        key = norm(c)
        finite = [v for v in values[c] if math.isfinite(v)]
        if measure == "?":  # loudness / intensity told by their values
            if key in _INTENSITY_BY_VALUE or all(v >= 20 for v in finite) and finite:
                pos = [v > 0 for v in finite]
                if any(pos) and not all(pos):
                    raise ValueError(f"{path}: column {c!r} mixes values <= 0 (dBFS) and > 0 (Praat dB); "
                                     "give its unit with --column-map")
                measure, unit = "rms_dbfs", "dB" if any(pos) else "dBFS"
            elif all(v <= 20 for v in finite):
                measure, unit = _LOUDNESS_BY_VALUE[key], "sone"
            else:
                raise ValueError(f"{path}: column {c!r} has values both below and above 20: neither sone (eGeMAPS "
                                 "loudness, 0-20) nor dB (Praat intensity); give its unit with --column-map")
        if measure == "derived":
            derived_inputs[key] = c
            continue
        if prio < 3 and key in ("jitter", "jitter_local"):
            _check_range(path, c, values[c], FRACTION_LIMITS["jitter"], "local jitter (a fraction, as Praat and "
                         "OpenWillis write it)", "Percent? name it jitter_percent or use --column-map")
        if prio < 3 and key in ("shimmer", "shimmer_local", "localshimmer"):
            _check_range(path, c, values[c], FRACTION_LIMITS["shimmer"], "local shimmer (a fraction, as Praat and "
                         "OpenWillis write it)", "dB? name it shimmer_db or use --column-map")
        if measure == KEEP:
            kept.append(c)
            continue
        if measure == "rms_dbfs" and unit == "dBFS" and any(v > 0 for v in finite):
            raise ValueError(
                f"{path}: column {c!r} has positive values; rms_dbfs is dB re full scale (<= 0). Praat intensity "
                "(dB re 2e-5, full scale = 1 Pa) is read from columns named intensity/intensity_db or with "
                "--column-map unit dB")
        if measure == "voiced_ratio" and unit == "percent unvoiced":
            _check_range(path, c, values[c], 100.0, "a percentage of unvoiced frames", "")
        candidates.setdefault(measure, []).append((prio, c, unit))

    direct: dict[str, tuple] = {}
    for measure, cands in candidates.items():
        cands.sort(key=lambda t: -t[0])
        top = [t for t in cands if t[0] == cands[0][0]]
        if len(top) > 1:
            raise ValueError(f"{path}: columns {', '.join(repr(t[1]) for t in top)} all map to the prosody measure "
                             f"{measure!r} with equal priority; keep one, or say which with --column-map "
                             "(measure: keep for the others)")
        _, c, unit = cands[0]
        convert = MEASURE_UNITS[measure][unit]
        direct[c] = (measure, unit, cands[0][0], _reader(values[c], convert))
        kept += [t[1] for t in cands[1:]]
    have = {m for m, _, _, _ in direct.values()}
    # derived values: only where the measure is not given directly
    if "pitch_mean_st" not in have:
        hz = [(c, t) for c, t in direct.items() if t[0] == "pitch_mean_hz"]
        if hz:
            c, t = hz[0]
            direct[f"{c} (Hz -> st)"] = ("pitch_mean_st", "Hz", 0, _reader(values[c], _st_of_hz))
    used = set()
    if "pitch_sd_st" not in have:
        for sd_key, mean_key in _HZ_SD:
            if sd_key in derived_inputs and mean_key in {norm(c) for c in direct}:
                sd_c = derived_inputs[sd_key]
                mean_c = next(c for c in direct if norm(c) == mean_key)
                sd, mean = values[sd_c], values[mean_c]
                direct[f"{sd_c} / {mean_c} x 17.31"] = (
                    "pitch_sd_st", "Hz SD / Hz mean", 0,
                    lambda i, sd=sd, mean=mean: _HZ_SD_TO_ST * sd[i] / mean[i] if mean[i] > 0 else math.nan)
                used.add(sd_key)
                break
    for measure, pairs in _DERIVED_SD.items():
        for norm_key, mean_key in pairs:
            if measure in have or norm_key not in derived_inputs:
                continue
            mean_c = next((c for c in direct if norm(c) == mean_key), None)
            if mean_c is None:
                continue
            a, b = values[derived_inputs[norm_key]], values[mean_c]
            direct[f"{derived_inputs[norm_key]} x {mean_c}"] = (
                measure, "stddevNorm x mean", 0, lambda i, a=a, b=b: a[i] * b[i])
            used.add(norm_key)
    kept += [c for k, c in derived_inputs.items() if k not in used]
    return direct, kept


def _reader(column: list[float], convert: Callable[[float], float]) -> Callable[[int], float]:
    return lambda i: convert(column[i]) if math.isfinite(column[i]) else math.nan


def _num(value: object, where: str) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {value!r} is not a number") from None


@CORPORA.register("cue-table")
class CueTableAdapter(ManifestAdapter):
    """Per-clip precomputed cues -> samples with ``precomputed`` face/prosody records.

    A manifest whose rows carry cues instead of media: the label map comes from the table (or
    ``classes=``) exactly as for ``manifest``."""

    name = "cue-table"

    def samples(
        self,
        root: Path | str,
        classes: str | Sequence[str] | None = None,
        au_scale: str | None = None,
        require_media: bool = False,
        column_map: str | Path | dict | None = None,
    ) -> list[Sample]:
        """Samples of the cue table at ``root`` (see the module docstring); ``column_map``: a
        YAML/JSON file or mapping ``{column: {measure, unit}}`` for names not recognised."""
        self.notices = []
        root = Path(root)
        path = root / "cue_table.csv" if root.is_dir() else root
        if not path.exists():
            raise ValueError(f"cue-table: {path} does not exist")
        explicit = load_column_map(column_map)
        rows = read_table(path)
        samples, self._label_map, rows = table_rows_to_samples(
            self, path, rows, REQUIRED, classes if classes is not None else self._classes, id_from_path=False
        )
        columns = list(dict.fromkeys(c for r in rows for c in r))
        unknown_map = [c for c in explicit if c not in columns]
        if unknown_map:
            raise ValueError(f"{path}: the column map names columns the table does not have: {listed(unknown_map)}")
        au_cols, emo_cols, pros_cols, unverbalised, other = classify_columns(columns, mapped=list(explicit))
        for c, (measure, unit) in explicit.items():
            if measure == KEEP:
                pros_cols[c] = (KEEP, unit, 3)
            elif measure != "ignore":
                pros_cols[c] = (measure, unit, 3)
        values = {c: [_num(r.get(c), f"{path.name} row {i + 1} ({r.get('id')}) column {c!r}") for i, r in enumerate(rows)]
                  for c in list(au_cols) + list(emo_cols) + list(pros_cols)}
        table_scale = self._table_scale(path, au_cols, values, au_scale)
        self._emotion_percent(path, emo_cols, values)
        direct, kept = resolve_prosody_columns(path, pros_cols, values)
        unverbalised += [c for c in kept if c not in unverbalised]
        if unverbalised:
            self.notice(f"columns kept in meta, not verbalised (no prompt field for them): {listed(unverbalised)}")
        if other:
            self.notice(f"columns not recognised as cues, kept in meta: {listed(other)}")
        mapping = {label: [m, u] for label, (m, u, _, _) in direct.items()}

        table_backend = None
        if any(r.get("face_table") for r in rows):
            from textualize.registry import AU_BACKENDS, UnknownBackendError

            try:
                table_backend = AU_BACKENDS.get("csv")()
            except UnknownBackendError:
                self.notice("face_table column present but the 'csv' AU backend is not installed; per-clip columns used")

        params = {"au_scale": table_scale}
        if mapping:
            params["prosody_columns"] = mapping
        provenance = Provenance("cue-table", path.name, __version__, params)
        n_face_missing = 0
        for i, (s, r) in enumerate(zip(samples, rows)):
            where = f"{path.name} row {i + 1} ({s.id})"
            face = None
            if table_backend is not None and r.get("face_table"):
                ft = Path(str(r["face_table"]).strip()).expanduser()
                ft = ft if ft.is_absolute() else path.parent / ft
                if not ft.exists():
                    raise ValueError(f"{where}: face_table {ft} does not exist")
                face = table_backend.from_table(str(ft))
                s.meta["face_table"] = str(ft)
            if face is None:
                face = self._face(r, i, au_cols, emo_cols, values, table_scale, provenance, where, s)
            if isinstance(face, MissingCue):
                n_face_missing += 1
            s.precomputed["face"] = face
            if direct or kept:
                clip = ProsodyMeasures(start_s=s.start_s or 0.0, end_s=s.end_s if s.end_s is not None else math.nan)
                for fld, _, _, value_of in direct.values():
                    setattr(clip, fld, value_of(i))
                functionals = {c: values[c][i] for c in kept if c in values and math.isfinite(values[c][i])}
                s.precomputed["prosody"] = ProsodyCues(clip=clip, functionals=functionals, provenance=provenance)
            elif s.media_path is None:
                s.precomputed["prosody"] = MissingCue("not_requested", "the cue table has no prosody columns")
        if n_face_missing:
            self.notice(f"{plural(n_face_missing, 'clip')} without face cues (MissingCue no_face)")
        return self.finish(samples, self._label_map, require_media=require_media)

    # ------------------------------------------------------------------ helpers
    def _emotion_percent(self, path: Path, emo_cols: dict, values: dict) -> None:
        """OpenWillis writes py-feat's emotion probabilities x 100: values above 1 (all within
        0-100) are percent and become probabilities; beyond 100 is an error."""
        vals = [v for c in emo_cols for v in values[c] if math.isfinite(v)]
        if not vals or max(vals) <= 1:
            return
        if min(vals) < 0 or max(vals) > 100:
            raise ValueError(f"{path}: face-emotion values span {min(vals):g}..{max(vals):g}; expected "
                             "probabilities (0-1) or percent (0-100)")
        for c in emo_cols:
            values[c] = [v / 100 for v in values[c]]
        self.notice(f"face-emotion columns read as percent (values up to {max(vals):g}) and divided by 100: "
                    f"{listed(list(emo_cols))}")

    def _table_scale(self, path: Path, au_cols: dict, values: dict, option: str | None) -> str | None:
        if option is not None:
            if option.lower() not in SCALE_ALIASES:
                raise ValueError(f"cue-table: unknown au_scale {option!r}; use one of {sorted(set(SCALE_ALIASES.values()))}")
            return SCALE_ALIASES[option.lower()]
        if not au_cols:
            return None
        if any(kind == "r" for _, _, kind in au_cols.values()):
            return "intensity_0_5"
        level = [v for c, (_, stat, _) in au_cols.items() if stat in ("mean", "max") for v in values[c] if math.isfinite(v)]
        if not level:
            return None
        lo, hi = min(level), max(level)
        if lo < 0 or hi > 5:
            raise ValueError(
                f"{path}: AU values span {lo:g}..{hi:g}, outside every known scale (0-1 probability/activation, "
                "0-5 OpenFace intensity); pass au_scale="
            )
        return "probability" if hi <= 1 else "intensity_0_5"

    def _face(self, r, i, au_cols, emo_cols, values, table_scale, provenance, where, sample):
        if not au_cols and not emo_cols:
            return MissingCue("no_face", "the cue table has no AU or face-emotion columns")
        scale = table_scale
        if r.get("au_scale"):
            key = str(r["au_scale"]).strip().lower()
            if key not in SCALE_ALIASES:
                raise ValueError(f"{where}: unknown au_scale {r['au_scale']!r}; use one of {sorted(set(SCALE_ALIASES.values()))}")
            scale = SCALE_ALIASES[key]
        stats: dict[str, dict[str, float]] = {}
        for c, (au, stat, _) in au_cols.items():
            v = values[c][i]
            if math.isfinite(v):
                stats.setdefault(au, {})[stat] = v
        emotions = {e: math.nan for e in EMOTIONS}
        emotion_max = {}
        for c, (emo, stat) in emo_cols.items():
            v = values[c][i]
            if stat == "mean":
                emotions[emo] = v
            elif math.isfinite(v):
                emotion_max[emo] = v
        have_emotions = any(math.isfinite(v) for v in emotions.values())
        if not stats and not have_emotions:
            return MissingCue("no_face", "every face cue of this clip is empty")
        if stats and scale is None:
            raise ValueError(f"{where}: cannot tell the AU scale; pass au_scale= or add an au_scale column")
        summary = {
            au: AUStats(
                mean=st.get("mean", math.nan), max=st.get("max", math.nan),
                peak_time_s=st.get("peak_time_s", math.nan), onset_time_s=st.get("onset_time_s", math.nan),
                active_fraction=st.get("active_fraction", math.nan),
            )
            for au, st in sorted(stats.items())
        }
        if emotion_max:
            sample.meta["face_emotion_max"] = emotion_max
        present = [e for e in EMOTIONS if e in {emo for emo, _ in emo_cols.values()}]
        return FacialCues(
            au_names=sorted(summary), au_scale=scale or "probability", times_s=[], au_summary=summary,
            emotion_names=present if have_emotions else [],
            emotion_values=[[emotions[e] for e in present]] if have_emotions else [],
            provenance=provenance,
        )
