"""The one prediction-file format every training run writes and every report reads.

``RUN/predictions/<split>.jsonl`` holds one JSON object per sample::

    {"id": "dia3_utt1", "label": "anger", "prediction": "neutral",
     "probs": {"anger": 0.21, "neutral": 0.55, ...}, "clip": "dia3"}

``clip`` is present when rows are parts (windows, frames) of a longer clip; further keys
(``logits``, ``entropy``, member probabilities, ...) are kept and passed through. ``RUN/run.json``
says what produced the file (approach, model, dataset manifest hash, classes in order, ...).
Both trainers write through :func:`write_predictions` / :func:`write_run_json` and the report
reads through :func:`read_predictions` / :func:`read_run`, so the format lives here only.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

REQUIRED_KEYS = ("id", "label", "prediction")
RUN_FORMAT = "textualize.run/1"


class PredictionFileError(ValueError):
    """A prediction file or run folder that cannot be read as the shared format (says why)."""


@dataclass
class Predictions:
    """One split's predictions as arrays, in file order.

    ``probs`` is ``(n, len(classes))`` in ``classes`` order, or ``None`` when the file carries no
    probabilities. ``clips`` is ``None`` when no row names a clip.
    """

    ids: list[str]
    labels: list[str]
    predictions: list[str]
    classes: list[str]
    probs: np.ndarray | None = None
    clips: list[str] | None = None
    extra: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def y_true(self) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.classes)}
        return np.asarray([index[label] for label in self.labels], dtype=np.int64)

    @property
    def y_pred(self) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.classes)}
        return np.asarray([index[p] for p in self.predictions], dtype=np.int64)

    def subset(self, ids: Sequence[str]) -> "Predictions":
        """The rows of ``ids`` in that order (KeyError names the first missing id)."""
        pos = {i: k for k, i in enumerate(self.ids)}
        missing = [i for i in ids if i not in pos]
        if missing:
            raise PredictionFileError(f"{len(missing)} ids not in these predictions (first: {missing[:3]})")
        rows = [pos[i] for i in ids]
        return Predictions(
            ids=[self.ids[k] for k in rows],
            labels=[self.labels[k] for k in rows],
            predictions=[self.predictions[k] for k in rows],
            classes=list(self.classes),
            probs=None if self.probs is None else self.probs[rows],
            clips=None if self.clips is None else [self.clips[k] for k in rows],
            extra=[self.extra[k] for k in rows] if self.extra else [],
        )


def prediction_rows(
    ids: Sequence[str],
    labels: Sequence[str],
    probs: np.ndarray,
    classes: Sequence[str],
    clips: Sequence[str | None] | None = None,
    extra: Sequence[Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Rows of the shared format from class probabilities (prediction = arg max)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape != (len(ids), len(classes)):
        raise ValueError(f"probs must be (n={len(ids)}, classes={len(classes)}), got {probs.shape}")
    if len(labels) != len(ids):
        raise ValueError(f"{len(ids)} ids but {len(labels)} labels")
    rows = []
    for k, sample_id in enumerate(ids):
        p = probs[k]
        row: dict[str, Any] = {
            "id": str(sample_id),
            "label": str(labels[k]),
            "prediction": str(classes[int(np.argmax(p))]),
            "probs": {c: round(float(v), 6) for c, v in zip(classes, p)},
        }
        if clips is not None and clips[k] is not None:
            row["clip"] = str(clips[k])
        if extra is not None:
            row.update({key: value for key, value in extra[k].items() if key not in row})
        rows.append(row)
    return rows


def write_predictions(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write rows atomically (a reader never sees half a file)."""
    from textualize.manifest import atomic_write_bytes, json_bytes

    lines = []
    for row in rows:
        for key in REQUIRED_KEYS:
            if key not in row:
                raise ValueError(f"prediction row without {key!r}: {dict(row)}")
        # json_bytes: ids from undecodable file names (surrogate escapes) survive as \udcXX
        lines.append(json_bytes(dict(row), indent=None).rstrip(b"\n"))
    path = Path(path)
    atomic_write_bytes(path, b"\n".join(lines) + (b"\n" if lines else b""))
    return path


def read_predictions(path: str | Path, classes: Sequence[str] | None = None) -> Predictions:
    """Read one prediction file; ``classes`` (e.g. from run.json) fixes the column order.

    Errors name the file, the line and what is wrong: a missing key, a label or prediction
    outside the class list, probabilities over other classes or not summing to one.
    """
    path = Path(path)
    if not path.exists():
        raise PredictionFileError(f"{path}: no such prediction file")
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise PredictionFileError(f"{path}:{n}: not JSON ({e})") from None
            missing = [k for k in REQUIRED_KEYS if k not in row]
            if missing:
                raise PredictionFileError(f"{path}:{n}: missing {', '.join(missing)}")
            rows.append(row)
    if not rows:
        raise PredictionFileError(f"{path}: no predictions")
    if classes is None:
        first = rows[0].get("probs")
        classes = list(first) if isinstance(first, dict) else sorted({r["label"] for r in rows} | {r["prediction"] for r in rows})
    classes = [str(c) for c in classes]
    known = set(classes)
    has_probs = all(isinstance(r.get("probs"), dict) for r in rows)
    probs = np.zeros((len(rows), len(classes))) if has_probs else None
    seen: set[str] = set()
    for n, row in enumerate(rows):
        sid = str(row["id"])
        if sid in seen:
            raise PredictionFileError(f"{path}: id {sid!r} appears twice")
        seen.add(sid)
        for key in ("label", "prediction"):
            if row[key] not in known:
                raise PredictionFileError(f"{path}: row {sid!r}: {key} {row[key]!r} is not one of the classes {classes}")
        if probs is not None:
            p = row["probs"]
            if set(p) != known:
                raise PredictionFileError(
                    f"{path}: row {sid!r}: probabilities over {sorted(p)} but the classes are {sorted(known)}"
                )
            probs[n] = [float(p[c]) for c in classes]
            total = probs[n].sum()
            if not math.isfinite(total) or abs(total - 1.0) > 1e-3:
                raise PredictionFileError(f"{path}: row {sid!r}: probabilities sum to {total:.4f}, not 1")
    clips = [str(r["clip"]) if r.get("clip") is not None else None for r in rows]
    if all(c is None for c in clips):
        clips = None
    elif any(c is None for c in clips):
        raise PredictionFileError(f"{path}: some rows name a clip and some do not")
    extra = [{k: v for k, v in r.items() if k not in (*REQUIRED_KEYS, "probs", "clip")} for r in rows]
    return Predictions(
        ids=[str(r["id"]) for r in rows],
        labels=[str(r["label"]) for r in rows],
        predictions=[str(r["prediction"]) for r in rows],
        classes=classes,
        probs=probs,
        clips=clips,
        extra=extra if any(extra) else [],
    )


# ---------------------------------------------------------------- run.json


def file_sha256(path: str | Path) -> str | None:
    path = Path(path)
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git_commit(start: str | Path | None = None) -> str | None:
    """The commit of the checkout this code runs from (None outside git), '+dirty' if modified."""
    where = Path(start) if start else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10)
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def dataset_provenance(dataset_dir: str | Path) -> dict[str, Any]:
    """What a run needs to say about its dataset: path, manifest hash, template, modalities."""
    dataset_dir = Path(dataset_dir)
    manifest_path = dataset_dir / "manifest.json"
    info: dict[str, Any] = {"path": str(dataset_dir), "manifest_sha256": file_sha256(manifest_path)}
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        info.update(
            name=manifest.get("dataset"),
            template=manifest.get("template"),
            modalities=manifest.get("modalities"),
            converters_hash=(manifest.get("converters") or {}).get("hash"),
            speaker_normalisation=(manifest.get("config") or {}).get("speaker_normalisation"),
        )
    return info


def write_run_json(run_dir: str | Path, record: Mapping[str, Any]) -> Path:
    """``RUN/run.json``: the record plus format, date and git commit (atomic).

    Expected keys (both approaches): ``approach`` ("text" | "feature" | "hybrid"), ``model``,
    ``method``, ``dataset`` (:func:`dataset_provenance`), ``classes`` (in order), ``seed``,
    ``metrics`` ({split: {...}}), ``config`` (the resolved arguments), ``timings``.
    """
    from textualize.manifest import atomic_write_json

    for key in ("approach", "classes"):
        if key not in record:
            raise ValueError(f"run.json needs {key!r}")
    full = {
        "format": RUN_FORMAT,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        **_jsonable(dict(record)),
    }
    path = Path(run_dir) / "run.json"
    atomic_write_json(path, full)
    return path


@dataclass
class Run:
    """A training run on disk: its run.json and its prediction files by split."""

    path: Path
    info: dict[str, Any]
    splits: dict[str, Path]

    @property
    def name(self) -> str:
        return self.info.get("name") or self.path.name

    @property
    def classes(self) -> list[str]:
        return list(self.info["classes"])

    def predictions(self, split: str = "test") -> Predictions:
        if split not in self.splits:
            raise PredictionFileError(f"run {self.path} has no predictions for split {split!r} (has: {sorted(self.splits)})")
        return read_predictions(self.splits[split], self.classes)


def read_run(run_dir: str | Path) -> Run:
    run_dir = Path(run_dir)
    info_path = run_dir / "run.json"
    if not info_path.exists():
        raise PredictionFileError(f"{run_dir}: no run.json (not a training run folder?)")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if "classes" not in info:
        raise PredictionFileError(f"{info_path}: no class list")
    pred_dir = run_dir / "predictions"
    splits = {p.stem: p for p in sorted(pred_dir.glob("*.jsonl"))} if pred_dir.exists() else {}
    return Run(run_dir, info, splits)


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, Path):
        return str(x)
    if x is None or isinstance(x, (str, int, bool)):
        return x
    return str(x)
