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
  (AU1, AU01, au12).
* AU scale: the ``au_scale`` option, else an ``au_scale`` column (per row), else ``_r`` columns ->
  OpenFace ``intensity_0_5``, else all values within 0..1 -> py-feat ``probability``, else values
  within 0..5 -> ``intensity_0_5``. Scale names: probability | intensity_0_5 | activation (also
  "py-feat", "openface", "mediapipe").
* Face-emotion scores as py-feat names them (anger, disgust, fear, happiness, sadness, surprise,
  neutral; also Happy/Sad/Angry…) plain or ``_mean`` -> ``emotion_names``/``emotion_values`` (ONE
  row: the per-clip means; the per-frame lists stay empty); ``_max`` -> ``meta["face_emotion_max"]``.
* ``face_table``: path (relative to the CSV) of a per-frame py-feat Fex / OpenFace CSV, imported
  with the ``csv`` AU backend when it is installed; its per-frame ``FacialCues`` replace the
  per-clip columns for that row.
* A table without any face column -> ``MissingCue("no_face")`` for every row; a row whose face
  cells are all empty -> ``MissingCue("no_face")`` for that row.

Prosody columns -> ``precomputed["prosody"] = ProsodyCues(clip=ProsodyMeasures(...))``. Column
names are matched case-insensitively after turning every non-alphanumeric run into "_":

=========================== ========================================================== =========
ProsodyMeasures field        accepted column names                                      unit/scale
=========================== ========================================================== =========
pitch_mean_hz                f0, f0_hz, f0_mean, f0_mean_hz, pitch, pitch_hz,            Hz
                             pitch_mean, pitch_mean_hz, mean_f0, meanf0
pitch_mean_st                pitch_st, pitch_mean_st, f0_st, f0_mean_st,                 st re 27.5 Hz
                             F0semitoneFrom27.5Hz_sma3nz_amean (eGeMAPS)
pitch_sd_st                  pitch_sd_st, pitch_std_st, f0_sd_st, f0_std_st              semitones
pitch_range_st               pitch_range_st, f0_range_st,                                semitones
                             F0semitoneFrom27.5Hz_sma3nz_pctlrange0-2
loudness_mean                loudness, loudness_mean, loudness_sma3_amean                sone
loudness_sd                  loudness_sd, loudness_std                                   sone
rms_dbfs                     rms_dbfs, rms_db, energy_dbfs, intensity, intensity_db,     dBFS (<= 0;
                             intensity_mean                                              dB SPL is
                                                                                         rejected)
speaking_rate_syl_per_s      rate, speaking_rate, speech_rate, syllable_rate,            syllables/s
                             syllables_per_s, rate_syl_per_s, speaking_rate_syl_per_s
speaking_rate_words_per_s    words_per_s, word_rate, speaking_rate_words_per_s;          words/s
                             wpm, words_per_min (divided by 60)
pause_count                  pauses, pause_count, n_pauses, num_pauses                   count
pause_mean_s                 pause_mean_s, pause_mean, mean_pause, mean_pause_s,         s
                             mean_pause_duration, pause_duration_mean
pause_ratio                  pause_ratio, pause_fraction                                 fraction
voiced_ratio                 voiced_ratio, voiced_fraction                               fraction
jitter_local                 jitter, jitter_local, jitterLocal_sma3nz_amean;             fraction
                             jitter_percent, jitter_pct (divided by 100)
shimmer_local_db             shimmer, shimmer_db, shimmer_local_db,                      dB
                             shimmerLocaldB_sma3nz_amean
hnr_db                       hnr, hnr_db, harmonicity, HNRdBACF_sma3nz_amean             dB
=========================== ========================================================== =========

An empty/NaN cell -> the measure is NaN (converters omit it); a non-numeric cell is a ValueError
naming the row and column. No prosody column: a row with a media ``path`` gets no
``precomputed["prosody"]`` (extraction may run), a row without one gets
``MissingCue("not_requested")``. Provenance: backend ``cue-table``.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Sequence

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

# normalised column name -> (ProsodyMeasures field, factor)
_P = {
    "pitch_mean_hz": ["f0", "f0_hz", "f0_mean", "f0_mean_hz", "pitch", "pitch_hz", "pitch_mean", "pitch_mean_hz", "mean_f0", "meanf0"],
    "pitch_mean_st": ["pitch_st", "pitch_mean_st", "f0_st", "f0_mean_st", "f0semitonefrom27_5hz_sma3nz_amean"],
    "pitch_sd_st": ["pitch_sd_st", "pitch_std_st", "f0_sd_st", "f0_std_st"],
    "pitch_range_st": ["pitch_range_st", "f0_range_st", "f0semitonefrom27_5hz_sma3nz_pctlrange0_2"],
    "loudness_mean": ["loudness", "loudness_mean", "loudness_sma3_amean"],
    "loudness_sd": ["loudness_sd", "loudness_std"],
    "rms_dbfs": ["rms_dbfs", "rms_db", "energy_dbfs", "intensity", "intensity_db", "intensity_mean"],
    "speaking_rate_syl_per_s": ["rate", "speaking_rate", "speech_rate", "syllable_rate", "syllables_per_s",
                                "rate_syl_per_s", "speaking_rate_syl_per_s"],
    "speaking_rate_words_per_s": ["words_per_s", "word_rate", "speaking_rate_words_per_s"],
    "pause_count": ["pauses", "pause_count", "n_pauses", "num_pauses"],
    "pause_mean_s": ["pause_mean_s", "pause_mean", "mean_pause", "mean_pause_s", "mean_pause_duration", "pause_duration_mean"],
    "pause_ratio": ["pause_ratio", "pause_fraction"],
    "voiced_ratio": ["voiced_ratio", "voiced_fraction"],
    "jitter_local": ["jitter", "jitter_local", "jitterlocal_sma3nz_amean"],
    "shimmer_local_db": ["shimmer", "shimmer_db", "shimmer_local_db", "shimmerlocaldb_sma3nz_amean"],
    "hnr_db": ["hnr", "hnr_db", "harmonicity", "hnrdbacf_sma3nz_amean"],
}
PROSODY_COLUMNS: dict[str, tuple[str, float]] = {name: (f, 1.0) for f, names in _P.items() for name in names}
PROSODY_COLUMNS.update({"wpm": ("speaking_rate_words_per_s", 1 / 60), "words_per_min": ("speaking_rate_words_per_s", 1 / 60),
                        "jitter_percent": ("jitter_local", 0.01), "jitter_pct": ("jitter_local", 0.01)})

_AU_COL = re.compile(
    r"^au[_ ]?0*(\d{1,2})(?:_(r|c))?(?:_(mean|max|active_fraction|peak_time_s|onset_time_s))?$", re.IGNORECASE
)
_EMO_COL = re.compile(r"^([a-z]+)(?:_(mean|max))?$", re.IGNORECASE)


def norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def classify_columns(columns: Sequence[str]) -> tuple[dict, dict, dict, list[str]]:
    """Column -> (AU id, stat, kind) / (emotion, stat) / (prosody field, factor); plus leftovers."""
    au, emo, pros, other = {}, {}, {}, []
    for c in columns:
        if c in NON_CUE:
            continue
        m = _AU_COL.match(c.strip())
        if m:
            num, kind, stat = m.groups()
            kind = (kind or "").lower()
            stat = (stat or "mean").lower()
            if kind == "c" and stat == "mean":
                stat = "active_fraction"
            au[c] = (f"AU{int(num):02d}", stat, kind)
            continue
        m = _EMO_COL.match(c.strip())
        if m and m.group(1).lower() in EMOTION_ALIASES:
            emo[c] = (EMOTION_ALIASES[m.group(1).lower()], (m.group(2) or "mean").lower())
            continue
        if norm(c) in PROSODY_COLUMNS:
            pros[c] = PROSODY_COLUMNS[norm(c)]
            continue
        other.append(c)
    return au, emo, pros, other


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
    ) -> list[Sample]:
        """Samples of the cue table at ``root`` (see the module docstring)."""
        self.notices = []
        root = Path(root)
        path = root / "cue_table.csv" if root.is_dir() else root
        if not path.exists():
            raise ValueError(f"cue-table: {path} does not exist")
        rows = read_table(path)
        samples, self._label_map, rows = table_rows_to_samples(
            self, path, rows, REQUIRED, classes if classes is not None else self._classes, id_from_path=False
        )
        columns = list(dict.fromkeys(c for r in rows for c in r))
        au_cols, emo_cols, pros_cols, other = classify_columns(columns)
        if other:
            self.notice(f"columns not recognised as cues, kept in meta: {listed(other)}")
        values = {c: [_num(r.get(c), f"{path.name} row {i + 1} ({r.get('id')}) column {c!r}") for i, r in enumerate(rows)]
                  for c in list(au_cols) + list(emo_cols) + list(pros_cols)}
        table_scale = self._table_scale(path, au_cols, values, au_scale)
        for field_cols in (pros_cols,):
            for c, (fld, _) in field_cols.items():
                if fld == "rms_dbfs" and any(v > 0 for v in values[c] if math.isfinite(v)):
                    raise ValueError(
                        f"{path}: column {c!r} has positive values; rms_dbfs is dB re full scale (<= 0). "
                        "Praat-style intensity in dB SPL is not the same quantity: convert it or drop the column"
                    )
        fields = [f for f, _ in pros_cols.values()]
        if len(set(fields)) != len(fields):
            raise ValueError(f"{path}: several columns map to the same prosody measure: {dict(pros_cols)}")

        table_backend = None
        if any(r.get("face_table") for r in rows):
            from textualize.registry import AU_BACKENDS, UnknownBackendError

            try:
                table_backend = AU_BACKENDS.get("csv")()
            except UnknownBackendError:
                self.notice("face_table column present but the 'csv' AU backend is not installed; per-clip columns used")

        provenance = Provenance("cue-table", path.name, __version__, {"au_scale": table_scale})
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
            if pros_cols:
                clip = ProsodyMeasures(start_s=s.start_s or 0.0, end_s=s.end_s if s.end_s is not None else math.nan)
                for c, (fld, factor) in pros_cols.items():
                    setattr(clip, fld, values[c][i] * factor)
                s.precomputed["prosody"] = ProsodyCues(clip=clip, provenance=provenance)
            elif s.media_path is None:
                s.precomputed["prosody"] = MissingCue("not_requested", "the cue table has no prosody columns")
        if n_face_missing:
            self.notice(f"{plural(n_face_missing, 'clip')} without face cues (MissingCue no_face)")
        return self.finish(samples, self._label_map, require_media=require_media)

    # ------------------------------------------------------------------ helpers
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
