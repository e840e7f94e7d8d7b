"""Facial action units -> text: "sustained strong lip corner puller (AU12), brief slight ...".

Reads the clip-level ``FacialCues.au_summary`` or, for a time window, recomputes the summary from
the per-frame values with ``visual_cues.temporal``. Each value scale has its own thresholds
(``FaceConfig.scales``): a py-feat probability, an OpenFace 0-5 intensity and a blendshape
activation are never graded with the same numbers.
"""
from __future__ import annotations

import functools
import math

from textualize.converters.config import FaceConfig, Mode, ScaleGrades
from textualize.cues import AUStats, FacialCues, MissingCue
from textualize.visual_cues.au_vocabulary import AU_VOCABULARY, normalize_au_id

MISSING_FACE_TEXT: dict[str, str] = {
    "no_face": "no face detected",
    "no_video_track": "no video (audio only)",
    "too_short": "video too short to analyse the face",
    "decode_error": "video could not be decoded",
    "backend_unavailable": "facial analysis unavailable",
    "not_requested": "face not analysed",
}

# py-feat / FER emotion names -> how a face "looks"
_EMOTION_ADJECTIVES: dict[str, str] = {
    "anger": "angry", "angry": "angry", "disgust": "disgusted", "disgusted": "disgusted",
    "fear": "fearful", "fearful": "fearful", "happiness": "happy", "happy": "happy", "joy": "happy",
    "sadness": "sad", "sad": "sad", "surprise": "surprised", "surprised": "surprised",
    "neutral": "neutral", "contempt": "contemptuous",
}


@functools.lru_cache(maxsize=1024)
def _au_label(au: str) -> tuple[str, str]:
    """(display id, FACS name or '') for an AU key in any spelling."""
    try:
        au_id = normalize_au_id(au)
    except ValueError:
        return au, ""
    return au_id, AU_VOCABULARY.get(au_id, "")


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _strength(st: AUStats, statistic: str) -> float:
    """The AU's value to grade: ``statistic`` ("max" or "mean"), the other one when it is NaN
    (cue tables may give only means)."""
    first, second = (st.max, st.mean) if statistic == "max" else (st.mean, st.max)
    if _finite(first):
        return float(first)
    return float(second) if _finite(second) else math.nan


def _active_aus(summary: dict[str, AUStats], grades: ScaleGrades) -> list[tuple]:
    """(-value, -active fraction, au, value, stats) of the AUs reaching ``grades.active``."""
    thr, use_max = grades.active, grades.statistic == "max"
    out = []
    for au, st in summary.items():
        v = st.max if use_max else st.mean
        try:
            ok = math.isfinite(v)
        except TypeError:  # None from a hand-built record
            ok = False
        if not ok:
            v = _strength(st, grades.statistic)
        if v >= thr:  # NaN compares False
            frac = st.active_fraction
            active_frac = frac if _finite(frac) else 0.0
            out.append((-v, -active_frac, au, float(v), st))
    out.sort(key=lambda item: item[:3])
    return out


def _fmt_value(value: float, grades: ScaleGrades) -> str:
    digits = 1 if grades.numeric_suffix == "/5" else 2
    return f"{grades.numeric_prefix}{value:.{digits}f}{grades.numeric_suffix}"


def _temporal_words(st: AUStats, start: float, end: float, config: FaceConfig, grades: ScaleGrades) -> tuple[str, str]:
    """(prefix, suffix): duration word before the AU, timing phrase after it."""
    prefix = ""
    if st.sustained:
        prefix = "sustained"
    elif _finite(st.active_fraction) and st.active_fraction < config.brief_fraction:
        prefix = "brief"
    suffix = ""
    span = end - start
    if span > 0:
        late = start + config.late_fraction * span
        if _finite(st.onset_time_s) and st.onset_time_s > late:
            suffix = "appearing late"
        elif (_finite(st.peak_time_s) and st.peak_time_s > late and _finite(st.max) and _finite(st.mean)
              and st.max - st.mean >= grades.peak_margin):
            suffix = "peaking late"
    return prefix, suffix


def describe_aus(
    summary: dict[str, AUStats],
    scale: str,
    config: FaceConfig,
    mode: Mode = "words",
    span: tuple[float, float] | None = None,
) -> str:
    """Active AUs, strongest first, at most ``config.top_n``; '' when none is active.

    ``span`` (start, end in s) enables temporal words; None (e.g. one image) leaves them out.
    """
    try:
        grades = config.scales[scale]
    except KeyError:
        raise ValueError(f"no AU thresholds for scale {scale!r}; configured: {', '.join(config.scales)}") from None
    active = _active_aus(summary, grades)
    parts = []
    for _, _, au, peak, st in active[: config.top_n]:
        au_id, name = _au_label(au)
        if mode == "numeric":
            text = f"{au_id} {_fmt_value(peak, grades)}"
            if span is not None and config.temporal and _finite(st.active_fraction):
                text += f" (active {st.active_fraction:.0%})"
            parts.append(text)
            continue
        words = [grades.word(peak), name or au_id]
        text = " ".join(words) + (f" ({au_id})" if name else "")
        if span is not None and config.temporal:
            prefix, suffix = _temporal_words(st, span[0], span[1], config, grades)
            text = " ".join(w for w in (prefix, text, suffix) if w)
        parts.append(text)
    return ", ".join(parts)


def _mean_emotions(face: FacialCues, rows: list[int]) -> dict[str, float]:
    sums = [0.0] * len(face.emotion_names)
    counts = [0] * len(face.emotion_names)
    for t in rows:
        if t >= len(face.emotion_values):
            continue
        for k, v in enumerate(face.emotion_values[t]):
            if v is not None and math.isfinite(v):
                sums[k] += v
                counts[k] += 1
    return {name: sums[k] / counts[k] for k, name in enumerate(face.emotion_names) if counts[k]}


def describe_emotions(scores: dict[str, float], top_k: int, mode: Mode = "words") -> str:
    """ "face looks happy (0.72), neutral (0.15)" from mean emotion scores."""
    if top_k <= 0 or not scores:
        return ""
    top = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
    if mode == "numeric":
        return "face emotion scores: " + ", ".join(f"{n.lower()} {v:.2f}" for n, v in top)
    return "face looks " + ", ".join(
        f"{_EMOTION_ADJECTIVES.get(n.lower(), n.lower())} ({v:.2f})" for n, v in top
    )


def window_summary(face: FacialCues, start_s: float, end_s: float) -> tuple[dict[str, AUStats], list[int]]:
    """AU summary recomputed over ``[start_s, end_s)`` with ``visual_cues.temporal`` (and the
    indices of the frames in the window). Frames marked face-less count as NaN."""
    from textualize.visual_cues.temporal import summarize_aus

    n = len(face.au_names)
    fp = face.face_present
    values = [
        (face.au_values[t] if t < len(face.au_values) and (not fp or (t < len(fp) and fp[t])) else [math.nan] * n)
        for t in range(len(face.times_s))
    ]
    lo = None if math.isinf(start_s) else start_s
    hi = None if math.isinf(end_s) else end_s
    summary = summarize_aus(face.au_names, values, face.times_s, face.au_scale, lo, hi)
    rows = [t for t, time in enumerate(face.times_s)
            if (lo is None or time >= lo - 1e-9) and (hi is None or time < hi - 1e-9)]
    return summary, rows


def face_fragment(
    face: FacialCues | MissingCue | None,
    config: FaceConfig,
    mode: Mode = "words",
    start_s: float | None = None,
    end_s: float | None = None,
) -> str:
    """Text for the face block: active AUs, optional emotions, or an explicit marker.

    With ``start_s``/``end_s`` the AU statistics are recomputed over ``[start_s, end_s)``.
    """
    if face is None:
        return MISSING_FACE_TEXT["not_requested"]
    if isinstance(face, MissingCue):
        return MISSING_FACE_TEXT.get(face.reason, f"no face analysis ({face.reason.replace('_', ' ')})")
    if start_s is not None or end_s is not None:
        lo = -math.inf if start_s is None else start_s
        hi = math.inf if end_s is None else end_s
        if hi < lo:
            raise ValueError(f"face window end {end_s} s is before its start {start_s} s")
        summary, rows = window_summary(face, lo, hi)
        if face.times_s and not rows:
            return f"no video frames sampled between {lo:.2f} and {hi:.2f} s"
    else:
        summary, rows = face.au_summary, list(range(len(face.times_s)))
    if face.times_s:
        fp = face.face_present
        present = [t for t in rows if not fp or (t < len(fp) and fp[t])]
        if not present:
            return config.no_face_marker
    else:  # summary-only cues (e.g. a cue table): no frames, no time course
        present = []
        if not summary and not face.emotion_values:
            return config.no_face_marker
    times = [face.times_s[t] for t in present]
    span = None
    if config.temporal and len(present) >= config.min_temporal_frames and times[-1] > times[0]:
        span = (times[0], times[-1])
    if summary:
        text = describe_aus(summary, face.au_scale, config, mode, span) or config.none_active_marker
    else:  # only face-emotion scores were measured
        text = "action units not measured"
    parts = []
    if rows and len(present) / len(rows) < config.min_face_fraction:
        parts.append(f"face visible in {len(present) / len(rows):.0%} of frames")
    parts.append(text)
    if config.emotions_top_k > 0 and face.emotion_names:
        emotion_rows = present if face.times_s else list(range(len(face.emotion_values)))
        emotions = describe_emotions(_mean_emotions(face, emotion_rows), config.emotions_top_k, mode)
        if emotions:
            parts.append(emotions)
    return "; ".join(parts)
