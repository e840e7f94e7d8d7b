"""A generic manifest: any corpus described by a CSV or JSONL table (``--dataset manifest``).

Columns (JSONL: keys): ``path``, ``label``, ``split`` (required); ``id``, ``speaker``,
``transcript``, ``start``, ``end`` (optional); anything else is kept in ``Sample.meta``.

* ``path``: relative paths resolve against the manifest's folder; absolute paths are kept.
* ``split``: "train"; "dev"/"val"/"valid"/"validation" -> "validation"; "test" (any case).
* ``start``/``end``: seconds or ``hh:mm:ss.ms``; empty = the whole file.
* ``id``: default = the path (relative to the manifest, without suffix) made id-safe, plus the
  start time in ms when ``start`` is given.
* label map: the ``classes`` option (list or "a,b,c"), else ``labels.txt`` beside the manifest
  (one class per line, in order), else the sorted unique labels of the train split. A label of
  another split outside that list is an ``UnknownLabelError`` naming it and the known classes.

``root`` is the manifest file itself, or a folder holding ``manifest.csv`` / ``manifest.jsonl``.

``write_demo_manifest`` writes the manifest of the embedded CREMA-D demo corpus (12 real clips);
the ``crema-d-demo`` adapter loads it without any argument (the README's main command).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Sequence

from textualize.corpora import AdapterBase, canonical_split, label_map_from_data, map_labels, parse_time, safe_id
from textualize.corpora.base import LabelMap, Sample
from textualize.registry import CORPORA

REQUIRED = ("path", "label", "split")
KNOWN = REQUIRED + ("id", "speaker", "transcript", "start", "end")
MANIFEST_NAMES = ("manifest.csv", "manifest.jsonl", "manifest.json")


def _is_blank(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


def read_table(path: Path) -> list[dict]:
    """Rows of a CSV or JSONL manifest as dicts (CSV cells as strings; empty cells -> None)."""
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        rows = []
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path} line {lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise ValueError(f"{path} line {lineno}: expected a JSON object, got {type(rec).__name__}")
            rows.append(rec)
        return rows
    import pandas as pd

    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a readable UTF-8 CSV ({type(e).__name__}: {e})") from None
    df.columns = [str(c).strip() for c in df.columns]
    return [{k: (None if v == "" else v) for k, v in rec.items()} for rec in df.to_dict("records")]


def find_manifest(root: Path) -> Path:
    root = Path(root)
    if root.is_file():
        return root
    if root.is_dir():
        for name in MANIFEST_NAMES:
            if (root / name).exists():
                return root / name
        raise ValueError(f"manifest: {root} holds none of {', '.join(MANIFEST_NAMES)}")
    raise ValueError(f"manifest: {root} does not exist")


def table_rows_to_samples(
    adapter: AdapterBase,
    path: Path,
    rows: list[dict],
    required: Sequence[str],
    classes: str | Sequence[str] | None,
    id_from_path: bool,
) -> tuple[list[Sample], LabelMap, list[dict]]:
    """Shared by ``manifest`` and ``cue-table``: columns check, splits, ids, times, label map.
    Returns samples (media_path/time/ids/labels set), the label map and the raw rows (same order)."""
    if not rows:
        raise ValueError(f"{path}: no rows")
    columns = set().union(*(r.keys() for r in rows))
    missing = [c for c in required if c not in columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (has: {', '.join(sorted(columns))})")
    base = path.parent
    splits, raw_labels, ids, samples = [], [], [], []
    errors: list[str] = []
    for i, rec in enumerate(rows):
        where = f"{path.name} row {i + 1}"
        for c in ("label", "split"):
            if _is_blank(rec.get(c)):
                errors.append(f"{where}: empty {c}")
        split = canonical_split(rec.get("split") or "")
        media = rec.get("path") if "path" in rec else rec.get("media_path")
        media_path = None
        if not _is_blank(media):
            p = Path(str(media).strip()).expanduser()
            media_path = str(p if p.is_absolute() else base / p)
        start = end = None
        try:
            if not _is_blank(rec.get("start")):
                start = parse_time(rec["start"], f"{where} start")
            if not _is_blank(rec.get("end")):
                end = parse_time(rec["end"], f"{where} end")
        except ValueError as e:
            errors.append(str(e))
        if not _is_blank(rec.get("id")):
            sid = str(rec["id"]).strip()
            if sid != safe_id(sid):
                errors.append(f"{where}: id {sid!r} has characters unsafe for file names (use letters, digits, _ . + -)")
        elif id_from_path and media_path is not None:
            rel = os.path.relpath(media_path, base) if not Path(str(media)).is_absolute() else str(media)
            sid = safe_id(os.path.splitext(rel)[0])
            if start is not None:
                sid += f"_{int(round(start * 1000))}"
        else:
            errors.append(f"{where}: no id")
            sid = f"row{i + 1}"
        transcript = rec.get("transcript")
        if "transcript" in columns and _is_blank(transcript):
            # a blank cell beside media means "no gold transcript: use ASR"; without media it is
            # an empty utterance, kept and reported
            transcript = None if rec.get("path") and not _is_blank(rec.get("path")) else ""
        elif transcript is not None:
            transcript = str(transcript)
        speaker = rec.get("speaker")
        meta = {k: v for k, v in rec.items() if k not in KNOWN and k != "media_path" and not _is_blank(v)}
        splits.append(split)
        raw_labels.append("" if _is_blank(rec.get("label")) else str(rec["label"]).strip())
        ids.append(sid)
        samples.append(Sample(
            id=sid, label="", split=split, media_path=media_path, start_s=start, end_s=end,
            speaker=None if _is_blank(speaker) else str(speaker), transcript=transcript, meta=meta,
        ))
    if errors:
        raise ValueError(f"{path}: {len(errors)} bad row(s):\n  " + "\n  ".join(errors[:30]))
    label_map, source = label_map_from_data(adapter.name, raw_labels, splits, classes, base / "labels.txt")
    adapter.notice(f"label map ({len(label_map.classes)} classes: {', '.join(label_map.classes)}) from {source}")
    labels = map_labels(raw_labels, ids, label_map, str(path))
    for s, lab in zip(samples, labels):
        s.label = lab
    return samples, label_map, rows


@CORPORA.register("manifest")
class ManifestAdapter(AdapterBase):
    """Any corpus listed in a CSV/JSONL manifest."""

    name = "manifest"

    def __init__(self, classes: str | Sequence[str] | None = None) -> None:
        super().__init__()
        self._classes = classes
        self._label_map: LabelMap | None = None

    def label_map(self) -> LabelMap:
        if self._label_map is None:
            if self._classes is None:
                raise ValueError("manifest: the label map comes from the data; call samples(root) first or pass classes=")
            self._label_map, _ = label_map_from_data(self.name, [], [], self._classes)
        return self._label_map

    def samples(
        self, root: Path | str, classes: str | Sequence[str] | None = None, require_media: bool = False
    ) -> list[Sample]:
        """Samples of the manifest at ``root``; ``require_media`` makes a missing file an error."""
        self.notices = []
        path = find_manifest(Path(root))
        rows = read_table(path)
        samples, self._label_map, _ = table_rows_to_samples(
            self, path, rows, REQUIRED, classes if classes is not None else self._classes, id_from_path=True
        )
        return self.finish(samples, self._label_map, require_media=require_media)


# ---------------------------------------------------------------- the embedded CREMA-D demo


def demo_split(path: Path) -> str:
    """Speaker-independent split of the 12 demo clips: speaker 1001 (6 videos, one per emotion)
    trains; speaker 1002's clips alternate validation/test in emotion order (ANG val, DIS test…),
    so no speaker is in two splits."""
    speaker, _, emotion = path.stem.split("_")[:3]
    if speaker == "1001":
        return "train"
    order = ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]
    return "validation" if order.index(emotion) % 2 == 0 else "test"


def write_demo_manifest(out_path: Path | str | None = None) -> Path:
    """Write ``manifest.csv`` (+ ``labels.txt``) for the CREMA-D demo clips; returns its path.

    Default location: inside the demo corpus folder, with paths relative to it.
    """
    from textualize.demo import CREMA_D_EMOTIONS, CREMA_D_SENTENCES, crema_d_label, fetch_demo_corpus
    from textualize.manifest import atomic_write_text

    corpus = fetch_demo_corpus()
    out = Path(out_path) if out_path is not None else corpus / "manifest.csv"
    clips = sorted(list(corpus.glob("1001_*.flv")) + list(corpus.glob("1002_*.mp3")))
    if len(clips) != 12:
        raise ValueError(f"demo corpus at {corpus}: expected 12 clips, found {len(clips)}")
    rows = []
    for clip in clips:
        rel = os.path.relpath(clip, out.parent)
        sentence = CREMA_D_SENTENCES.get(clip.stem.split("_")[1], "")
        rows.append({
            "id": clip.stem, "path": rel, "label": crema_d_label(clip), "split": demo_split(clip),
            "speaker": clip.stem.split("_")[0], "sentence": sentence,
        })
    import pandas as pd

    atomic_write_text(out, pd.DataFrame(rows).to_csv(index=False))
    atomic_write_text(out.parent / "labels.txt", "\n".join(sorted(CREMA_D_EMOTIONS.values())) + "\n")
    return out


@CORPORA.register("crema-d-demo")
class CremaDDemoAdapter(ManifestAdapter):
    """The 12 embedded CREMA-D clips via ``write_demo_manifest`` (no root needed)."""

    name = "crema-d-demo"

    def samples(self, root: Path | str | None = None, classes=None, require_media: bool = True) -> list[Sample]:
        path = write_demo_manifest(None if root in (None, "", "demo") else Path(root) / "manifest.csv")
        return super().samples(path, classes=classes, require_media=require_media)
