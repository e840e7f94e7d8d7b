"""Video/image -> ``FacialCues``: stream frames, detect faces, track the main face, run an AU backend.

Memory stays flat for any video length: frames are decoded one at a time (a few at most are
buffered for batched detection) and only per-frame AU vectors and boxes are kept.
"""
from __future__ import annotations

import numpy as np

import math
import time
from pathlib import Path
from typing import Any

from textualize.cues import FaceBox, FacialCues, MissingCue, Provenance
from textualize.media import IMAGE_SUFFIXES, MediaError, NoVideoTrackError, iter_frames
from textualize.visual_cues.au_vocabulary import normalize_au_id
from textualize.visual_cues.face_tracking import MainFaceTracker
from textualize.visual_cues.temporal import summarize_aus, windowed_summaries


def _build_backend(au_backend: Any) -> Any:
    if isinstance(au_backend, str):
        from textualize.registry import AU_BACKENDS

        return AU_BACKENDS.get(au_backend)(model_dir=None, device="cpu")
    return au_backend


def _build_detector(detector: Any) -> Any:
    if detector is None:
        detector = "mtcnn"
    if isinstance(detector, str):
        from textualize.registry import FACE_DETECTORS

        return FACE_DETECTORS.get(detector)(device="cpu")
    return detector


def extract_facial_cues(
    path: str | Path,
    au_backend: Any = "mediapipe",
    detector: Any = None,
    fps: float = 5.0,
    max_side: int | None = 640,
    window_s: float | None = None,
    tracker: MainFaceTracker | None = None,
    batch_size: int = 4,
    redetect_every: int = 5,
    timings: dict[str, float] | None = None,
) -> FacialCues | MissingCue:
    """Facial cues of the main face in a video or image (an image is a one-frame clip).

    ``au_backend``/``detector``: instances or registry names (``detector=None`` builds MTCNN).
    ``window_s`` is checked and recorded in the provenance; ``facial_windows`` uses it for
    frame-window prompts. ``timings`` (optional dict) accumulates seconds spent in
    'decode', 'detect' and 'au'. No video track -> ``MissingCue("no_video_track")``; no face in
    any frame -> ``MissingCue("no_face")``; an undecodable file raises ``MediaError``.

    Frames are analysed as displayed: a display matrix (phone video stored sideways) is applied
    and recorded in the provenance (``display_matrix``); ``frame_size`` and boxes are in displayed
    pixels.

    ``face_present[t]`` means AUs were measured (a detected face the backend cannot analyse counts
    as absent); ``boxes`` are in ``frame_size`` pixels: the detector's box on detector frames, the
    backend's landmark box on followed frames.
    """
    path = Path(path)
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if window_s is not None and window_s <= 0:
        raise ValueError(f"window_s must be > 0, got {window_s}")
    backend = _build_backend(au_backend)
    if getattr(backend, "kind", "frames") == "table":
        return backend.from_table(str(path))
    det = _build_detector(detector)
    tracker = tracker or MainFaceTracker()
    tracker.reset()
    if hasattr(backend, "reset"):
        backend.reset()
    timings = timings if timings is not None else {}
    for key in ("decode", "detect", "au"):
        timings.setdefault(key, 0.0)

    au_names = [normalize_au_id(a) for a in backend.au_names]
    raw_names: list[str] = list(getattr(backend, "raw_names", []) or [])
    emotion_names: list[str] = list(getattr(backend, "emotion_names", []) or [])
    times: list[float] = []
    present: list[bool] = []
    values: list[list[float]] = []
    raws: list[list[float]] = []
    emotions: list[list[float]] = []
    boxes: list[FaceBox | None] = []
    n_faces: list[int] = []
    frame_size = (0, 0)
    display = None  # the container's display transform, as applied to the frames
    nan_aus = [math.nan] * len(au_names)

    def record(frame, main: FaceBox | None, n: int, result) -> None:
        times.append(float(frame.time_s))
        n_faces.append(n)
        boxes.append(main)
        present.append(result is not None)
        if result is None:
            values.append(list(nan_aus))
            raws.append([math.nan] * len(raw_names))
            emotions.append([math.nan] * len(emotion_names))
            return
        aus = {normalize_au_id(k): v for k, v in result.aus.items()}
        values.append([float(aus.get(a, math.nan)) for a in au_names])
        if result.raw and not raw_names:
            raw_names.extend(result.raw)
        raws.append([float(result.raw.get(r, math.nan)) for r in raw_names])
        if result.emotions and not emotion_names:
            emotion_names.extend(result.emotions)
        emotions.append([float(result.emotions.get(e, math.nan)) for e in emotion_names])

    def detect(rgbs):
        t0 = time.perf_counter()
        if hasattr(det, "detect_batch"):
            out = det.detect_batch(rgbs)
        else:
            out = [det.detect(rgb) for rgb in rgbs]
        timings["detect"] += time.perf_counter() - t0
        return out

    def analyze(frame, main):
        if main is None:
            return None
        t0 = time.perf_counter()
        result = backend.analyze(frame, main)
        timings["au"] += time.perf_counter() - t0
        return result

    def process_batch(batch) -> None:  # detector on every frame
        for frame, faces in zip(batch, detect([f.rgb for f in batch])):
            step = tracker.update(faces, frame.time_s)
            record(frame, step.main, step.n_faces, analyze(frame, step.main))

    follow = redetect_every > 1 and hasattr(backend, "last_face_box")
    state = {"since_detect": 0, "n_faces": 0, "followable": False}

    def process_followed(frame) -> None:
        """Detector every ``redetect_every`` frames; between, follow the backend's landmark box."""
        if state["followable"] and tracker.current is not None and state["since_detect"] < redetect_every:
            main = tracker.current
            result = analyze(frame, main)
            if result is not None and backend.last_face_box is not None:
                tracker.follow(backend.last_face_box, frame.time_s)
                state["since_detect"] += 1
                record(frame, backend.last_face_box, state["n_faces"], result)
                return
        faces = detect([frame.rgb])[0]
        step = tracker.update(faces, frame.time_s)
        result = analyze(frame, step.main)
        state["since_detect"], state["n_faces"], state["followable"] = 1, step.n_faces, result is not None
        if result is not None and backend.last_face_box is not None:
            tracker.follow(backend.last_face_box, frame.time_s)  # follow landmarks, not the detector box
        record(frame, step.main, step.n_faces, result)

    batch = []
    frames = iter_frames(path, fps=fps, max_side=max_side)
    try:
        while True:
            t0 = time.perf_counter()
            frame = next(frames, None)
            timings["decode"] += time.perf_counter() - t0
            if frame is None:
                break
            frame_size = (int(frame.rgb.shape[1]), int(frame.rgb.shape[0]))
            display = display or frame.display
            if follow:
                process_followed(frame)
                continue
            batch.append(frame)
            if len(batch) >= max(1, batch_size):
                process_batch(batch)
                batch = []
        if batch:
            process_batch(batch)
    except NoVideoTrackError as e:
        return MissingCue("no_video_track", detail=str(e))
    finally:
        frames.close()

    # names learnt from the first analysed face: pad the rows of earlier face-less frames
    raws = [r + [math.nan] * (len(raw_names) - len(r)) for r in raws]
    emotions = [r + [math.nan] * (len(emotion_names) - len(r)) for r in emotions]
    if not times:
        raise MediaError(f"{path}: no video frames could be decoded")
    if not any(present):
        faces_seen = sum(1 for n in n_faces if n)
        detail = f"{path.name}: no face in {len(times)} sampled frames"
        if faces_seen:
            detail = f"{path.name}: faces detected in {faces_seen} of {len(times)} frames, but the AU backend found none"
        return MissingCue("no_face", detail=detail)

    if hasattr(backend, "finish_clip"):  # e.g. OpenFace's offline (whole-clip) correction
        values = _apply_offline_estimate(backend, times, values)

    is_image = len(times) == 1 and path.suffix.lower() in IMAGE_SUFFIXES
    params: dict[str, Any] = {"fps": fps, "max_side": max_side, "window_s": window_s, "batch_size": batch_size,
                              "redetect_every": redetect_every}
    if display is not None and (display.op or not display.applied):  # frames analysed as displayed
        params["display_matrix"] = {"rotation_deg": display.rotation_deg, "transform": display.op or "none",
                                    "applied": display.applied}
    params.update(getattr(backend, "params", {}) or {})
    params.update(getattr(det, "params", {"detector": getattr(det, "name", type(det).__name__)}) or {})
    params["tracker"] = {"min_iou": tracker.min_iou, "max_centre_dist": tracker.max_centre_dist,
                         "max_gap_s": tracker.max_gap_s}
    cues = FacialCues(
        au_names=au_names,
        au_scale=backend.scale,
        times_s=times,
        face_present=present,
        au_values=values,
        boxes=boxes,
        faces_per_frame=n_faces,
        sampled_fps=0.0 if is_image else float(fps),
        frame_size=frame_size,
        raw_names=raw_names,
        raw_values=raws if raw_names else [],
        raw_scale=getattr(backend, "raw_scale", ""),
        emotion_names=emotion_names,
        emotion_values=emotions if emotion_names else [],
        provenance=Provenance(
            backend=backend.name,
            model=str(getattr(backend, "model", backend.name)),
            version=str(getattr(backend, "version", "")),
            params=params,
        ),
    )
    cues.au_summary = summarize_aus(au_names, values, times, backend.scale)
    return cues


def _apply_offline_estimate(backend: Any, times: list[float], values: list[list[float]]) -> list[list[float]]:
    """Swap per-frame online values for the backend's whole-clip estimate, matched by time.

    OpenFace's dynamic AU models subtract the person's running median; the median is only
    reliable at the end of the clip, so OpenFace re-predicts every frame with the final median.
    """
    est_times, est_values = backend.finish_clip()
    by_time = {round(float(t), 4): row for t, row in zip(est_times, np.asarray(est_values))}
    out = []
    for t, row in zip(times, values):
        est = by_time.get(round(float(t), 4))
        out.append([float(v) for v in est] if est is not None else row)
    return out


def facial_windows(cues: FacialCues, window_s: float | None = None, hop_s: float | None = None):
    """Per-window AU summaries of extracted cues (``window_s`` defaults to the one recorded at
    extraction); returns [((start_s, end_s), {au: AUStats})]."""
    if window_s is None and cues.provenance is not None:
        window_s = cues.provenance.params.get("window_s")
    if window_s is None:
        raise ValueError("no window_s given and none recorded in the cues' provenance")
    duration = None
    if cues.times_s and cues.sampled_fps:
        duration = cues.times_s[-1] + 1.0 / cues.sampled_fps
    return windowed_summaries(cues.au_names, cues.au_values, cues.times_s, cues.au_scale, window_s, hop_s, duration)
