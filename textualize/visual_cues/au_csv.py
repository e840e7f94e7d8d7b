"""Import per-frame AU tables made elsewhere (py-feat Fex CSVs, OpenFace 2.x CSVs) as ``FacialCues``.

Many corpora ship precomputed OpenFace or py-feat output, and researchers often run those tools
themselves; importing the tables keeps their numbers (and their scales) instead of re-estimating.
Backends: ``csv`` (detects the format from the header), ``openface-csv``, ``pyfeat-csv``.

- OpenFace 2.x (FeatureExtraction / FaceLandmarkVidMulti): ``AUxx_r`` intensities 0-5 are the AU
  values (``intensity_0_5``); ``AUxx_c`` presence (0/1), ``confidence`` and head pose are kept as
  raw columns; headers carry leading spaces (`` AU12_r``); a frame counts as a face when
  ``success == 1``; the box is the extent of the 2D landmarks.
- py-feat Fex (Detector v1 and v2): ``AU01``..``AU43`` classifier probabilities (``probability``),
  the 7 emotion probabilities (v1 ``anger``..``neutral``, v2 ``Anger``..``Neutral`` -> lower-case
  v1 names), ``FaceRect*`` boxes; py-feat writes one row per face and a NaN row for a frame
  without a face. Several faces in one frame -> the largest box is the main face.

Times: a numeric timestamp column when present, else ``frame / fps`` (``fps`` argument, or the
fps of the ``input`` video when it sits next to the table), else py-feat's ``approx_time``
(``MM:SS``, 1 s resolution; recorded in the provenance as ``time_source``).
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from textualize.cues import FaceBox, FacialCues, MissingCue, Provenance
from textualize.registry import AU_BACKENDS
from textualize.visual_cues.temporal import summarize_aus

PYFEAT_EMOTIONS: tuple[str, ...] = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
# py-feat Detectorv2 capitalises and shortens the emotion names.
_PYFEAT_EMOTION_ALIASES = {"happy": "happiness", "sad": "sadness"}
_PYFEAT_AU_RE = re.compile(r"^AU\d{2}$")
_OPENFACE_R_RE = re.compile(r"^AU\d{2}_r$")
_OPENFACE_C_RE = re.compile(r"^AU\d{2}_c$")


# ---------------------------------------------------------------- reading


def read_table(path: str | Path):
    """A CSV/TSV as a DataFrame with stripped column names; clear errors for unreadable files."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: AU table not found")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty AU table")
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        df = pd.read_csv(path, sep=sep, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a readable CSV table ({type(e).__name__}: {e})") from None
    df.columns = [str(c).strip() for c in df.columns]
    return df


def detect_format(columns: Sequence[str]) -> str:
    """'openface' (AUxx_r columns) or 'pyfeat' (AUxx columns); ValueError when neither."""
    cols = [str(c).strip() for c in columns]
    if any(_OPENFACE_R_RE.match(c) for c in cols):
        return "openface"
    if any(_PYFEAT_AU_RE.match(c) for c in cols):
        return "pyfeat"
    raise ValueError(
        "no AU columns: expected OpenFace 'AUxx_r' intensity columns or py-feat 'AUxx' probability columns"
    )


def pyfeat_au_columns(columns: Sequence[str]) -> list[str]:
    return [c for c in columns if _PYFEAT_AU_RE.match(c)]


def pyfeat_emotion_columns(columns: Sequence[str]) -> dict[str, str]:
    """Our emotion name -> the table's column (v1 lower-case or v2 capitalised names)."""
    out: dict[str, str] = {}
    for c in columns:
        name = _PYFEAT_EMOTION_ALIASES.get(c.lower(), c.lower())
        if name in PYFEAT_EMOTIONS and name not in out:
            out[name] = c
    return {e: out[e] for e in PYFEAT_EMOTIONS if e in out}


def _parse_clock(text: str) -> float:
    """'MM:SS', 'HH:MM:SS' or 'SS(.fff)' -> seconds (NaN when unparseable)."""
    try:
        parts = [float(p) for p in str(text).strip().split(":")]
    except ValueError:
        return math.nan
    secs = 0.0
    for p in parts:
        secs = secs * 60 + p
    return secs


def _video_fps(table: Path, df) -> float | None:
    if "input" not in df.columns or df["input"].dropna().empty:
        return None
    name = str(df["input"].dropna().iloc[0])
    for cand in (Path(name), table.parent / name, table.parent / Path(name).name):
        if cand.is_file():
            from textualize.media import MediaError, probe

            try:
                fps = probe(cand, content_sha256="-").video_fps
            except MediaError:
                return None
            return fps or None
    return None


def _times(df, table: Path, fps: float | None, time_cols: Sequence[str]) -> tuple[np.ndarray, str]:
    for c in time_cols:
        if c in df.columns:
            t = np.asarray(df[c], dtype=np.float64)
            if np.isfinite(t).any():
                return t, c
    if "frame" in df.columns:
        fps = fps or _video_fps(table, df)
        if fps:
            return np.asarray(df["frame"], dtype=np.float64) / fps, f"frame / {fps:g} fps"
    if "approx_time" in df.columns:
        return np.array([_parse_clock(x) for x in df["approx_time"]], dtype=np.float64), "approx_time (MM:SS, 1 s resolution)"
    if "frame" in df.columns and df["frame"].nunique(dropna=False) == 1:
        return np.zeros(len(df)), "single frame (image)"
    raise ValueError(f"{table}: no time column (timestamp / frame / approx_time); pass fps= to read frame numbers")


def _sampled_fps(times: np.ndarray) -> float:
    t = np.unique(times[np.isfinite(times)])
    if len(t) < 2:
        return 0.0
    step = float(np.median(np.diff(t)))
    return 1.0 / step if step > 0 else 0.0


def _group_main_face(df, frame_key: np.ndarray, area: np.ndarray, has_face: np.ndarray):
    """Per frame (in order): index of the main face's row (largest box) and the number of faces."""
    order: list[tuple[float, int, int]] = []
    seen: dict[float, int] = {}
    for i, f in enumerate(frame_key):
        key = float(f)
        if key not in seen:
            seen[key] = len(order)
            order.append((key, i, 0))
        slot = seen[key]
        k, best, n = order[slot]
        if has_face[i]:
            if n == 0 or not has_face[best] or area[i] > area[best]:
                best = i
            n += 1
        order[slot] = (k, best, n)
    return [(best, n) for _, best, n in order]


def _frame_keys(df, times: np.ndarray) -> np.ndarray:
    if "frame" in df.columns and np.isfinite(np.asarray(df["frame"], dtype=np.float64)).all():
        return np.asarray(df["frame"], dtype=np.float64)
    return times


def import_pyfeat(df, path: Path, fps: float | None = None) -> FacialCues | MissingCue:
    """A py-feat Fex table -> FacialCues on the ``probability`` scale (plus 7 emotions)."""
    from textualize.visual_cues.au_vocabulary import normalize_au_id

    au_cols = pyfeat_au_columns(df.columns)
    if not au_cols:
        raise ValueError(f"{path}: no py-feat AU columns (AU01, AU02, ...)")
    emo = pyfeat_emotion_columns(df.columns)
    times, time_source = _times(df, path, fps, ("timestamps", "timestamp", "time_s"))
    aus = df[au_cols].to_numpy(dtype=np.float64)
    box_cols = ["FaceRectX", "FaceRectY", "FaceRectWidth", "FaceRectHeight"]
    boxes_ok = all(c in df.columns for c in box_cols)
    rect = df[box_cols].to_numpy(dtype=np.float64) if boxes_ok else np.full((len(df), 4), np.nan)
    score = df["FaceScore"].to_numpy(dtype=np.float64) if "FaceScore" in df.columns else np.ones(len(df))
    has_face = np.isfinite(aus).any(axis=1) & (np.isfinite(rect).all(axis=1) if boxes_ok else True)
    area = np.where(np.isfinite(rect[:, 2] * rect[:, 3]), rect[:, 2] * rect[:, 3], -1.0)
    groups = _group_main_face(df, _frame_keys(df, times), area, has_face)

    emo_vals = df[list(emo.values())].to_numpy(dtype=np.float64) if emo else np.zeros((len(df), 0))
    cues = FacialCues(au_names=[normalize_au_id(c) for c in au_cols], au_scale="probability", times_s=[],
                      emotion_names=list(emo))
    for row, n in groups:
        present = bool(has_face[row])
        cues.times_s.append(float(times[row]))
        cues.face_present.append(present)
        cues.faces_per_frame.append(int(n))
        cues.au_values.append([float(v) for v in aus[row]] if present else [math.nan] * len(au_cols))
        cues.emotion_values.append([float(v) for v in emo_vals[row]] if present else [math.nan] * len(emo))
        if present and boxes_ok:
            x, y, w, h = rect[row]
            s = float(score[row]) if math.isfinite(score[row]) else 1.0
            cues.boxes.append(FaceBox(float(x), float(y), float(x + w), float(y + h), s))
        else:
            cues.boxes.append(None)
    if "FrameWidth" in df.columns and "FrameHeight" in df.columns:
        w, h = df["FrameWidth"].iloc[0], df["FrameHeight"].iloc[0]
        if np.isfinite(w) and np.isfinite(h):
            cues.frame_size = (int(w), int(h))
    version = "Detectorv2" if {"valence", "arousal"} & set(df.columns) or any(c.startswith("mesh_x_") for c in df.columns) else "Detectorv1"
    cues.provenance = Provenance("csv", f"py-feat {version} Fex table", "", {"path": str(path), "format": "pyfeat", "time_source": time_source})
    return _finish(cues, path)


def import_openface(df, path: Path, fps: float | None = None, face_id: int | None = None) -> FacialCues | MissingCue:
    """An OpenFace 2.x CSV -> FacialCues on the ``intensity_0_5`` scale; presence as raw values."""
    from textualize.visual_cues.au_vocabulary import normalize_au_id

    r_cols = [c for c in df.columns if _OPENFACE_R_RE.match(c)]
    if not r_cols:
        raise ValueError(f"{path}: no OpenFace AU intensity columns (AU01_r, ...)")
    if face_id is not None and "face_id" in df.columns:
        df = df[df["face_id"] == face_id]
    c_cols = [c for c in df.columns if _OPENFACE_C_RE.match(c)]
    extra = [c for c in ("confidence", "pose_Rx", "pose_Ry", "pose_Rz") if c in df.columns]
    times, time_source = _times(df, path, fps, ("timestamp",))
    aus = df[r_cols].to_numpy(dtype=np.float64)
    success = df["success"].to_numpy(dtype=np.float64) == 1 if "success" in df.columns else np.ones(len(df), bool)
    has_face = success & np.isfinite(aus).all(axis=1)
    xs = [f"x_{i}" for i in range(68)]
    ys = [f"y_{i}" for i in range(68)]
    have_lm = all(c in df.columns for c in xs + ys)
    if have_lm:
        lx, ly = df[xs].to_numpy(dtype=np.float64), df[ys].to_numpy(dtype=np.float64)
        x1, x2, y1, y2 = lx.min(axis=1), lx.max(axis=1), ly.min(axis=1), ly.max(axis=1)
        area = np.where(np.isfinite((x2 - x1) * (y2 - y1)), (x2 - x1) * (y2 - y1), -1.0)
    else:
        area = np.zeros(len(df))
    conf = df["confidence"].to_numpy(dtype=np.float64) if "confidence" in df.columns else np.ones(len(df))
    raw = df[c_cols + extra].to_numpy(dtype=np.float64)
    groups = _group_main_face(df, _frame_keys(df, times), area, has_face)

    cues = FacialCues(au_names=[normalize_au_id(c) for c in r_cols], au_scale="intensity_0_5", times_s=[],
                      raw_names=c_cols + extra,
                      raw_scale="AUxx_c: OpenFace presence 0/1; confidence: landmark tracking confidence 0-1; pose_R*: head rotation (rad)")
    for row, n in groups:
        present = bool(has_face[row])
        cues.times_s.append(float(times[row]))
        cues.face_present.append(present)
        cues.faces_per_frame.append(int(n))
        cues.au_values.append([float(v) for v in aus[row]] if present else [math.nan] * len(r_cols))
        cues.raw_values.append([float(v) for v in raw[row]])
        if present and have_lm and area[row] > 0:
            s = float(conf[row]) if math.isfinite(conf[row]) else 1.0
            cues.boxes.append(FaceBox(float(x1[row]), float(y1[row]), float(x2[row]), float(y2[row]), s))
        else:
            cues.boxes.append(None)
    cues.provenance = Provenance("csv", "OpenFace 2.x CSV", "", {"path": str(path), "format": "openface", "time_source": time_source})
    return _finish(cues, path)


def _finish(cues: FacialCues, path: Path) -> FacialCues | MissingCue:
    if not cues.times_s:
        raise ValueError(f"{path}: the AU table has a header but no rows")
    if not any(cues.face_present):
        return MissingCue("no_face", f"{path.name}: no frame of the table has a face (NaN or unsuccessful rows)")
    cues.sampled_fps = _sampled_fps(np.asarray(cues.times_s))
    cues.au_summary = summarize_aus(cues.au_names, cues.au_values, cues.times_s, cues.au_scale)  # NaN = no face
    return cues


def import_au_table(path: str | Path, fmt: str = "auto", fps: float | None = None) -> FacialCues | MissingCue:
    """Read an OpenFace or py-feat CSV (``fmt`` 'auto' | 'openface' | 'pyfeat')."""
    path = Path(path)
    df = read_table(path)
    if len(df) == 0:
        raise ValueError(f"{path}: the AU table has a header but no rows")
    if fmt not in ("auto", "openface", "pyfeat"):
        raise ValueError(f"unknown AU table format {fmt!r}; use 'auto', 'openface' or 'pyfeat'")
    try:
        found = detect_format(df.columns) if fmt == "auto" else fmt
        if found == "openface":
            return import_openface(df, path, fps)
        return import_pyfeat(df, path, fps)
    except ValueError as e:
        if str(path) in str(e):
            raise
        raise ValueError(f"{path}: {e}") from None


# ---------------------------------------------------------------- backends


class _TableBackend:
    kind = "table"
    fmt = "auto"
    raw_scale = "set per table (see FacialCues.raw_scale)"

    def __init__(self, model_dir: str | Path | None = None, device: str = "cpu", *, fps: float | None = None):
        self.fps = fps  # only for tables whose times are frame numbers

    def analyze(self, frame, box):
        raise NotImplementedError(f"the {self.name} backend reads AU tables; call from_table(path)")

    def from_table(self, path: str) -> FacialCues | MissingCue:
        cues = import_au_table(path, self.fmt, self.fps)
        if isinstance(cues, FacialCues) and cues.provenance is not None:
            cues.provenance.backend = self.name
        return cues


@AU_BACKENDS.register("csv")
class CSVTableBackend(_TableBackend):
    """Auto-detects OpenFace (``AUxx_r``) or py-feat (``AUxx``) tables; the scale follows the
    format (``FacialCues.au_scale``)."""

    name = "csv"
    scale = "intensity_0_5"  # of OpenFace tables; py-feat tables come back as "probability"
    au_names: list[str] = []


@AU_BACKENDS.register("openface-csv")
class OpenFaceCSVBackend(_TableBackend):
    name = "openface-csv"
    fmt = "openface"
    scale = "intensity_0_5"
    au_names: list[str] = []


@AU_BACKENDS.register("pyfeat-csv")
class PyFeatCSVBackend(_TableBackend):
    name = "pyfeat-csv"
    fmt = "pyfeat"
    scale = "probability"
    au_names: list[str] = []
