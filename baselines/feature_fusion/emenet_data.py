"""EMENet inputs: face crops and log-mel patches per sampled frame, from a built dataset's media.

Per media file, once (cached by content SHA-256 + parameters + ``CACHE_VERSION``, so a rerun never
re-detects; the cache is a folder per file, written to a staging folder and renamed, so an
interrupted run leaves either a whole entry or none):

- frames sampled at ``fps`` (``textualize.media.iter_frames``); faces from the project's MTCNN
  detector and main-face tracker (``textualize.visual_cues.face_tracking``: the speaker, never a
  passer-by); a square crop around the main face resized to ``size`` x ``size`` uint8 RGB
  (``faces.npy``, memory-mapped on reading); frames without the main face are masked;
- the audio track at 16 kHz as a log-mel spectrogram (librosa; ``n_mels`` bands, 10 ms hop);
  each frame gets the ``n_mels`` x ``mel_frames`` patch centred on its time (64 x 64 = 0.64 s, as
  EMENet-VA's spectrogram input). No audio track: the audio branch is masked. Audio-only files
  (CREMA-D's MP3s) get a frame grid at ``fps`` with every face masked.

Samples (rows of the DatasetDict: ``id``, ``label``, ``media_path``, ``start_s``, ``end_s``) take
the frames of their time span. Labels: the expression class of the sample on every frame with
any input; action units and valence/arousal when the dataset provides them (columns ``AU01`` ...,
``valence``, ``arousal``, or a side table joined on ``id``), masked where missing.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

CACHE_VERSION = 1
IGNORE_INDEX = -100
AU_COLUMN = re.compile(r"^AU0*(\d{1,2})$", re.IGNORECASE)
VA_COLUMNS = ("valence", "arousal")


class EMENetDataError(ValueError):
    """A sample or media file EMENet cannot use; the message names it and says why."""


@dataclass(frozen=True)
class CropConfig:
    """Everything that changes the cached crops and spectrograms (part of the cache key)."""

    fps: float = 5.0
    size: int = 112
    margin: float = 1.3  # crop side = margin x the longer side of the face box
    max_side: int = 640  # frames are decoded at most this large
    detect_max_side: int = 400
    min_face_size: int = 20
    min_score: float = 0.9
    sample_rate: int = 16_000
    n_mels: int = 64
    mel_frames: int = 64  # columns per frame patch
    hop_s: float = 0.010
    win_s: float = 0.025
    detect_batch: int = 16

    def key(self, content_sha256: str) -> str:
        from textualize.manifest import stable_hash

        return f"{content_sha256[:20]}-{stable_hash({'v': CACHE_VERSION, **asdict(self)}, 10)}"


# ---------------------------------------------------------------- per media file


@dataclass
class MediaFrames:
    """One media file on the frame grid: crops (memory-mapped), masks, and the log-mel."""

    times_s: np.ndarray  # (T,) float32
    faces: np.ndarray  # (T, S, S, 3) uint8 (memmap)
    face_mask: np.ndarray  # (T,) bool
    mel: np.ndarray | None  # (n_mels, n) float32 log-mel (dB), None = no audio track
    mel_hop_s: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def has_audio(self) -> bool:
        return self.mel is not None

    def mel_patches(self, index: np.ndarray, width: int) -> np.ndarray:
        """(len(index), n_mels, width) patches centred on the frames' times; outside the signal
        is the spectrogram's floor (silence)."""
        if self.mel is None:
            raise EMENetDataError("no audio track")
        n_mels, n = self.mel.shape
        floor = float(self.mel.min()) if n else -100.0
        out = np.full((len(index), n_mels, width), floor, np.float32)
        for k, i in enumerate(index):
            centre = int(round(float(self.times_s[i]) / self.mel_hop_s))
            lo = centre - width // 2
            a, b = max(lo, 0), min(lo + width, n)
            if b > a:
                out[k, :, a - lo : b - lo] = self.mel[:, a:b]
        return out


def square_crop(rgb: np.ndarray, box, size: int, margin: float) -> np.ndarray:
    """A ``size`` x ``size`` crop of the square of side ``margin`` x the box's longer side,
    centred on the box; parts outside the frame are black (not stretched)."""
    import cv2

    h, w = rgb.shape[:2]
    cx, cy = (box.x1 + box.x2) / 2.0, (box.y1 + box.y2) / 2.0
    side = max(2.0, max(box.x2 - box.x1, box.y2 - box.y1) * margin)
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = int(round(side))
    canvas = np.zeros((s, s, 3), np.uint8)
    ax, ay, bx, by = max(x0, 0), max(y0, 0), min(x0 + s, w), min(y0 + s, h)
    if bx > ax and by > ay:
        canvas[ay - y0 : by - y0, ax - x0 : bx - x0] = rgb[ay:by, ax:bx]
    interp = cv2.INTER_AREA if s > size else cv2.INTER_LINEAR
    return cv2.resize(canvas, (size, size), interpolation=interp)


def log_mel(audio: np.ndarray, config: CropConfig) -> np.ndarray:
    """(n_mels, n) log-mel power in dB (librosa), 10 ms hop, 25 ms window."""
    import librosa

    hop = int(round(config.hop_s * config.sample_rate))
    win = int(round(config.win_s * config.sample_rate))
    n_fft = 1 << (win - 1).bit_length()
    s = librosa.feature.melspectrogram(
        y=np.asarray(audio, np.float32), sr=config.sample_rate, n_fft=n_fft, win_length=win, hop_length=hop,
        n_mels=config.n_mels, fmin=20.0, fmax=config.sample_rate / 2, power=2.0, center=True,
    )
    return librosa.power_to_db(s, ref=1.0, amin=1e-10, top_db=None).astype(np.float32)


class MediaCache:
    """Crops + spectrograms per media file under ``root/<sha>-<params>/``, computed once.

    The detector is created on first use only, so a fully cached dataset never loads MTCNN.
    """

    def __init__(self, root: str | Path, config: CropConfig = CropConfig(), device: str = "cpu"):
        self.root = Path(root)
        self.config = config
        self.device = device
        self._detector = None
        self._hashes: dict[str, str] = {}
        self.computed = 0  # media files extracted by this object (0 on a fully cached rerun)

    def detector(self):
        if self._detector is None:
            from textualize.visual_cues.face_tracking import MTCNNDetector

            c = self.config
            self._detector = MTCNNDetector(
                device=self.device, detect_max_side=c.detect_max_side, min_face_size=c.min_face_size, min_score=c.min_score
            )
        return self._detector

    def entry_dir(self, media_path: str | Path) -> Path:
        from textualize.media import sha256_file

        key = str(Path(media_path).resolve())
        if key not in self._hashes:
            self._hashes[key] = sha256_file(media_path)
        return self.root / self.config.key(self._hashes[key])

    def get(self, media_path: str | Path) -> MediaFrames:
        path = Path(media_path)
        if not path.is_file():
            raise EMENetDataError(f"{path}: media file not found")
        entry = self.entry_dir(path)
        if not (entry / "meta.json").exists():
            self._extract(path, entry)
        return self._load(entry)

    @staticmethod
    def _load(entry: Path) -> MediaFrames:
        meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        arrays = np.load(entry / "arrays.npz", allow_pickle=False)
        faces = np.load(entry / "faces.npy", mmap_mode="r", allow_pickle=False)
        mel = arrays["mel"].astype(np.float32) if meta["has_audio"] else None
        return MediaFrames(
            times_s=arrays["times_s"], faces=faces, face_mask=arrays["face_mask"].astype(bool), mel=mel,
            mel_hop_s=float(meta["mel_hop_s"]), info=meta,
        )

    def _extract(self, path: Path, entry: Path) -> None:
        from textualize.media import MediaError, NoAudioTrackError, NoVideoTrackError, iter_frames, load_audio, probe
        from textualize.visual_cues.face_tracking import MainFaceTracker

        c = self.config
        info = probe(path, content_sha256=self._hashes.get(str(path.resolve())))
        mel, audio_reason = None, None
        if info.has_audio:
            try:
                audio = load_audio(path, c.sample_rate)
                if len(audio) == 0:
                    audio_reason = "empty audio track"
                else:
                    mel = log_mel(audio, c)
            except NoAudioTrackError:
                audio_reason = "no audio track"
            except MediaError as e:
                audio_reason = f"audio cannot be decoded: {e}"
        else:
            audio_reason = "no audio track"
        times: list[float] = []
        crops: list[np.ndarray] = []
        mask: list[bool] = []
        n_faces: list[int] = []
        video_reason = None
        if info.has_video:
            tracker = MainFaceTracker()
            batch: list = []

            def flush() -> None:
                boxes = self.detector().detect_batch([f.rgb for f in batch])
                for frame, faces in zip(batch, boxes):
                    step = tracker.update(faces, frame.time_s)
                    times.append(frame.time_s)
                    n_faces.append(step.n_faces)
                    if step.main is None:
                        crops.append(np.zeros((c.size, c.size, 3), np.uint8))
                        mask.append(False)
                    else:
                        crops.append(square_crop(frame.rgb, step.main, c.size, c.margin))
                        mask.append(True)
                batch.clear()

            try:
                for frame in iter_frames(path, fps=c.fps, max_side=c.max_side):
                    batch.append(frame)
                    if len(batch) >= c.detect_batch:
                        flush()
                if batch:
                    flush()
            except NoVideoTrackError:
                video_reason = "no video track"
        else:
            video_reason = "no video track"
        if not times:
            if mel is None:
                raise EMENetDataError(f"{path}: neither decodable video frames nor audio ({video_reason}; {audio_reason})")
            duration = mel.shape[1] * c.hop_s
            times = list(np.arange(0.0, max(duration, 1e-6), 1.0 / c.fps))
            crops = [np.zeros((c.size, c.size, 3), np.uint8)] * len(times)
            mask = [False] * len(times)
            n_faces = [0] * len(times)
        meta = {
            "version": CACHE_VERSION, "media": str(path), "content_sha256": info.content_sha256,
            "config": asdict(c), "detector": self.detector().params if info.has_video and video_reason is None else None,
            "has_audio": mel is not None, "audio_missing_reason": audio_reason, "video_missing_reason": video_reason,
            "n_frames": len(times), "n_face_frames": int(sum(mask)), "mel_hop_s": c.hop_s,
            "duration_s": info.duration_s,
        }
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{entry.name}."))
        try:
            np.save(staging / "faces.npy", np.stack(crops).astype(np.uint8), allow_pickle=False)
            np.savez(
                staging / "arrays.npz", times_s=np.asarray(times, np.float32), face_mask=np.asarray(mask, bool),
                n_faces=np.asarray(n_faces, np.int16), mel=(mel if mel is not None else np.zeros((c.n_mels, 0))).astype(np.float16),
            )
            (staging / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
            if entry.exists():  # a half-written entry from an older crash (no meta.json)
                shutil.rmtree(entry)
            os.replace(staging, entry)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self.computed += 1


# ---------------------------------------------------------------- auxiliary labels


@dataclass
class AuxLabels:
    """Per-sample AU occurrence (0/1; NaN = unknown) and valence/arousal ([-1, 1]; NaN = unknown).

    Values are scalars per sample (applied to each of its frames) or per-frame lists spread
    uniformly over the sample's span."""

    au_names: list[str]
    au: dict[str, list] = field(default_factory=dict)  # id -> per-AU value or per-frame list
    va: dict[str, list] = field(default_factory=dict)  # id -> [valence, arousal]

    @property
    def has_au(self) -> bool:
        return bool(self.au_names) and bool(self.au)

    @property
    def has_va(self) -> bool:
        return bool(self.va)


def _num(v) -> Any:
    if v is None:
        return math.nan
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_num(x) for x in v]
    try:
        x = float(v)
    except (TypeError, ValueError):
        return math.nan
    return x if math.isfinite(x) and x >= -1e6 else math.nan


def aux_from_rows(rows: Iterable[Mapping[str, Any]], where: str) -> AuxLabels:
    """AU columns (``AU1``/``AU01``/``au12``; 0/1, -1 or empty = unknown) and ``valence``/``arousal``."""
    rows = list(rows)
    cols = sorted({k for r in rows for k in r})
    au_cols = {c: f"AU{int(m.group(1)):02d}" for c in cols if (m := AU_COLUMN.match(c))}
    aux = AuxLabels(au_names=sorted(set(au_cols.values())))
    for r in rows:
        sid = str(r.get("id"))
        if au_cols:
            vals = {au_cols[c]: _num(r.get(c)) for c in au_cols}
            for name, v in vals.items():
                if isinstance(v, float) and v < 0:
                    vals[name] = math.nan  # ABAW's -1 = not annotated
            aux.au[sid] = [vals.get(n, math.nan) for n in aux.au_names]
        if any(c in r for c in VA_COLUMNS):
            aux.va[sid] = [_num(r.get(c)) for c in VA_COLUMNS]
    for sid, v in aux.va.items():
        for x in v:
            for y in (x if isinstance(x, list) else [x]):
                if not math.isnan(y) and not -1.0001 <= y <= 1.0001:
                    raise EMENetDataError(f"{where}: sample {sid!r}: valence/arousal {y} outside [-1, 1]")
    return aux


def read_aux_table(path: str | Path) -> AuxLabels:
    """A CSV/JSONL side table (``id`` + AU / valence / arousal columns) joined on the sample id."""
    from textualize.corpora.manifest import read_table

    path = Path(path)
    rows = read_table(path)
    if not rows or "id" not in rows[0]:
        raise EMENetDataError(f"{path}: an auxiliary label table needs an 'id' column")
    return aux_from_rows(rows, str(path))


def merge_aux(a: AuxLabels, b: AuxLabels) -> AuxLabels:
    names = sorted(set(a.au_names) | set(b.au_names))
    out = AuxLabels(au_names=names)
    for src in (a, b):
        for sid, vals in src.au.items():
            row = out.au.setdefault(sid, [math.nan] * len(names))
            for n, v in zip(src.au_names, vals):
                row[names.index(n)] = v
        out.va.update(src.va)
    return out


# ---------------------------------------------------------------- samples and windows


@dataclass
class SampleFrames:
    """One dataset row on its media file's frame grid."""

    id: str
    label: str
    label_id: int
    media: str  # cache entry folder
    frames: np.ndarray  # indices into the media file's frames
    face_mask: np.ndarray  # (n,) bool
    has_audio: bool
    au: np.ndarray | None = None  # (n, A) float, NaN unknown
    va: np.ndarray | None = None  # (n, 2) float, NaN unknown


def _per_frame(values, n: int) -> np.ndarray:
    """Scalar -> repeated; list of length L -> nearest of L equal parts of the span."""
    if not isinstance(values, list):
        return np.full(n, values, np.float32)
    if len(values) == 0:
        return np.full(n, np.nan, np.float32)
    arr = np.asarray(values, np.float32)
    idx = np.minimum((np.arange(n) * len(arr)) // max(n, 1), len(arr) - 1)
    return arr[idx]


def sample_frames(row: Mapping[str, Any], media: MediaFrames, entry: Path, classes: Sequence[str], aux: AuxLabels | None) -> SampleFrames:
    sid = str(row["id"])
    label = str(row["label"])
    if label not in classes:
        raise EMENetDataError(f"sample {sid!r}: label {label!r} is not one of the classes {list(classes)}")
    lo = row.get("start_s")
    hi = row.get("end_s")
    lo = -math.inf if lo is None or (isinstance(lo, float) and math.isnan(lo)) else float(lo)
    hi = math.inf if hi is None or (isinstance(hi, float) and math.isnan(hi)) else float(hi)
    t = media.times_s
    idx = np.nonzero((t >= lo - 1e-6) & (t < hi))[0]
    if len(idx) == 0 and len(t):  # a span shorter than one frame period: the nearest frame
        mid = (max(lo, float(t[0])) + min(hi, float(t[-1]))) / 2
        idx = np.asarray([int(np.argmin(np.abs(t - mid)))])
    if len(idx) == 0:
        raise EMENetDataError(f"sample {sid!r}: no frames in {row.get('media_path')} for span {lo}..{hi} s")
    n = len(idx)
    au = va = None
    if aux is not None and aux.au_names:
        vals = aux.au.get(sid)
        au = np.full((n, len(aux.au_names)), np.nan, np.float32)
        if vals is not None:
            for j, v in enumerate(vals):
                au[:, j] = _per_frame(v, n)
    if aux is not None and aux.has_va:
        vals = aux.va.get(sid)
        va = np.full((n, 2), np.nan, np.float32)
        if vals is not None:
            for j, v in enumerate(vals):
                va[:, j] = _per_frame(v, n)
    return SampleFrames(
        id=sid, label=label, label_id=list(classes).index(label), media=str(entry), frames=idx,
        face_mask=media.face_mask[idx].copy(), has_audio=media.has_audio, au=au, va=va,
    )


def window_starts(n: int, window: int, hop: int) -> list[int]:
    """Starts of windows of ``window`` frames every ``hop`` covering all ``n`` frames (the last
    window ends at the last frame; a sample shorter than a window is one padded window)."""
    if n <= window:
        return [0]
    starts = list(range(0, n - window + 1, max(1, hop)))
    if starts[-1] + window < n:
        starts.append(n - window)
    return starts


class EMENetWindows:
    """A ``torch`` map-style dataset of fixed-length frame windows over samples.

    Items: ``faces`` (T, S, S, 3) uint8, ``face_mask`` (T,), ``mels`` (T, n_mels, W) float32,
    ``audio_mask`` (T,), ``frame_mask`` (T,) (False = padding), ``labels`` (T,) int64 (-100 on
    padding and on frames with neither face nor audio), ``au_target``/``au_mask`` (T, A) and
    ``va_target``/``va_mask`` (T, 2) when the model has those heads. ``train=True`` flips the
    whole window horizontally at random (Trainer seeds ``torch``'s generator).
    """

    def __init__(
        self,
        samples: Sequence[SampleFrames],
        config: CropConfig,
        window: int,
        hop: int,
        train: bool = False,
        au_names: Sequence[str] = (),
        use_va: bool = False,
        eval_hop: int = 0,
    ):
        self.samples = list(samples)
        self.config = config
        self.window = int(window)
        self.hop = int(hop)
        self.train = train
        self.au_names = list(au_names)
        self.use_va = use_va
        self.eval_hop = int(eval_hop)
        self.index = [(k, a) for k, s in enumerate(self.samples) for a in window_starts(len(s.frames), self.window, self.hop)]
        self._media: dict[str, MediaFrames] = {}

    def __len__(self) -> int:
        return len(self.index)

    @property
    def label_ids(self) -> list[int]:
        """One label per item (window), for class weights and the balanced sampler."""
        return [self.samples[k].label_id for k, _ in self.index]

    def for_prediction(self) -> "EMENetWindows":
        """Same samples, no augmentation, overlapping windows (``eval_hop``, default half a
        window) covering every frame."""
        hop = self.eval_hop if self.eval_hop > 0 else max(1, self.window // 2)
        return EMENetWindows(self.samples, self.config, self.window, hop, False, self.au_names, self.use_va, self.eval_hop)

    def media(self, entry: str) -> MediaFrames:
        if entry not in self._media:
            if len(self._media) > 64:
                self._media.clear()
            self._media[entry] = MediaCache._load(Path(entry))
        return self._media[entry]

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        k, a = self.index[i]
        s = self.samples[k]
        m = self.media(s.media)
        T, c = self.window, self.config
        frames = s.frames[a : a + T]
        n = len(frames)
        faces = np.zeros((T, c.size, c.size, 3), np.uint8)
        face_mask = np.zeros(T, bool)
        face_mask[:n] = s.face_mask[a : a + n]
        if face_mask.any():
            sel = np.nonzero(face_mask[:n])[0]
            faces[sel] = m.faces[frames[sel]]
            if self.train and torch.rand(()) < 0.5:
                faces = faces[:, :, ::-1].copy()
        mels = np.zeros((T, c.n_mels, c.mel_frames), np.float32)
        audio_mask = np.zeros(T, bool)
        if s.has_audio:
            mels[:n] = m.mel_patches(frames, c.mel_frames)
            audio_mask[:n] = True
        frame_mask = np.zeros(T, bool)
        frame_mask[:n] = True
        labels = np.full(T, IGNORE_INDEX, np.int64)
        labels[(face_mask | audio_mask) & frame_mask] = s.label_id
        item = {
            "faces": torch.from_numpy(faces), "face_mask": torch.from_numpy(face_mask),
            "mels": torch.from_numpy(mels), "audio_mask": torch.from_numpy(audio_mask),
            "frame_mask": torch.from_numpy(frame_mask), "labels": torch.from_numpy(labels),
        }
        if self.au_names:
            au = np.full((T, len(self.au_names)), np.nan, np.float32)
            if s.au is not None:
                au[:n] = s.au[a : a + n]
            au_mask = ~np.isnan(au) & face_mask[:, None]  # AUs are visual: no face, no AU target
            item["au_target"] = torch.from_numpy(np.nan_to_num(au, nan=0.0))
            item["au_mask"] = torch.from_numpy(au_mask)
        if self.use_va:
            va = np.full((T, 2), np.nan, np.float32)
            if s.va is not None:
                va[:n] = s.va[a : a + n]
            va_mask = ~np.isnan(va) & (face_mask | audio_mask)[:, None]
            item["va_target"] = torch.from_numpy(np.nan_to_num(va, nan=0.0))
            item["va_mask"] = torch.from_numpy(va_mask)
        return item


def collate(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack the fixed-length windows (every item has the same keys and shapes)."""
    import torch

    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


# ---------------------------------------------------------------- from a built dataset


def load_split_samples(
    dataset_dir: str | Path,
    classes: Sequence[str],
    cache: MediaCache,
    aux_table: str | Path | None = None,
    log=print,
) -> tuple[dict[str, list[SampleFrames]], AuxLabels, dict[str, Any]]:
    """Every split of a built dataset as frame samples; media extracted once into ``cache``.

    Rows without media (text-only corpora) are an error that names them: EMENet sees faces and
    voices, and silently training on a subset would misreport the comparison.
    """
    from datasets import load_from_disk

    dd = load_from_disk(str(dataset_dir))
    splits = {name: dd[name] for name in dd}
    table = read_aux_table(aux_table) if aux_table else AuxLabels(au_names=[])
    columns = {c for ds in splits.values() for c in ds.column_names}
    aux_cols = [c for c in columns if AU_COLUMN.match(c) or c in VA_COLUMNS]
    aux = table
    if aux_cols:
        in_data = aux_from_rows(
            (r for ds in splits.values() for r in ds.select_columns([c for c in ["id", *aux_cols] if c in ds.column_names])),
            str(dataset_dir),
        )
        aux = merge_aux(in_data, table)
    out: dict[str, list[SampleFrames]] = {}
    no_media: list[str] = []
    stats = {"media_files": 0, "extracted": 0, "samples": {}, "face_frames": {}, "frames": {}, "with_audio": {}}
    for name, ds in splits.items():
        rows = ds.select_columns([c for c in ("id", "label", "media_path", "start_s", "end_s") if c in ds.column_names])
        samples = []
        for r in rows:
            if not r.get("media_path"):
                no_media.append(str(r["id"]))
                continue
            media = cache.get(r["media_path"])
            samples.append(sample_frames(r, media, cache.entry_dir(r["media_path"]), classes, aux))
        out[name] = samples
        stats["samples"][name] = len(samples)
        stats["frames"][name] = int(sum(len(s.frames) for s in samples))
        stats["face_frames"][name] = int(sum(int(s.face_mask.sum()) for s in samples))
        stats["with_audio"][name] = int(sum(s.has_audio for s in samples))
    if no_media:
        raise EMENetDataError(
            f"{dataset_dir}: {len(no_media)} samples have no media file (first: {no_media[:3]}); "
            "EMENet needs video or audio (text-only corpora train the text models)"
        )
    stats["extracted"] = cache.computed
    stats["media_files"] = len({s.media for v in out.values() for s in v})
    return out, aux, stats
