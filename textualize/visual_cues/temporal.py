"""Temporal statistics of per-frame AU values (pure numpy).

Language models cannot read a 21 x T matrix; converters describe each AU by its mean, peak, onset
and how long it was active, over the clip or over sliding windows aligned with the transcript.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from textualize.cues import AUStats, time_windows
from textualize.visual_cues.au_vocabulary import ACTIVITY_THRESHOLDS


def activity_threshold(scale: str) -> float:
    try:
        return ACTIVITY_THRESHOLDS[scale]
    except KeyError:
        raise ValueError(f"unknown AU scale {scale!r}; expected one of {sorted(ACTIVITY_THRESHOLDS)}") from None


def _frame_period(times: np.ndarray) -> float:
    d = np.diff(times)
    d = d[d > 0]
    return float(np.median(d)) if d.size else 0.0


def au_stats(
    values: Sequence[float],
    times_s: Sequence[float],
    scale: str,
    threshold: float | None = None,
    min_sustained_s: float = 0.5,
) -> AUStats:
    """Summary of one AU's per-frame values (NaN = no face in that frame, ignored).

    ``active_fraction`` is over the frames with a face; ``sustained`` is true when some run of
    consecutive active face frames lasts at least ``min_sustained_s`` (a run of n frames lasts
    n frame periods, so a single frame at 5 fps lasts 0.2 s).
    """
    v = np.asarray(values, dtype=float)
    t = np.asarray(times_s, dtype=float)
    if v.shape != t.shape:
        raise ValueError(f"{v.shape[0]} values but {t.shape[0]} times")
    thr = activity_threshold(scale) if threshold is None else threshold
    ok = np.isfinite(v)
    if not ok.any():
        return AUStats(mean=math.nan, max=math.nan, peak_time_s=math.nan, onset_time_s=math.nan,
                       active_fraction=0.0, sustained=False)
    vv, tt = v[ok], t[ok]
    peak = int(np.argmax(vv))
    active = vv >= thr
    onset = float(tt[np.argmax(active)]) if active.any() else math.nan
    period = _frame_period(t) or 0.0
    longest = 0.0
    run_start = None
    active_full = np.zeros(v.shape, bool)
    active_full[ok] = active
    for i, a in enumerate(active_full):  # runs broken by inactive or face-less frames
        if a and run_start is None:
            run_start = i
        if run_start is not None and (not a or i == len(active_full) - 1):
            end = i if a else i - 1
            longest = max(longest, float(t[end] - t[run_start]) + period)
            run_start = None
    return AUStats(
        mean=float(vv.mean()), max=float(vv[peak]), peak_time_s=float(tt[peak]), onset_time_s=onset,
        active_fraction=float(active.mean()), sustained=bool(longest >= min_sustained_s - 1e-9),
    )


def summarize_aus(
    au_names: Sequence[str],
    au_values: Sequence[Sequence[float]],
    times_s: Sequence[float],
    scale: str,
    start_s: float | None = None,
    end_s: float | None = None,
    min_sustained_s: float = 0.5,
) -> dict[str, AUStats]:
    """``au_summary`` for every AU over [start_s, end_s) (the whole clip by default)."""
    t = np.asarray(times_s, dtype=float)
    m = np.asarray(au_values, dtype=float).reshape(len(t), len(au_names))
    sel = np.ones(len(t), bool)
    if start_s is not None:
        sel &= t >= start_s - 1e-9
    if end_s is not None:
        sel &= t < end_s - 1e-9
    return {
        name: au_stats(m[sel, k], t[sel], scale, min_sustained_s=min_sustained_s)
        for k, name in enumerate(au_names)
    }


def windowed_summaries(
    au_names: Sequence[str],
    au_values: Sequence[Sequence[float]],
    times_s: Sequence[float],
    scale: str,
    window_s: float,
    hop_s: float | None = None,
    duration_s: float | None = None,
) -> list[tuple[tuple[float, float], dict[str, AUStats]]]:
    """AU summaries per window, for frame-window prompts aligned with speech windows."""
    t = np.asarray(times_s, dtype=float)
    if duration_s is None:
        duration_s = float(t[-1] + (_frame_period(t) or 0.0)) if t.size else 0.0
    return [
        ((a, b), summarize_aus(au_names, au_values, times_s, scale, a, b))
        for a, b in time_windows(duration_s, window_s, hop_s)
    ]
