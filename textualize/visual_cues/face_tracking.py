"""Face detection (MTCNN) and a main-face tracker.

In-the-wild clips show several people, cut away, and have frames where the speaker turns away;
AUs must come from one person per clip. ``MainFaceTracker`` starts from the most prominent face
and follows it by overlap/centre distance, so a passer-by never replaces the speaker mid-clip.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from textualize.cues import FaceBox
from textualize.registry import FACE_DETECTORS


def _resize_longest(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Downscale so the longest side is ``max_side``; returns (image, factor back to input px)."""
    h, w = rgb.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return rgb, 1.0
    import cv2

    scale = max_side / max(h, w)
    small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return small, max(h, w) / max(small.shape[:2])


def as_rgb(image: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 RGB from gray, RGBA (alpha dropped) or RGB input."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an H x W x 3 RGB image, got shape {image.shape}")
    if image.shape[2] == 4:
        image = image[:, :, :3]
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


@FACE_DETECTORS.register("mtcnn")
class MTCNNDetector:
    """facenet-pytorch's MTCNN (weights ship inside the wheel), run on a downscaled copy.

    MTCNN's cost grows with the image-pyramid area, so detecting at ``detect_max_side`` px and
    scaling boxes back is several times faster than full resolution, at the price of missing faces
    smaller than ``min_face_size`` px *in the downscaled image*.
    """

    name = "mtcnn"

    def __init__(
        self,
        device: str = "cpu",
        detect_max_side: int = 400,
        min_face_size: int = 20,
        thresholds: Sequence[float] = (0.6, 0.7, 0.7),
        min_score: float = 0.9,
        factor: float = 0.709,
    ):
        from textualize.models import require_model

        require_model("mtcnn")  # clear message naming the package if the weights are missing
        from facenet_pytorch import MTCNN

        self.device = device
        self.detect_max_side = int(detect_max_side)
        self.min_face_size = int(min_face_size)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.min_score = float(min_score)
        self.factor = float(factor)
        self._mtcnn = MTCNN(
            keep_all=True, device=device, min_face_size=self.min_face_size,
            thresholds=list(self.thresholds), factor=self.factor, post_process=False,
        )

    @property
    def params(self) -> dict:
        return {
            "detector": self.name, "detect_max_side": self.detect_max_side, "min_face_size": self.min_face_size,
            "thresholds": list(self.thresholds), "min_score": self.min_score, "factor": self.factor,
        }

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        return self.detect_batch([rgb])[0]

    def detect_batch(self, frames: Sequence[np.ndarray]) -> list[list[FaceBox]]:
        """Faces in several frames at once (same-size frames run as one batch through MTCNN)."""
        import torch

        if not frames:
            return []
        prepared = [(_resize_longest(as_rgb(f), self.detect_max_side)) for f in frames]
        sizes = {p[0].shape for p in prepared}
        with torch.inference_mode():
            if len(sizes) == 1 and len(prepared) > 1:
                boxes_list, probs_list = self._mtcnn.detect(np.stack([p[0] for p in prepared]))
            else:
                boxes_list, probs_list = [], []
                for img, _ in prepared:
                    b, p = self._mtcnn.detect(img)
                    boxes_list.append(b)
                    probs_list.append(p)
        out: list[list[FaceBox]] = []
        for (img, factor), boxes, probs, orig in zip(prepared, boxes_list, probs_list, frames):
            h, w = np.asarray(orig).shape[:2]
            faces: list[FaceBox] = []
            if boxes is not None:
                for box, prob in zip(boxes, probs):
                    if prob is None or not np.isfinite(prob) or prob < self.min_score:
                        continue
                    x1, y1, x2, y2 = (float(v) * factor for v in box)
                    x1, y1, x2, y2 = max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)
                    if x2 - x1 < 2 or y2 - y1 < 2:
                        continue
                    faces.append(FaceBox(x1, y1, x2, y2, float(prob)))
            out.append(faces)
        return out


# ---------------------------------------------------------------- main-face tracking


def box_area(b: FaceBox) -> float:
    return max(0.0, b.x2 - b.x1) * max(0.0, b.y2 - b.y1)


def iou(a: FaceBox, b: FaceBox) -> float:
    ix = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    iy = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = ix * iy
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > 0 else 0.0


def centre_distance(a: FaceBox, b: FaceBox) -> float:
    """Distance between box centres in units of ``a``'s diagonal (scale-free)."""
    diag = math.hypot(a.x2 - a.x1, a.y2 - a.y1) or 1.0
    return math.hypot((a.x1 + a.x2 - b.x1 - b.x2) / 2, (a.y1 + a.y2 - b.y1 - b.y2) / 2) / diag


@dataclass
class TrackStep:
    main: FaceBox | None  # the main face in this frame (None: not visible)
    n_faces: int


class MainFaceTracker:
    """Keeps one face ("the speaker") across sampled frames.

    Acquire: the face with the largest ``area * score`` (the most prominent person). Follow: the
    face with the highest IoU with the last main box, or failing that the nearest centre within
    ``max_centre_dist`` box diagonals (a fast head move at 5 fps can give IoU 0). When the main face
    is not matched for more than ``max_gap_s`` seconds, the track is dropped and the most
    prominent face is acquired again (a cut to another shot, the speaker left).
    """

    def __init__(self, min_iou: float = 0.2, max_centre_dist: float = 0.6, max_gap_s: float = 1.0):
        self.min_iou = min_iou
        self.max_centre_dist = max_centre_dist
        self.max_gap_s = max_gap_s
        self.reset()

    def reset(self) -> None:
        self._last: FaceBox | None = None
        self._last_t = -math.inf

    @staticmethod
    def most_prominent(faces: Sequence[FaceBox]) -> FaceBox:
        return max(faces, key=lambda b: box_area(b) * b.score)

    def update(self, faces: Sequence[FaceBox], time_s: float) -> TrackStep:
        faces = list(faces)
        if self._last is not None and time_s - self._last_t > self.max_gap_s:
            self._last = None
        if not faces:
            return TrackStep(None, 0)
        if self._last is None:
            main = self.most_prominent(faces)
        else:
            best = max(faces, key=lambda b: iou(self._last, b))
            if iou(self._last, best) >= self.min_iou:
                main = best
            else:
                near = min(faces, key=lambda b: centre_distance(self._last, b))
                main = near if centre_distance(self._last, near) <= self.max_centre_dist else None
        if main is not None:
            self._last, self._last_t = main, time_s
        return TrackStep(main, len(faces))

    def follow(self, box: FaceBox, time_s: float) -> None:
        """Move the track to ``box`` found without the detector (e.g. from the AU backend's
        landmarks in the frames between detector runs)."""
        self._last, self._last_t = box, time_s

    @property
    def current(self) -> FaceBox | None:
        return self._last

    def track(self, faces_per_frame: Iterable[Sequence[FaceBox]], times_s: Iterable[float]) -> list[TrackStep]:
        self.reset()
        return [self.update(f, t) for f, t in zip(faces_per_frame, times_s)]
