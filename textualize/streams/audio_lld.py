"""``audio_lld``: the eGeMAPSv02 low-level descriptors (25 per 10 ms frame) the cue stage stored in
``<clip>.npz``. Clips whose prosody is missing (no audio track, no voice activity) have none: the
stream is masked. A cue-table row with per-clip prosody columns gives one per-clip row of the
prosody measures instead (its names say so)."""
from __future__ import annotations

import math

import numpy as np

from textualize.registry import STREAM_EXTRACTORS
from textualize.streams.base import SampleContext, Source, StreamExtractor


@STREAM_EXTRACTORS.register("audio_lld")
class AudioLLDStream(StreamExtractor):
    name = "audio_lld"
    modality = "voice"
    extractor = "opensmile eGeMAPSv02 LLD (cue cache)"
    unit = "eGeMAPS LLD units (st re 27.5 Hz, sone, dB, fraction)"
    source_rate_hz = 100.0

    def source(self, ctx: SampleContext) -> Source | None:
        from textualize.cues import PROSODY_MEASURE_NAMES, MissingCue, ProsodyCues

        pre = ctx.precomputed("prosody")
        if isinstance(pre, ProsodyCues):  # cue table: per-clip measures
            info = {"extractor": "cue-table prosody measures (per clip)", "unit": "ProsodyMeasures units", "per_clip": "measures"}
            row = [getattr(pre.clip, m) for m in PROSODY_MEASURE_NAMES]
            ok = any(math.isfinite(v) for v in row)
            return Source([0.0], [np.nan_to_num(row)], [ok], list(PROSODY_MEASURE_NAMES), per_clip=True, info=info)
        seq = ctx.sequences
        if "audio_lld" not in seq or isinstance(ctx.cue("prosody"), MissingCue):
            return None
        lld = seq["audio_lld"]
        hop = float(seq["audio_lld_hop_s"])
        backend = getattr(getattr(ctx.cue("prosody"), "provenance", None), "backend", "opensmile")
        info = {"extractor": self.extractor if backend == "opensmile" else f"{backend} LLD (cue cache)"}
        names = [str(n) for n in seq.get("audio_lld_names", [f"lld_{i}" for i in range(lld.shape[1])])]
        t = np.arange(len(lld)) * hop
        return Source(t, lld, np.ones(len(lld), bool), names, source_rate_hz=1.0 / hop, info=info)
