"""``face_au``: the AU vector of the cue stage's AU backend, per sampled frame of the main face.

Read from the cue cache (``FacialCues.au_values`` of the clip, or a precomputed per-frame table),
so the streams carry exactly the AUs the prompts describe; frames without the main face are
masked. A cue-table row with only per-clip AU columns gives one per-clip row (its means).
"""
from __future__ import annotations

import math

import numpy as np

from textualize.registry import STREAM_EXTRACTORS
from textualize.streams.base import SampleContext, Source, StreamExtractor


def facial_cues(ctx: SampleContext):
    from textualize.cues import FacialCues

    face = ctx.cue("face")
    return face if isinstance(face, FacialCues) else None


@STREAM_EXTRACTORS.register("face_au")
class FaceAUStream(StreamExtractor):
    name = "face_au"
    modality = "face"
    extractor = "cue stage AU backend"

    def source(self, ctx: SampleContext) -> Source | None:
        face = facial_cues(ctx)
        if face is None:
            return None
        info = {"extractor": f"{face.provenance.backend if face.provenance else 'unknown'} AUs (cue cache)",
                "unit": face.au_scale}
        if face.times_s and face.au_values:
            present = face.face_present or [True] * len(face.times_s)
            return Source(face.times_s, face.au_values, present, list(face.au_names),
                          source_rate_hz=float(face.sampled_fps or 0.0), info=info)
        if face.au_summary:  # per-clip table: the clip means
            names = list(face.au_names) or sorted(face.au_summary)
            row = [face.au_summary[a].mean if a in face.au_summary else math.nan for a in names]
            ok = all(math.isfinite(v) for v in row)
            return Source([0.0], [np.nan_to_num(row)], [ok], names, per_clip=True, info={**info, "per_clip": "AU means"})
        return None
