"""Corpus adapters: a corpus' official layout -> validated ``Sample`` rows (``--dataset NAME``).

Every adapter is a class registered in ``textualize.registry.CORPORA`` (``meld``, ``c-expr-db``,
``manifest``, ``crema-d-demo``, ``cue-table``); use it as::

    adapter = CORPORA.get("meld")()
    samples = adapter.samples(root)          # raises ValueError / UnknownLabelError on bad input
    adapter.label_map(); adapter.notices; adapter.report

``samples()`` ends with ``finish``: ``validate_samples`` errors (duplicated ids, unknown labels or
splits, malformed times, missing media when required) raise ``CorpusValidationError`` listing the
offending ids; warnings (empty transcripts, missing media) and anything else worth knowing (a split
left out, text-only rows) become human-readable lines in ``adapter.notices``. Nothing is dropped
without a notice that counts and names it.

This module holds the helpers the adapters share; it has no import-time side effects.
"""
from __future__ import annotations

import logging
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

from textualize.corpora.base import (
    SPLITS,
    LabelMap,
    Sample,
    UnknownLabelError,
    ValidationReport,
    validate_samples,
)

log = logging.getLogger("textualize.corpora")

SPLIT_ALIASES: dict[str, str] = {
    "train": "train", "training": "train", "trn": "train",
    "validation": "validation", "valid": "validation", "val": "validation", "dev": "validation",
    "development": "validation",
    "test": "test", "testing": "test", "tst": "test", "eval": "test", "evaluation": "test",
}

_TIME_RE = re.compile(r"^\s*(?:(\d+):)?(\d+):(\d+(?:[.,]\d*)?)\s*$")
_MAX_LISTED = 10


class CorpusValidationError(ValueError):
    """Adapter output failed ``validate_samples``; ``report`` holds every problem."""

    def __init__(self, message: str, report: ValidationReport):
        super().__init__(message)
        self.report = report


def canonical_split(raw: object) -> str:
    """'dev'/'val'/'valid' -> 'validation' etc.; unknown names are returned stripped (the
    validation step then reports them with the sample ids)."""
    key = str(raw).strip()
    return SPLIT_ALIASES.get(key.lower(), key)


def parse_time(value: object, what: str = "time") -> float:
    """Seconds from '00:16:16,059' / '00:00:02.970' / '1:02.5' / '12.5' / 12.5.

    Raises ``ValueError`` (message names ``what`` and the value) for anything else, negative
    times included.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip()
        m = _TIME_RE.match(text)
        if m:
            h, mnt, s = m.groups()
            seconds = int(h or 0) * 3600 + int(mnt) * 60 + float(s.replace(",", "."))
        else:
            try:
                seconds = float(text)
            except ValueError:
                raise ValueError(f"{what}: malformed time {value!r} (expected seconds or hh:mm:ss.ms)") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{what}: malformed time {value!r} (must be a finite, non-negative number of seconds)")
    return seconds


def safe_id(text: str) -> str:
    """An id usable as a file name and a dataset key: no slashes or spaces."""
    out = re.sub(r"[^A-Za-z0-9_.+-]+", "_", str(text)).strip("_.")
    return out or "sample"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def listed(items: Sequence[object], limit: int = _MAX_LISTED) -> str:
    items = list(items)
    head = ", ".join(str(x) for x in items[:limit])
    return head + (f", … (+{len(items) - limit} more)" if len(items) > limit else "")


def map_labels(raw_labels: Sequence[object], ids: Sequence[str], label_map: LabelMap, where: str) -> list[str]:
    """Canonical class of every raw label; one ``UnknownLabelError`` naming every unknown label
    (with counts and example ids) and the known classes."""
    cache: dict[str, str] = {}
    unknown: dict[str, list[str]] = defaultdict(list)
    out: list[str] = []
    for raw, sid in zip(raw_labels, ids):
        key = "" if raw is None or (isinstance(raw, float) and math.isnan(raw)) else str(raw)
        if key not in cache:
            try:
                cache[key] = label_map.canonical(key)
            except UnknownLabelError:
                cache[key] = ""
        if not cache[key]:
            unknown[key].append(sid)
        out.append(cache[key])
    if unknown:
        parts = [f"{k!r} ({plural(len(v), 'sample')}, e.g. {listed(v, 3)})" for k, v in sorted(unknown.items())]
        raise UnknownLabelError(
            f"{where}: unknown label{'s' if len(unknown) > 1 else ''} {'; '.join(parts)}; "
            f"known classes of {label_map.dataset}: {', '.join(label_map.classes)}"
        )
    return out


def label_map_from_data(
    dataset: str,
    labels: Iterable[str],
    splits: Iterable[str],
    classes: str | Sequence[str] | None = None,
    labels_file: Path | None = None,
) -> tuple[LabelMap, str]:
    """Label map of a generic table: ``classes`` option > ``labels.txt`` > sorted unique labels of
    the train split. Returns the map and a sentence saying where it came from."""
    if classes is not None:
        names = [c.strip() for c in (classes.split(",") if isinstance(classes, str) else classes)]
        names = [c for c in names if c]
        source = "the classes option"
    elif labels_file is not None and labels_file.exists():
        names = [ln.strip() for ln in labels_file.read_text(encoding="utf-8").splitlines()]
        names = [n for n in names if n and not n.startswith("#")]
        source = str(labels_file)
    else:
        labels, splits = list(labels), list(splits)
        train = sorted({str(lab).strip() for lab, sp in zip(labels, splits) if sp == "train"})
        if not train:
            raise ValueError(
                f"{dataset}: cannot derive the label map: no train rows; pass classes=... or put a labels.txt beside the table"
            )
        names = train
        source = "the sorted unique labels of the train split"
    if len(set(names)) != len(names):
        dups = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"{dataset}: duplicated class names in {source}: {', '.join(dups)}")
    if not names:
        raise ValueError(f"{dataset}: empty class list from {source}")
    return LabelMap(dataset, names), source


class AdapterBase:
    """Shared state of an adapter run: ``notices`` (what a user must know), ``report``."""

    name = ""

    def __init__(self) -> None:
        self.notices: list[str] = []
        self.report: ValidationReport | None = None

    def notice(self, message: str) -> None:
        self.notices.append(message)
        log.warning("%s: %s", self.name, message)

    def finish(self, samples: list[Sample], label_map: LabelMap, require_media: bool = False) -> list[Sample]:
        """Validate; raise ``CorpusValidationError`` on errors, turn warnings into notices."""
        report = validate_samples(samples, label_map, require_media=require_media)
        self.report = report
        if report.errors:
            by_problem: dict[str, list[str]] = defaultdict(list)
            for e in report.errors:
                by_problem[e["problem"]].append(f"{e['id']} ({e['detail']})" if e["problem"] != "duplicated_id" else e["id"])
            lines = [f"{problem}: {listed(items)}" for problem, items in sorted(by_problem.items())]
            raise CorpusValidationError(
                f"{self.name}: {plural(len(report.errors), 'problem')} in the corpus:\n  " + "\n  ".join(lines), report
            )
        warned: dict[str, list[str]] = defaultdict(list)
        for w in report.warnings:
            warned[w["problem"]].append(w["id"])
        if warned.get("empty_transcript"):
            ids = warned["empty_transcript"]
            self.notice(f"{plural(len(ids), 'sample')} with an empty transcript (kept, rendered as an explicit marker): {listed(ids)}")
        if warned.get("missing_media"):
            ids = warned["missing_media"]
            self.notice(
                f"{plural(len(ids), 'sample')} whose media file does not exist (kept; pass require_media=True to make this an error): {listed(ids)}"
            )
        for problem, ids in warned.items():
            if problem not in ("empty_transcript", "missing_media"):
                self.notice(f"{problem}: {listed(ids)}")
        return samples


__all__ = [
    "SPLITS", "SPLIT_ALIASES", "AdapterBase", "CorpusValidationError", "canonical_split", "parse_time",
    "safe_id", "map_labels", "label_map_from_data",
]
