"""``face_blendshapes``: the backend's raw per-frame face coefficients (MediaPipe's 52 blendshapes,
activation 0-1), as the cue stage stored them beside the AUs (``FacialCues.raw_values``)."""
from __future__ import annotations

from textualize.registry import STREAM_EXTRACTORS
from textualize.streams.base import SampleContext, Source, StreamExtractor
from textualize.streams.face_au import facial_cues


@STREAM_EXTRACTORS.register("face_blendshapes")
class FaceBlendshapeStream(StreamExtractor):
    name = "face_blendshapes"
    modality = "face"
    extractor = "MediaPipe FaceLandmarker blendshapes (cue cache)"
    unit = "blendshape activation 0-1"

    def source(self, ctx: SampleContext) -> Source | None:
        face = facial_cues(ctx)
        if face is None or not face.raw_names or not face.raw_values or not face.times_s:
            return None
        backend = face.provenance.backend if face.provenance is not None else "unknown"
        info = {"extractor": f"{backend} raw face coefficients (cue cache)", "unit": face.raw_scale or self.unit}
        present = face.face_present or [True] * len(face.times_s)
        return Source(face.times_s, face.raw_values, present, list(face.raw_names),
                      source_rate_hz=float(face.sampled_fps or 0.0), info=info)
