"""``face_dlib``: dlib's ResNet face descriptor (128-d) of the main face per sampled frame.

``dlib_face_recognition_resnet_model_v1.dat`` from ``face-recognition-models`` (a ResNet-29
trained for face identity: 99.38% on LFW). It is an identity embedding, which is why it pairs
with per-speaker normalisation: z-scored per speaker, what is left is how this face differs from
its own average (expression, pose, light). The face is aligned by dlib's 68-point landmarks
inside the cue stage's main-face box (``face_chip`` 150x150), as dlib's example does.
"""
from __future__ import annotations

import numpy as np

from textualize.registry import STREAM_EXTRACTORS
from textualize.streams.base import FaceFrameExtractor
from textualize.streams.face_landmarks import dlib_shapes

_NET: dict[str, object] = {}


@STREAM_EXTRACTORS.register("face_dlib")
class FaceDlibStream(FaceFrameExtractor):
    name = "face_dlib"
    version = 1
    extractor = "dlib ResNet face descriptor (dlib_face_recognition_resnet_model_v1, face-recognition-models 0.3.0)"
    unit = "embedding (dlib metric space: faces of one person lie within ~0.6 Euclidean distance)"
    names = [f"dlib_{i:03d}" for i in range(128)]

    def __init__(self):
        import dlib

        from textualize.models import require_model

        if "net" not in _NET:
            _NET["net"] = dlib.face_recognition_model_v1(str(require_model("dlib-face-resnet")))
        self.net = _NET["net"]

    def frames(self, rgbs, boxes) -> np.ndarray:
        shapes = dlib_shapes(rgbs, boxes)
        out = []
        for rgb, shape in zip(rgbs, shapes):
            out.append(np.asarray(self.net.compute_face_descriptor(np.ascontiguousarray(rgb), shape), np.float32))
        return np.stack(out)
