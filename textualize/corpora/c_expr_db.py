"""C-EXPR-DB (Kollias 2023), the ABAW 6th–8th Compound Expression challenge corpus.

The database is licensed per request (no public copy), so the layout below is reconstructed from
the challenge papers and from public code that reads the released files (ABAW 7th/8th entries,
e.g. the "feature-vs-text compound emotion" code): per-video ELAN exports plus k-fold split lists.

Assumed layout under ``root`` (every assumption is checked, and a mismatch raises a ValueError
naming the file or column):

* ``videos/<video>.mp4`` (also .avi/.mkv/.mov/.webm; or the videos directly in ``root``);
* ``annotation/<video>.csv`` (or ``annotations/``), one row per annotated segment, ELAN export
  header ``"Begin Time - hh:mm:ss.ms","End Time - hh:mm:ss.ms"`` followed by one one-hot column
  per class (``"1"`` for the segment's class, empty otherwise): Fearfully Surprised, Happily
  Surprised, Sadly Surprised, Disgustedly Surprised, Angrily Surprised, Sadly Fearful, Sadly Angry,
  Other. A single ``label``/``class`` column holding the class name is accepted instead.
  Times: ``hh:mm:ss.ms`` strings; ELAN's ``Begin Time - ss.msec`` (seconds) or
  ``Begin Time - msec`` (milliseconds); plain ``Begin``/``End``/``start``/``end`` columns hold
  seconds unless ``time_unit="frames"``; columns whose name contains ``frame`` hold frame
  indices. Frame indices are 0-based and the End frame is inclusive
  (``start_s = begin / fps``, ``end_s = (end + 1) / fps``); fps is the ``fps`` option or else the
  video's own rate (probed with PyAV).
* folds: ``folds/split-<k>/{train,val,test}.txt`` (``fold=k``, default 0) or the three files
  directly in ``root``. A line is ``<entry>[,<class id>[,<transcript>]]`` where ``<entry>`` is a
  whole video name (every segment of that video) or a trimmed-segment name as the released folds
  write it, ``<Class-Name>/<video>_<Class-Name>_<i>`` — ``i`` counts the segments of that class in
  that video in annotation-row order (the trimming scripts' convention). The class id, when given,
  must agree with the annotation. A missing fold file leaves its split out (notice); in the
  published 5-fold protocol ``test.txt`` equals ``val.txt``, which is allowed (ids are
  split-prefixed); a segment in train *and* validation/test is an error (leakage).
* ``class_id.yaml`` (fold folder or root): class name -> integer id; defines the class order.
  Absent: the order above (ids 0..7), with a notice.
* optional ``clips_transcription.csv`` (``<segment name>,<transcript>``, no header) for transcripts.

Samples: ``level="clip"`` gives one sample per annotated segment (``media_path`` = the full video,
``start_s``/``end_s`` = the segment); ``level="window"`` gives fixed windows (``window_s``,
``hop_s``) over each video's annotated time, labelled by the class with the largest overlap; a
window whose annotated overlap is below ``min_coverage`` of its length, or that overlaps segments of
different splits, is left out and counted in a notice.
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from textualize.corpora import AdapterBase, listed, parse_time, plural
from textualize.corpora.base import LabelMap, Sample, UnknownLabelError
from textualize.registry import CORPORA

CEXPR_CLASSES = [
    "Fearfully Surprised", "Happily Surprised", "Sadly Surprised", "Disgustedly Surprised",
    "Angrily Surprised", "Sadly Fearful", "Sadly Angry", "Other",
]
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".flv")
FOLD_FILES = {"train": "train.txt", "validation": "val.txt", "test": "test.txt"}
FOLD_ALIASES = {"validation": ("val.txt", "valid.txt", "validation.txt", "dev.txt")}

_TIMESTAMP_COLS = ("begin time - hh:mm:ss.ms", "end time - hh:mm:ss.ms")
_IGNORED = re.compile(r"^(duration.*|tier.*|annotator.*|unnamed: ?\d+|comment.*|notes?)$", re.IGNORECASE)


def _aliases(classes: list[str]) -> dict[str, str]:
    out = {}
    for c in classes:
        for variant in (c, c.replace(" ", "-"), c.replace(" ", "_"), c.replace(" ", "")):
            out[variant.lower()] = c
    return out


def slug(class_name: str) -> str:
    """'Sadly Fearful' -> 'Sadly-Fearful' (the trimmed-clip folder/file naming)."""
    return class_name.replace(" ", "-")


@dataclass
class Segment:
    video: str
    name: str  # <video>_<Class-Name>_<i>
    label: str
    start_s: float
    end_s: float
    row: int  # 1-based data row in the annotation file
    splits: set[str] = field(default_factory=set)
    transcript: str | None = None


@CORPORA.register("c-expr-db")
class CExprDBAdapter(AdapterBase):
    """C-EXPR-DB compound expressions: clip- or window-level samples."""

    name = "c-expr-db"

    def __init__(self) -> None:
        super().__init__()
        self._label_map = LabelMap("c-expr-db", list(CEXPR_CLASSES), _aliases(CEXPR_CLASSES))

    def label_map(self) -> LabelMap:
        return self._label_map

    # ------------------------------------------------------------------ layout
    @staticmethod
    def _first_dir(root: Path, names: tuple[str, ...]) -> Path | None:
        return next((root / n for n in names if (root / n).is_dir()), None)

    def _fold_dir(self, root: Path, fold: int | str | None) -> Path:
        candidates = []
        if fold is not None:
            candidates += [root / "folds" / f"split-{fold}", root / "folds" / str(fold), root / str(fold)]
        candidates.append(root)
        for c in candidates:
            if c.is_dir() and any((c / f).exists() for names in self._fold_names().values() for f in names):
                return c
        raise ValueError(
            f"c-expr-db: no fold files (train.txt / val.txt / test.txt) in any of: {', '.join(str(c) for c in candidates)}"
        )

    @staticmethod
    def _fold_names() -> dict[str, tuple[str, ...]]:
        return {s: FOLD_ALIASES.get(s, (f,)) for s, f in FOLD_FILES.items()}

    def _read_class_ids(self, fold_dir: Path, root: Path) -> dict[str, int]:
        for path in (fold_dir / "class_id.yaml", root / "class_id.yaml"):
            if path.exists():
                import yaml

                try:
                    data = yaml.safe_load(path.read_text(encoding="utf-8"))
                except yaml.YAMLError as e:
                    raise ValueError(f"{path}: not valid YAML ({e})") from None
                if not isinstance(data, dict) or not data:
                    raise ValueError(f"{path}: expected a mapping 'class name: id'")
                ids = {}
                for name, idx in data.items():
                    if not isinstance(idx, int) or isinstance(idx, bool):
                        raise ValueError(f"{path}: class {name!r} has a non-integer id {idx!r}")
                    ids[str(name).strip()] = idx
                if sorted(ids.values()) != list(range(len(ids))):
                    raise ValueError(f"{path}: class ids must be 0..{len(ids) - 1} without gaps, got {sorted(ids.values())}")
                return ids
        self.notice(f"class_id.yaml not found in {fold_dir} or {root}; using the standard order {', '.join(CEXPR_CLASSES)}")
        return {c: i for i, c in enumerate(CEXPR_CLASSES)}

    # ------------------------------------------------------------------ annotations
    def _time_columns(self, path: Path, columns: list[str], time_unit: str) -> tuple[str, str, str]:
        low = {c.strip().lower(): c for c in columns}
        if all(c in low for c in _TIMESTAMP_COLS):
            return low[_TIMESTAMP_COLS[0]], low[_TIMESTAMP_COLS[1]], "timestamp"
        pairs = [
            ("begin time - ss.msec", "end time - ss.msec", "seconds"),
            ("begin time - msec", "end time - msec", "ms"),
            ("begin frame", "end frame", "frames"),
            ("begin_frame", "end_frame", "frames"),
            ("start_frame", "end_frame", "frames"),
            ("begin", "end", time_unit),
            ("start", "end", time_unit),
            ("start_s", "end_s", "seconds"),
        ]
        for b, e, unit in pairs:
            if b in low and e in low:
                return low[b], low[e], unit
        raise ValueError(
            f"{path}: no Begin/End time columns (expected 'Begin Time - hh:mm:ss.ms' and 'End Time - hh:mm:ss.ms', "
            f"or Begin/End in seconds or frames); columns are: {', '.join(columns)}"
        )

    def _read_annotation(
        self, path: Path, video: str, classes: list[str], time_unit: str, fps_of, errors: list[str]
    ) -> list[Segment]:
        import pandas as pd

        try:
            df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
            raise ValueError(f"{path}: not a readable CSV ({type(e).__name__}: {e})") from None
        begin_col, end_col, unit = self._time_columns(path, list(df.columns), time_unit)
        class_of = {c.lower(): c for c in classes}
        class_of.update(_aliases(classes))
        label_col = next((c for c in df.columns if c.strip().lower() in ("label", "class", "expression")), None)
        onehot: dict[str, str] = {}
        unknown_cols = []
        for c in df.columns:
            key = c.strip()
            if c in (begin_col, end_col, label_col) or _IGNORED.match(key) or key.lower().startswith(("begin", "end")):
                continue
            if key.lower() in class_of:
                onehot[c] = class_of[key.lower()]
            elif (df[c].str.strip() != "").any():
                unknown_cols.append(key)
        if unknown_cols:
            raise UnknownLabelError(
                f"{path}: unknown class column(s) {', '.join(map(repr, unknown_cols))}; known classes: {', '.join(classes)}"
            )
        if label_col is None and not onehot:
            raise ValueError(f"{path}: no class columns (one-hot {', '.join(classes)}) and no 'label' column")

        fps = None
        segments: list[Segment] = []
        counters: dict[str, int] = defaultdict(int)
        for i, row in enumerate(df.itertuples(index=False)):
            rec = dict(zip(df.columns, row))
            where = f"{path.name} row {i + 1}"
            # label
            if label_col is not None:
                raw = rec[label_col].strip()
                if raw.lower() not in class_of:
                    raise UnknownLabelError(f"{where}: unknown label {raw!r}; known classes: {', '.join(classes)}")
                on = [class_of[raw.lower()]]
            else:
                on = []
                for c, cls in onehot.items():
                    v = rec[c].strip()
                    if v in ("", "0", "0.0", "False", "false"):
                        continue
                    if v not in ("1", "1.0", "True", "true"):
                        errors.append(f"{where}: column {c!r} holds {v!r} (one-hot cells must be 1 or empty)")
                    on.append(cls)
            if len(on) != 1:
                errors.append(f"{where}: {len(on)} classes marked ({', '.join(on) or 'none'}); exactly one is required")
                continue
            # times
            try:
                if unit == "frames":
                    if fps is None:
                        fps = fps_of(video, path)
                    b, e = (float(rec[begin_col]), float(rec[end_col]))
                    if not (b >= 0 and e >= b and float(b).is_integer() and float(e).is_integer()):
                        raise ValueError(f"frames {rec[begin_col]!r}..{rec[end_col]!r} are not 0 <= begin <= end integers")
                    start, end = b / fps, (e + 1) / fps
                else:
                    start = parse_time(rec[begin_col], f"{where} begin")
                    end = parse_time(rec[end_col], f"{where} end")
                    if unit == "ms":
                        start, end = start / 1000.0, end / 1000.0
            except ValueError as ex:
                errors.append(f"{where}: {ex}" if not str(ex).startswith(where) else str(ex))
                continue
            if end <= start:
                errors.append(f"{where}: end {end:.3f} s <= begin {start:.3f} s")
                continue
            label = on[0]
            name = f"{video}_{slug(label)}_{counters[label]}"
            counters[label] += 1
            segments.append(Segment(video, name, label, start, end, i + 1))
        return segments

    # ------------------------------------------------------------------ folds
    def _read_fold(
        self, path: Path, split: str, videos: dict[str, list[Segment]], by_name: dict[str, Segment],
        class_ids: dict[str, int], errors: list[str],
    ) -> int:
        n = 0
        id_to_class = {v: k for k, v in class_ids.items()}
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = line.split(",", 2)
            entry = parts[0].strip()
            base = entry.rsplit("/", 1)[-1]
            for suffix in VIDEO_SUFFIXES:
                if base.lower().endswith(suffix):
                    base = base[: -len(suffix)]
            where = f"{path} line {lineno}"
            if base in by_name:
                targets = [by_name[base]]
            elif base in videos:
                targets = videos[base]
            else:
                errors.append(f"{where}: {entry!r} is neither an annotated video nor a segment <video>_<Class-Name>_<i>")
                continue
            if len(parts) > 1 and parts[1].strip():
                try:
                    cid = int(parts[1].strip())
                except ValueError:
                    errors.append(f"{where}: class id {parts[1].strip()!r} is not an integer")
                    continue
                if cid not in id_to_class:
                    errors.append(f"{where}: class id {cid} not in class_id.yaml ({class_ids})")
                    continue
                if len(targets) == 1 and targets[0].label != id_to_class[cid]:
                    errors.append(
                        f"{where}: fold says class {cid} ({id_to_class[cid]}) but the annotation of {targets[0].video} "
                        f"row {targets[0].row} says {targets[0].label}"
                    )
                    continue
            for seg in targets:
                if split in seg.splits:
                    errors.append(f"{where}: segment {seg.name} listed twice in {split}")
                seg.splits.add(split)
                if len(parts) > 2 and parts[2].strip() and len(targets) == 1:
                    seg.transcript = parts[2].strip()
                n += 1
        return n

    # ------------------------------------------------------------------ samples
    def samples(
        self,
        root: Path | str,
        fold: int | str | None = 0,
        level: str = "clip",
        window_s: float = 2.0,
        hop_s: float = 1.0,
        min_coverage: float = 0.5,
        time_unit: str = "seconds",
        fps: float | None = None,
        require_media: bool = False,
    ) -> list[Sample]:
        """C-EXPR-DB samples of one fold (see the module docstring for the layout).

        ``level``: "clip" (one per annotated segment) or "window" (``window_s``/``hop_s`` windows).
        ``time_unit``: unit of plain Begin/End columns, "seconds" | "ms" | "frames".
        ``fps``: frame rate for frame-indexed annotations (default: probed from the video).
        ``require_media``: a missing video is an error instead of a warning.
        """
        self.notices = []
        root = Path(root)
        if level not in ("clip", "window"):
            raise ValueError(f"c-expr-db: level must be 'clip' or 'window', not {level!r}")
        if time_unit not in ("seconds", "ms", "frames"):
            raise ValueError(f"c-expr-db: time_unit must be 'seconds', 'ms' or 'frames', not {time_unit!r}")
        if level == "window" and not (window_s > 0 and hop_s > 0 and 0 < min_coverage <= 1):
            raise ValueError(f"c-expr-db: need window_s > 0, hop_s > 0, 0 < min_coverage <= 1 (got {window_s}, {hop_s}, {min_coverage})")
        if not root.is_dir():
            raise ValueError(f"c-expr-db: root {root} is not a folder")
        ann_dir = self._first_dir(root, ("annotation", "annotations"))
        if ann_dir is None:
            raise ValueError(f"c-expr-db: annotation folder {root / 'annotation'} not found")
        video_dir = self._first_dir(root, ("videos", "video")) or root
        fold_dir = self._fold_dir(root, fold)
        class_ids = self._read_class_ids(fold_dir, root)
        classes = [c for c, _ in sorted(class_ids.items(), key=lambda kv: kv[1])]
        self._label_map = LabelMap("c-expr-db", classes, _aliases(classes))

        video_paths: dict[str, Path] = {}
        for p in sorted(video_dir.iterdir()):
            if p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith("."):
                video_paths.setdefault(p.stem, p)
        fps_cache: dict[str, float] = {}

        def fps_of(video: str, ann_path: Path) -> float:
            if fps is not None:
                return float(fps)
            if video not in fps_cache:
                if video not in video_paths:
                    raise ValueError(f"{ann_path}: frame-indexed annotation but no video {video}.* to read its fps (pass fps=...)")
                from textualize.media import probe

                rate = probe(video_paths[video], content_sha256="-").video_fps
                if not rate or not math.isfinite(rate):
                    raise ValueError(f"{video_paths[video]}: no video frame rate; pass fps=...")
                fps_cache[video] = rate
            return fps_cache[video]

        errors: list[str] = []
        videos: dict[str, list[Segment]] = {}
        for ann in sorted(ann_dir.glob("*.csv")):
            videos[ann.stem] = self._read_annotation(ann, ann.stem, classes, time_unit, fps_of, errors)
        if not videos:
            raise ValueError(f"c-expr-db: no annotation CSVs in {ann_dir}")
        by_name = {s.name: s for segs in videos.values() for s in segs}

        found = []
        for split, names in self._fold_names().items():
            path = next((fold_dir / n for n in names if (fold_dir / n).exists()), None)
            if path is None:
                self.notice(f"{split}: {names[0]} not found in {fold_dir}; split left out")
                continue
            found.append(split)
            self._read_fold(path, split, videos, by_name, class_ids, errors)
        if errors:
            raise ValueError(f"c-expr-db: {plural(len(errors), 'problem')} in the annotations/folds:\n  " + "\n  ".join(errors[:30])
                             + (f"\n  … (+{len(errors) - 30} more)" if len(errors) > 30 else ""))
        leaked = [s.name for s in by_name.values() if "train" in s.splits and len(s.splits) > 1]
        if leaked:
            raise ValueError(f"c-expr-db: {plural(len(leaked), 'segment')} in train and in validation/test (leakage): {listed(leaked)}")
        if any("validation" in s.splits and "test" in s.splits for s in by_name.values()):
            self.notice("validation and test share segments (the published folds use test = val)")
        unused = [s.name for s in by_name.values() if not s.splits]
        if unused:
            self.notice(f"{plural(len(unused), 'annotated segment')} in no fold file of {fold_dir.name}, left out: {listed(unused)}")
        no_video = sorted(v for v in videos if v not in video_paths)
        if no_video:
            self.notice(f"{plural(len(no_video), 'annotated video')} not found in {video_dir}: {listed(no_video)}")

        transcripts = self._read_transcripts(root)
        for s in by_name.values():
            if s.transcript is None and s.name in transcripts:
                s.transcript = transcripts[s.name]

        def media(video: str) -> str:
            return str(video_paths.get(video, video_dir / f"{video}.mp4"))

        out: list[Sample] = []
        if level == "clip":
            for seg in by_name.values():
                for split in sorted(seg.splits):
                    out.append(Sample(
                        id=f"{split}_{seg.name}", label=seg.label, split=split, media_path=media(seg.video),
                        start_s=seg.start_s, end_s=seg.end_s, transcript=seg.transcript,
                        meta={"video": seg.video, "segment": seg.name, "annotation_row": seg.row,
                              "class_id": class_ids[seg.label], "fold": fold_dir.name, "level": "clip"},
                    ))
        else:
            out = self._windows(videos, media, class_ids, window_s, hop_s, min_coverage, fold_dir.name)
        return self.finish(out, self._label_map, require_media=require_media)

    @staticmethod
    def _read_transcripts(root: Path) -> dict[str, str]:
        path = root / "clips_transcription.csv"
        if not path.exists():
            return {}
        out = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            if "," in line:
                key, text = line.split(",", 1)
                out[key.strip().rsplit("/", 1)[-1]] = text.strip().strip('"')
        return out

    def _windows(self, videos, media, class_ids, window_s, hop_s, min_coverage, fold_name) -> list[Sample]:
        out: list[Sample] = []
        n_low, n_straddle, short_videos = 0, 0, []
        for video, segs in videos.items():
            segs = [s for s in segs if s.splits]
            if not segs:
                continue
            span_start = min(s.start_s for s in segs)
            span_end = max(s.end_s for s in segs)
            if span_end - span_start < window_s:
                short_videos.append(video)
                continue
            k = 0
            n_windows = int(math.floor((span_end - span_start - window_s) / hop_s + 1e-9)) + 1
            for k in range(n_windows):
                t0 = span_start + k * hop_s
                t1 = t0 + window_s
                overlap: dict[str, float] = defaultdict(float)
                split_sets = []
                for s in segs:
                    ov = min(t1, s.end_s) - max(t0, s.start_s)
                    if ov > 0:
                        overlap[s.label] += ov
                        split_sets.append(s.splits)
                covered = sum(overlap.values())
                if covered < min_coverage * window_s:
                    n_low += 1
                    continue
                common = set.intersection(*split_sets)
                if not common:
                    n_straddle += 1
                    continue
                label = max(overlap.items(), key=lambda kv: (kv[1], -class_ids[kv[0]]))[0]
                for split in sorted(common):
                    out.append(Sample(
                        id=f"{split}_{video}_w{int(round(t0 * 1000)):08d}", label=label, split=split,
                        media_path=media(video), start_s=round(t0, 6), end_s=round(t1, 6),
                        meta={"video": video, "window_index": k, "coverage": round(covered / window_s, 4),
                              "overlap_s": {c: round(v, 4) for c, v in overlap.items()},
                              "class_id": class_ids[label], "fold": fold_name, "level": "window"},
                    ))
        if n_low:
            self.notice(f"{plural(n_low, 'window')} with less than {min_coverage:.0%} annotated time left out")
        if n_straddle:
            self.notice(f"{plural(n_straddle, 'window')} overlapping segments of different splits left out (no leakage)")
        if short_videos:
            self.notice(f"{plural(len(short_videos), 'video')} whose annotated span is shorter than window_s={window_s} s give no window: {listed(short_videos)}")
        return out
