"""Resample streams onto one time axis per sample.

The axis of a sample spanning ``[a, b)`` at ``rate`` Hz has ``T = max(1, ceil((b - a) * rate))``
steps at ``t_k = a + k / rate``; step ``k`` stands for the window ``[t_k - h, t_k + h)`` with
``h = 0.5 / rate`` (clipped to the span), so frames sampled at the axis rate land one per step
even with a few ms of timestamp jitter.

* point rows (video frames, 100 Hz LLDs, 50 Hz encoder frames): the valid rows inside a step's
  window are averaged; a step whose window holds no row (the source is slower than the axis)
  takes the nearest row within ``0.5 / source_rate + h`` (sample-and-hold), valid or not;
* interval rows (tokens ``[start, end)``): every token overlapping a step's window is averaged in
  (a token shorter than a step still lands in the step holding its midpoint);
* a step with no valid row is masked (``mask = False``) and its values are 0, never NaN.
"""
from __future__ import annotations

import math

import numpy as np

from textualize.streams.base import Source


def axis(start_s: float, end_s: float, rate_hz: float) -> np.ndarray:
    """Step times of the span ``[start_s, end_s)`` at ``rate_hz`` (at least one step)."""
    if rate_hz <= 0 or not math.isfinite(rate_hz):
        raise ValueError(f"rate must be a positive number of Hz, got {rate_hz}")
    if not (math.isfinite(start_s) and math.isfinite(end_s)):
        raise ValueError(f"span [{start_s}, {end_s}) is not finite")
    n = max(1, int(math.ceil((end_s - start_s) * rate_hz - 1e-6)))
    return (start_s + np.arange(n) / rate_hz).astype(np.float64)


def align(src: Source, times: np.ndarray, rate_hz: float, end_s: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``src`` on the axis ``times``: (values (T, dim) float32, mask (T,) bool)."""
    T, dim = len(times), src.values.shape[1]
    out = np.zeros((T, dim), np.float64)
    count = np.zeros(T, np.int64)
    if len(src.times_s) == 0 or T == 0:
        return out.astype(np.float32), count > 0
    h = 0.5 / rate_hz
    start = float(times[0])
    stop = float(end_s) if end_s is not None else float(times[-1]) + 2 * h
    lo = np.maximum(times - h, start)
    hi = np.minimum(times + h, stop)
    valid = src.valid
    if src.ends_s is not None:  # intervals
        for i in np.flatnonzero(valid):
            a, b = src.times_s[i], max(src.ends_s[i], src.times_s[i])
            hit = (lo < b) & (hi > a)
            if not hit.any():
                mid = 0.5 * (a + b)
                k = int(np.floor((mid - start) * rate_hz + 0.5))
                if 0 <= k < T and start <= mid < stop:
                    hit[k] = True
            out[hit] += src.values[i]
            count[hit] += 1
    else:  # points
        t = src.times_s
        inside = (t >= start) & (t < stop)
        k = np.floor((t - start) * rate_hz + 0.5).astype(np.int64)
        use = inside & valid & (k >= 0) & (k < T)
        np.add.at(out, k[use], src.values[use].astype(np.float64))
        np.add.at(count, k[use], 1)
        empty = np.flatnonzero(np.bincount(k[inside & (k >= 0) & (k < T)], minlength=T) == 0)
        if len(empty) and src.source_rate_hz > 0 and inside.any():
            tol = 0.5 / src.source_rate_hz + h + 1e-6
            cand = np.flatnonzero(inside)
            for e in empty:
                d = np.abs(t[cand] - times[e])
                j = cand[int(np.argmin(d))]
                if d.min() <= tol and valid[j]:
                    out[e] = src.values[j]
                    count[e] = 1
    mask = count > 0
    out[mask] /= count[mask, None]
    out[~mask] = 0.0
    return out.astype(np.float32), mask


def align_per_clip(src: Source, T: int) -> tuple[np.ndarray, np.ndarray]:
    """A per-clip row repeated over ``T`` steps (T = 1 for a per-clip sample)."""
    ok = bool(src.valid[0]) if len(src.valid) else False
    row = src.values[0] if ok else np.zeros(src.values.shape[1], np.float32)
    return np.repeat(row[None].astype(np.float32), T, axis=0), np.full(T, ok)
