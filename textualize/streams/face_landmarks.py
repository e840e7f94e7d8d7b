"""``face_landmarks``: 68 facial landmarks of the main face, similarity-normalised (136 dims).

From video: dlib's 68-point shape predictor (``face-recognition-models``) inside the main-face box
of each sampled frame of the cue stage. From a per-frame py-feat / OpenFace table: its own
``x_0..x_67, y_0..y_67`` columns (the largest face per frame, as the ``csv`` AU backend picks).
Normalisation removes where the face is and how big it is in the frame and its in-plane roll:
centred on the landmarks' mean, scaled to unit RMS radius, rotated so that the eye centres are
level. Expression and out-of-plane head pose stay.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from textualize.registry import STREAM_EXTRACTORS
from textualize.streams.base import FaceFrameExtractor, SampleContext, Source

N_POINTS = 68
LANDMARK_NAMES = [f"lm_x_{i}" for i in range(N_POINTS)] + [f"lm_y_{i}" for i in range(N_POINTS)]


def normalise_landmarks(points: np.ndarray) -> np.ndarray:
    """(68, 2) pixel landmarks -> (136,) centred, unit-RMS, eye-levelled coordinates (x then y)."""
    p = np.asarray(points, np.float64).reshape(N_POINTS, 2)
    p = p - p.mean(axis=0)
    scale = np.sqrt((p ** 2).sum(axis=1).mean())
    if not np.isfinite(scale) or scale <= 0:
        return np.full(2 * N_POINTS, np.nan, np.float32)
    p = p / scale
    left, right = p[36:42].mean(axis=0), p[42:48].mean(axis=0)  # the image's left and right eye
    angle = np.arctan2(right[1] - left[1], right[0] - left[0])
    c, s = np.cos(-angle), np.sin(-angle)
    p = p @ np.array([[c, s], [-s, c]])
    return np.concatenate([p[:, 0], p[:, 1]]).astype(np.float32)


_DLIB: dict[str, object] = {}


def dlib_shape_predictor():
    if "sp68" not in _DLIB:
        import dlib

        from textualize.models import require_model

        _DLIB["sp68"] = dlib.shape_predictor(str(require_model("dlib-68-landmarks")))
    return _DLIB["sp68"]


def dlib_shapes(rgbs, boxes):
    """dlib ``full_object_detection`` (68 points) of each face box."""
    import dlib

    sp = dlib_shape_predictor()
    out = []
    for rgb, (x1, y1, x2, y2) in zip(rgbs, boxes):
        rect = dlib.rectangle(int(round(x1)), int(round(y1)), int(round(x2)), int(round(y2)))
        out.append(sp(np.ascontiguousarray(rgb), rect))
    return out


def table_landmarks(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(times, (N, 136) normalised landmarks, valid) of the main face in a per-frame table."""
    import pandas as pd

    from textualize.visual_cues.au_csv import _frame_keys, _times

    df = pd.read_csv(path)
    df.columns = [c.strip() for c in df.columns]
    xs, ys = [f"x_{i}" for i in range(N_POINTS)], [f"y_{i}" for i in range(N_POINTS)]
    if not all(c in df.columns for c in xs + ys):
        return None
    try:
        times, _ = _times(df, Path(path), None, ("timestamps", "timestamp", "time_s"))
    except ValueError:
        return None
    pts = np.stack([df[xs].to_numpy(np.float64), df[ys].to_numpy(np.float64)], axis=2)  # (rows, 68, 2)
    ok = np.isfinite(pts).all(axis=(1, 2))
    spread = np.where(ok, np.nan_to_num(np.ptp(pts[:, :, 0], axis=1) * np.ptp(pts[:, :, 1], axis=1)), -1.0)
    keys = _frame_keys(df, times)
    best: dict[float, int] = {}
    order: list[float] = []
    for i, k in enumerate(keys):  # one row per frame: the largest face with landmarks
        k = float(k)
        if k not in best:
            best[k] = i
            order.append(k)
        elif spread[i] > spread[best[k]]:
            best[k] = i
    rows = [best[k] for k in order]
    values = np.stack([normalise_landmarks(pts[r]) if ok[r] else np.zeros(2 * N_POINTS, np.float32) for r in rows])
    valid = ok[rows] & np.isfinite(values).all(axis=1)
    return np.asarray(times)[rows], np.nan_to_num(values), valid


@STREAM_EXTRACTORS.register("face_landmarks")
class FaceLandmarkStream(FaceFrameExtractor):
    name = "face_landmarks"
    version = 1
    extractor = "dlib 68-point shape predictor in the main-face box (or the table's landmarks), similarity-normalised"
    unit = "normalised coordinates (centred, unit RMS radius, eyes level)"
    names = LANDMARK_NAMES

    def source(self, ctx: SampleContext) -> Source | None:
        from textualize.extract import TABLE_SUFFIXES

        table = None
        if ctx.sample is not None and ctx.sample.meta.get("face_table"):
            table = Path(ctx.sample.meta["face_table"])
        elif ctx.media_path and Path(ctx.media_path).suffix.lower() in TABLE_SUFFIXES:
            table = Path(ctx.media_path)
        if table is not None:
            got = table_landmarks(table) if table.exists() else None
            if got is None or not got[2].any():
                return None
            times, values, valid = got
            rate = 1.0 / float(np.median(np.diff(np.unique(times)))) if len(np.unique(times)) > 1 else 0.0
            return Source(times, values, valid, list(self.names), source_rate_hz=rate,
                          info={"extractor": "landmark columns of the per-frame face table, similarity-normalised"})
        return super().source(ctx)

    def frames(self, rgbs, boxes) -> np.ndarray:
        out = []
        for shape in dlib_shapes(rgbs, boxes):
            pts = np.array([[shape.part(i).x, shape.part(i).y] for i in range(N_POINTS)], np.float64)
            out.append(normalise_landmarks(pts))
        return np.stack(out)
