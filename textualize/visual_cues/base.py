"""Interfaces every visual backend implements (registered in ``textualize.registry``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Protocol

import numpy as np

from textualize.cues import AUScale, FaceBox, FacialCues, MissingCue
from textualize.media import Frame


class FaceDetector(Protocol):
    """Constructed once per worker as ``cls(device="cpu")``."""

    name: str

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        """All faces in one RGB frame, in pixel coordinates of that frame."""


@dataclass
class FrameAUs:
    """One analysed face in one frame: AU values on the backend's scale (keys like 'AU12'), plus
    raw backend outputs (e.g. MediaPipe blendshapes) and optional emotion scores."""

    aus: dict[str, float]
    raw: dict[str, float] = field(default_factory=dict)
    emotions: dict[str, float] = field(default_factory=dict)


class AUBackend(Protocol):
    """Frame-based AU backend. Constructed once per worker as ``cls(model_dir=None, device="cpu")``.

    ``kind = "frames"``: the shared pipeline (``visual_cues/pipeline.py``) decodes frames, tracks the
    main face and calls ``analyze`` for each sampled frame with the main face's box.
    ``kind = "table"``: the backend reads precomputed per-frame tables (``from_table``) instead.
    """

    name: str
    kind: str  # "frames" | "table"
    scale: AUScale
    au_names: list[str]
    raw_scale: str

    def analyze(self, frame: Frame, box: FaceBox) -> FrameAUs | None:
        """AUs of the face inside ``box`` (None if the backend cannot find a face there)."""

    def from_table(self, path: str) -> FacialCues | MissingCue:
        """Only for ``kind == "table"``."""
