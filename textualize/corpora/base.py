"""What every corpus adapter yields: ``Sample`` rows with one shared label map per dataset.

Adapters are recipes in the lhotse sense: read a corpus' official layout, yield samples, and end
with ``validate_samples`` so that unknown labels, duplicated ids, missing media and empty
transcripts are reported clearly (never silently dropped).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Protocol

SPLITS = ("train", "validation", "test")


@dataclass
class LabelMap:
    """One label map per dataset, shared by the text models and the feature baseline."""

    dataset: str
    classes: list[str]
    aliases: dict[str, str] = field(default_factory=dict)  # raw corpus label -> class name

    def canonical(self, raw: str) -> str:
        """Class name for a raw corpus label; ``UnknownLabelError`` for anything else."""
        key = str(raw).strip()
        if key in self.classes:
            return key
        for candidate in (key, key.lower()):
            if candidate in self.aliases:
                return self.aliases[candidate]
        raise UnknownLabelError(
            f"{self.dataset}: unknown label {raw!r}; known classes: {', '.join(self.classes)}"
        )

    def index(self, name: str) -> int:
        return self.classes.index(name)

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "classes": list(self.classes), "aliases": dict(self.aliases)}

    @classmethod
    def from_dict(cls, d: dict) -> "LabelMap":
        return cls(d["dataset"], list(d["classes"]), dict(d.get("aliases", {})))


class UnknownLabelError(ValueError):
    pass


@dataclass
class Sample:
    """One training/evaluation unit (an utterance, a clip, or a frame window of a clip).

    ``media_path`` is None for text-only rows; ``precomputed`` holds cue records already known
    (``"face"``: FacialCues, ``"prosody"``: ProsodyCues, ``"transcript"``: Transcript) from a cue
    table, so extraction is skipped for them. ``context`` is the dialogue history as
    (speaker, utterance) pairs, oldest first.
    """

    id: str
    label: str
    split: str
    media_path: str | None = None
    start_s: float | None = None
    end_s: float | None = None
    speaker: str | None = None
    transcript: str | None = None
    context: list[tuple[str, str]] = field(default_factory=list)
    precomputed: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class ValidationReport:
    """Problems found in an adapter's output. ``errors`` stop a build; ``warnings`` are kept
    samples with something to know (e.g. empty transcript -> an explicit marker in the prompt)."""

    errors: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> label -> n

    @property
    def ok(self) -> bool:
        return not self.errors


class CorpusAdapter(Protocol):
    """Registered in ``textualize.registry.CORPORA`` by name (``--dataset NAME``)."""

    name: str

    def label_map(self) -> LabelMap: ...

    def samples(self, root: Path) -> Iterable[Sample]:
        """Every sample of the corpus at ``root``; raise ``ValueError`` naming the missing file
        when the layout is wrong."""


def validate_samples(samples: list[Sample], label_map: LabelMap, require_media: bool = False) -> ValidationReport:
    """Check a corpus' samples before anything expensive runs."""
    report = ValidationReport()
    ids = Counter(s.id for s in samples)
    for dup, n in sorted(ids.items()):
        if n > 1:
            report.errors.append({"id": dup, "problem": "duplicated_id", "detail": f"{n} samples share this id"})
    for s in samples:
        if s.label not in label_map.classes:
            report.errors.append({"id": s.id, "problem": "unknown_label", "detail": f"{s.label!r} not in {label_map.classes}"})
        if s.split not in SPLITS:
            report.errors.append({"id": s.id, "problem": "unknown_split", "detail": f"{s.split!r} not in {SPLITS}"})
        if s.media_path is not None and not Path(s.media_path).exists():
            (report.errors if require_media else report.warnings).append(
                {"id": s.id, "problem": "missing_media", "detail": s.media_path}
            )
        if s.transcript is not None and not s.transcript.strip():
            report.warnings.append({"id": s.id, "problem": "empty_transcript", "detail": "rendered as an explicit marker"})
        for bound in (s.start_s, s.end_s):
            if bound is not None and (not isinstance(bound, (int, float)) or math.isnan(bound)):
                report.errors.append({"id": s.id, "problem": "bad_time", "detail": f"start/end {s.start_s}/{s.end_s}"})
                break
        if s.start_s is not None and s.end_s is not None and s.end_s <= s.start_s:
            report.errors.append({"id": s.id, "problem": "bad_time", "detail": f"end {s.end_s} <= start {s.start_s}"})
        report.counts.setdefault(s.split, Counter())[s.label] += 1
    report.counts = {k: dict(v) for k, v in report.counts.items()}
    return report
