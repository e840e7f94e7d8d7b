"""``audio_functionals``: the clip-level eGeMAPSv02 functionals (88 for openSMILE) the cue stage
already computed (``ProsodyCues.functionals`` of the clip's cue record, or of a cue-table row), as
one vector per sample. Nothing is re-extracted.

Why a stream: the logistic regression on these functionals is the feature models' reference
(bench/bench_feature_lr.py); giving the models the same vector lets them fuse it with the
time-resolved streams instead of relearning whole-utterance statistics from 5 Hz LLD frames.

How it lives on the time axis: a per-clip ``Source`` (``per_clip=True``), so the writer repeats
the one vector over every step of the sample's axis (T = 1 when the sample has no span) and the
other streams, windowing and models work unchanged; the manifest entry says ``clip_level: true``
so a model can take the vector once per window instead of treating it as a signal over time
(``models/pooled.py``, ``models/early.py``). Per-speaker z-scoring is the writer's, as for every
stream (a clip weighs by its number of steps there, as any stream's rows do).

Missing data is a mask, never zeros passed off as data: no prosody cue (no audio, no speech) gives
no source (all steps masked); a vector with any missing or non-finite functional is masked as a
whole (the format has one mask per step) and counted in the manifest (``missing.*``).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from textualize.registry import STREAM_EXTRACTORS
from textualize.streams.base import SampleContext, Source, StreamExtractor


@STREAM_EXTRACTORS.register("audio_functionals")
class AudioFunctionalsStream(StreamExtractor):
    name = "audio_functionals"
    modality = "voice"
    extractor = "opensmile eGeMAPSv02 functionals (cue cache)"
    unit = "eGeMAPS functional units (st re 27.5 Hz, sone, dB, fraction, per second)"
    source_rate_hz = 0.0
    counts_key = "missing"

    def __init__(self) -> None:
        self._names: list[str] | None = None  # fixed by the first sample with functionals

    def manifest_extra(self) -> dict[str, Any]:
        return {"clip_level": True,
                "axis": "one vector per sample, repeated over every step of the sample's axis"}

    def source(self, ctx: SampleContext) -> Source | None:
        from textualize.cues import MissingCue, ProsodyCues

        prosody = ctx.cue("prosody")
        if not isinstance(prosody, ProsodyCues) or isinstance(prosody, MissingCue):
            return None  # no audio / no speech: every step masked
        funcs = prosody.functionals or {}
        if not funcs:
            return None
        if self._names is None:
            self._names = sorted(str(k) for k in funcs)
        extra = sorted(set(map(str, funcs)) - set(self._names))
        if extra:
            raise ValueError(f"functionals {extra[:3]} are not among the {len(self._names)} of the first sample with "
                             "functionals (cues from different prosody backends in one dataset, or a first cue-table row "
                             "with empty cells); rebuild the cues with one backend or fill the row")
        row = [_number(funcs.get(n)) for n in self._names]
        ok = all(math.isfinite(v) for v in row)
        backend = getattr(getattr(prosody, "provenance", None), "backend", "opensmile") or "opensmile"
        info: dict[str, Any] = {"per_clip": "eGeMAPS functionals"}
        if backend != "opensmile":
            info["extractor"] = f"{backend} functionals (cue cache)"
        if not ok:
            info["count_samples_with_missing_functionals"] = 1
        # NaN rows are zeroed here only to keep arrays finite; valid=False masks them (Source does too)
        return Source([0.0], [np.nan_to_num(row, nan=0.0, posinf=0.0, neginf=0.0)], [ok], list(self._names),
                      per_clip=True, info=info)


def _number(v: Any) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return math.nan
    return x

