"""What a stream extractor gets (``SampleContext``) and returns (``Source``), plus the shared
per-clip embedding cache and the face-frame pass that the face-CNN extractors share.

An extractor is registered by name in ``textualize.registry.STREAM_EXTRACTORS`` and implements
``source(ctx) -> Source | None``: the stream on its own clock (times of the sampled frames, of the
50 Hz encoder frames, or token intervals), with a validity flag per row. ``None`` means the sample
has no data for the stream at all (no face, no speech): the writer turns that into an all-False
mask, never into zeros passed off as data. ``textualize.streams.align`` puts every ``Source`` of a
sample on the sample's one time axis.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from textualize.manifest import atomic_write_bytes, stable_hash


@dataclass
class Source:
    """One stream of one sample before alignment.

    ``times_s`` (N,) are point times (a frame's time) or, with ``ends_s``, interval starts
    (a token spoken from ``times_s[i]`` to ``ends_s[i]``). ``per_clip``: one row that describes
    the whole sample (a cue-table summary); the writer gives it T = 1 (or repeats it over the
    axis when another stream of the sample is time-resolved, counted in the manifest).
    ``source_rate_hz``: rows per second on the stream's own clock (0 for per-clip and token rows).
    """

    times_s: np.ndarray
    values: np.ndarray
    valid: np.ndarray
    names: list[str]
    source_rate_hz: float = 0.0
    ends_s: np.ndarray | None = None
    per_clip: bool = False
    info: dict[str, Any] = field(default_factory=dict)  # e.g. {"timing": "asr_words"} for the manifest counts

    def __post_init__(self):
        self.times_s = np.asarray(self.times_s, np.float64).reshape(-1)
        values = np.asarray(self.values, np.float32)
        self.values = values.reshape(len(self.times_s), -1) if values.size else np.zeros((len(self.times_s), len(self.names)), np.float32)
        self.valid = np.asarray(self.valid, bool).reshape(-1) & np.all(np.isfinite(self.values), axis=1)
        if self.ends_s is not None:
            self.ends_s = np.asarray(self.ends_s, np.float64).reshape(-1)
        if self.values.shape[1] != len(self.names):
            raise ValueError(f"{self.values.shape[1]} values per row but {len(self.names)} names")


@dataclass
class SampleContext:
    """Everything an extractor may need about one sample of a built dataset.

    ``clip`` is the cue-cache ``ClipCues`` of the sample's media (None for text-only and cue-table
    rows); ``start_s``/``end_s`` are the sample's span on the clip's clock (the whole clip when the
    adapter gave none). ``sample`` is the adapter's ``Sample`` (precomputed cues, gold transcript)
    when the corpus root could be read again, else None.
    """

    id: str
    split: str
    speaker: str
    start_s: float | None
    end_s: float | None
    clip_id: str | None
    media_path: str | None
    cue_dir: Path
    clip: Any = None
    sample: Any = None
    prefer_gold_transcript: bool = True
    transcript_column: str = ""
    extract: dict[str, Any] = field(default_factory=dict)  # the build's ExtractConfig as a dict
    _sequences: dict[str, np.ndarray] | None = None

    @property
    def content_sha256(self) -> str | None:
        return getattr(getattr(self.clip, "media", None), "content_sha256", None) if self.clip is not None else None

    @property
    def sequences(self) -> dict[str, np.ndarray]:
        """The clip's per-frame arrays in the cue cache (``<clip>.npz``), loaded once."""
        if self._sequences is None:
            from textualize.extract import sequence_path

            p = sequence_path(self.cue_dir, self.clip_id) if self.clip_id else None
            self._sequences = dict(np.load(p)) if p is not None and p.exists() else {}
        return self._sequences

    def precomputed(self, kind: str) -> Any:
        if self.sample is None:
            return None
        return self.sample.precomputed.get(kind)

    def cue(self, kind: str) -> Any:
        """The cue record of this sample: a precomputed one, else the clip's (build.py's rule)."""
        from textualize.cues import MissingCue

        pre = self.precomputed(kind)
        if pre is not None and not isinstance(pre, MissingCue):
            return pre
        if self.clip is not None:
            return getattr(self.clip, kind)
        return pre


class StreamExtractor:
    """Base of the registered extractors: name, modality, provenance and the manifest entry."""

    name: str = ""
    modality: str = ""  # face | voice | text (the build's modality names)
    version: int = 1  # bump when the output changes for the same input: cached clips are redone
    extractor: str = ""
    unit: str = ""
    source_rate_hz: float = 0.0
    names: list[str] | None = None  # fixed names (embeddings); None = from the data (AU sets)

    @classmethod
    def params(cls) -> dict[str, Any]:
        """Settings that change the output (part of the cache keys and the manifest)."""
        return {}

    def cache_key(self, content: str) -> str:
        return stable_hash({"stream": self.name, "version": self.version, "params": self.params(), "content": content}, 24)

    def source(self, ctx: SampleContext) -> Source | None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


# ---------------------------------------------------------------- per-clip cache


class ClipCache:
    """``CUE_DIR/streams/<stream>/<clip id>.npz`` holding a clip's intermediate arrays and the key
    (clip content hash + extractor name, version and parameters) they were made with. A rebuild
    with the same key reads them back; another key recomputes and overwrites (atomic writes)."""

    def __init__(self, cue_dir: Path, stream: str):
        self.folder = Path(cue_dir) / "streams" / stream
        self.hits = 0
        self.misses = 0

    def get_or_compute(self, item: str, key: str, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        path = self.folder / f"{item}.npz"
        if path.exists():
            try:
                with np.load(path, allow_pickle=False) as z:
                    if str(z["__key__"]) == key:
                        self.hits += 1
                        return {k: z[k] for k in z.files if k != "__key__"}
            except (OSError, ValueError, KeyError):
                pass  # a damaged file is redone
        self.misses += 1
        arrays = compute()
        buf = io.BytesIO()
        np.savez_compressed(buf, __key__=np.asarray(key), **arrays)
        atomic_write_bytes(path, buf.getvalue())
        return arrays


# ---------------------------------------------------------------- face frames


class FaceFrameExtractor(StreamExtractor):
    """A face-CNN stream: per sampled frame of the cue stage, a vector from the main face's crop.

    The frames are decoded at the cue stage's fps and size, so they are the frames the AUs came
    from; the main-face box is the cue stage's tracked box (``FacialCues.boxes``) when the cue
    cache has it, else the project's MTCNN detector + ``MainFaceTracker`` run here. Rows of frames
    without the main face are invalid. Results are cached per clip (content hash + version).
    Subclasses implement ``frames(rgbs, boxes) -> (N, dim)``.
    """

    modality = "face"
    batch = 16

    def frames(self, rgbs: list[np.ndarray], boxes: list[tuple[float, float, float, float]]) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover

    @classmethod
    def params(cls) -> dict[str, Any]:
        return {"face_pass": FACE_PASS_VERSION}

    def source(self, ctx: SampleContext) -> Source | None:
        if ctx.clip is None or ctx.media_path is None or ctx.content_sha256 is None:
            return None
        media = ctx.clip.media
        if not getattr(media, "has_video", False):
            return None  # audio-only media: no face at all
        fps, max_side = face_pass_settings(ctx)
        cache = _face_cache(ctx.cue_dir, self.name)
        # the cue stage's visual key too: its tracked boxes choose the face
        key = self.cache_key(f"{ctx.content_sha256}:{fps}:{max_side}:{(ctx.clip.part_keys or {}).get('visual', '')}")
        arrays = cache.get_or_compute(ctx.clip_id, key, lambda: self._compute(ctx, fps, max_side))
        if arrays["values"].size == 0 or not arrays["valid"].any():
            return None
        return Source(arrays["times_s"], arrays["values"], arrays["valid"], list(self.names or []), source_rate_hz=fps)

    def _compute(self, ctx: SampleContext, fps: float, max_side: int | None) -> dict[str, np.ndarray]:
        dim = len(self.names or [])
        times, boxes, rgbs = main_face_frames(ctx, fps, max_side)
        values = np.zeros((len(times), dim), np.float32)
        valid = np.array([b is not None for b in boxes], bool)
        idx = [i for i, b in enumerate(boxes) if b is not None]
        for lo in range(0, len(idx), self.batch):
            chunk = idx[lo:lo + self.batch]
            out = self.frames([rgbs[i] for i in chunk], [boxes[i] for i in chunk])
            for i, row, ok in zip(chunk, out, np.all(np.isfinite(out), axis=1)):
                values[i] = np.nan_to_num(row) if ok else 0.0
                valid[i] = bool(ok)
        return {"times_s": np.asarray(times, np.float64), "values": values, "valid": valid}


FACE_PASS_VERSION = 1
_FACE_CACHES: dict[tuple[str, str], ClipCache] = {}


def _face_cache(cue_dir: Path, name: str) -> ClipCache:
    return _FACE_CACHES.setdefault((str(cue_dir), name), ClipCache(cue_dir, name))


def face_pass_settings(ctx: SampleContext) -> tuple[float, int | None]:
    """The cue stage's sampling (fps, max_side): from the clip's face provenance, else the build's."""
    from textualize.cues import MissingCue

    face = ctx.clip.face if ctx.clip is not None else None
    params = getattr(getattr(face, "provenance", None), "params", None) if not isinstance(face, MissingCue) else None
    fps = (params or {}).get("fps") or ctx.extract.get("fps") or 5.0
    max_side = (params or {}).get("max_side", ctx.extract.get("max_side", 640))
    return float(fps), (int(max_side) if max_side else None)


_DETECTOR: dict[str, Any] = {}
_LAST_CLIP: dict[str, Any] = {}  # the last clip's frames, shared by the face extractors of one sample


def main_face_frames(ctx: SampleContext, fps: float, max_side: int | None):
    key = (ctx.media_path, ctx.content_sha256, fps, max_side)
    if _LAST_CLIP.get("key") != key:
        _LAST_CLIP.clear()
        _LAST_CLIP.update(key=key, value=_main_face_frames(ctx, fps, max_side))
    return _LAST_CLIP["value"]


def _main_face_frames(ctx: SampleContext, fps: float, max_side: int | None):
    """(times, main-face boxes or None, RGB frames) of the clip's sampled frames.

    Boxes come from the cue stage when its frames match these (same count, times within 1 ms),
    else from MTCNN + the main-face tracker run now. Frames are kept only for the clip at hand
    (a few dozen 640-px frames for a short clip)."""
    from textualize.cues import MissingCue
    from textualize.media import iter_frames

    times, rgbs = [], []
    for frame in iter_frames(ctx.media_path, fps=fps, max_side=max_side):
        times.append(float(frame.time_s))
        rgbs.append(frame.rgb)
    face = ctx.clip.face if ctx.clip is not None else None
    boxes: list | None = None
    if face is not None and not isinstance(face, MissingCue) and face.boxes and len(face.times_s) == len(times) \
            and np.allclose(face.times_s, times, atol=1e-3):
        boxes = [None if (b is None or not p) else (b.x1, b.y1, b.x2, b.y2) for b, p in zip(face.boxes, face.face_present)]
    elif face is not None and isinstance(face, MissingCue) and face.reason == "no_face":
        boxes = [None] * len(times)  # the cue stage saw no face in these frames
    if boxes is None:
        from textualize.visual_cues.face_tracking import MainFaceTracker, MTCNNDetector

        if "mtcnn" not in _DETECTOR:
            _DETECTOR["mtcnn"] = MTCNNDetector()
        det, tracker = _DETECTOR["mtcnn"], MainFaceTracker()
        boxes = []
        for lo in range(0, len(rgbs), 4):
            for rgb, t, faces in zip(rgbs[lo:lo + 4], times[lo:lo + 4], det.detect_batch(rgbs[lo:lo + 4])):
                step = tracker.update(faces, t)
                boxes.append(None if step.main is None else (step.main.x1, step.main.y1, step.main.x2, step.main.y2))
    return times, boxes, rgbs


def finite(x: float | None) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)
