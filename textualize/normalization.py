"""Speaker- and dataset-level normalisation statistics for turning numeric cues into level words.

"Pitch 210 Hz" means little to a language model; "high pitch for this speaker" does. Statistics
hold, per measure, quantile edges (20/40/60/80th percentiles by default, i.e. five bins
"very low" .. "very high"), mean and SD, at dataset level and per speaker. A speaker with fewer
than ``min_per_speaker`` finite values of a measure falls back to the dataset level. Measures are
any numeric cue: prosody, AU means, etc.

The dataset level is always fitted on the TRAINING split. Per-speaker statistics come either from
the training split too (``fit_norm_stats``) or, for speaker normalisation
(``fit_speaker_norm_stats``, build-dataset's ``--speaker-norm``), from each speaker's own clips
in every split: no labels are read, so a test speaker is described relative to their own range
the way speaker-normalised features are (standard practice in speech emotion recognition), and
nothing about the test labels leaks. ``NormStats.speaker_scope`` records which.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

DEFAULT_QUANTILES: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
LEVEL_WORDS: dict[int, tuple[str, ...]] = {
    7: ("extremely low", "very low", "low", "moderate", "high", "very high", "extremely high"),
    5: ("very low", "low", "moderate", "high", "very high"),
    3: ("low", "moderate", "high"),
}
FORMAT = "textualize.NormStats/1"


@dataclass
class MeasureStats:
    """Distribution summary of one measure in one group (dataset or speaker)."""

    count: int
    edges: list[float] = field(default_factory=list)  # quantile edges, ascending; [] if count == 0
    mean: float = math.nan
    sd: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        fin = lambda v: v if math.isfinite(v) else None  # noqa: E731 - JSON has no NaN
        return {"count": self.count, "edges": list(self.edges), "mean": fin(self.mean), "sd": fin(self.sd)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "MeasureStats":
        nan = lambda v: math.nan if v is None else float(v)  # noqa: E731
        return cls(int(d["count"]), [float(e) for e in d["edges"]], nan(d.get("mean")), nan(d.get("sd")))


def _summarise(values: list[float], quantiles: tuple[float, ...]) -> MeasureStats:
    if not values:
        return MeasureStats(count=0)
    v = np.asarray(values, dtype=np.float64)
    edges = np.quantile(v, quantiles).tolist()
    return MeasureStats(count=int(v.size), edges=[float(e) for e in edges], mean=float(v.mean()),
                        sd=float(v.std(ddof=1)) if v.size > 1 else math.nan)


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, (str, bytes)):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


@dataclass
class NormStats:
    """Quantile edges, means and SDs per measure, for the dataset and for each well-sampled speaker."""

    quantiles: tuple[float, ...] = DEFAULT_QUANTILES
    min_per_speaker: int = 10
    dataset: dict[str, MeasureStats] = field(default_factory=dict)
    speakers: dict[str, dict[str, MeasureStats]] = field(default_factory=dict)
    speaker_scope: str = "train"  # where per-speaker statistics come from: "train", "all splits", "none"

    @property
    def n_bins(self) -> int:
        return len(self.quantiles) + 1

    @property
    def measures(self) -> list[str]:
        return sorted(self.dataset)

    def stats(self, measure: str, speaker: str | None = None) -> MeasureStats | None:
        """The speaker's stats when that speaker had enough training samples, else the dataset's."""
        if speaker is not None:
            per = self.speakers.get(str(speaker), {}).get(measure)
            if per is not None and per.edges:
                return per
        st = self.dataset.get(measure)
        return st if st is not None and st.edges else None

    def bin(self, measure: str, value: Any, speaker: str | None = None) -> int | None:
        """Bin index 0 .. n_bins-1; None for NaN/None values or a measure without statistics.

        A value equal to a run of tied edges (discrete cues such as pause counts) gets the middle
        bin of that run rather than the top or bottom one, so bins stay monotonic in the value.
        """
        v = _finite(value)
        st = self.stats(measure, speaker)
        if v is None or st is None:
            return None
        edges = np.asarray(st.edges)
        lo = int(np.searchsorted(edges, v, side="left"))
        hi = int(np.searchsorted(edges, v, side="right"))
        return (lo + hi) // 2

    def level_word(self, measure: str, value: Any, speaker: str | None = None) -> str | None:
        """'extremely low' .. 'extremely high' (seven bins), 'very low' .. 'very high' (five) or
        'low'/'moderate'/'high' (three)."""
        b = self.bin(measure, value, speaker)
        if b is None:
            return None
        words = LEVEL_WORDS.get(self.n_bins)
        if words is None:
            raise ValueError(f"no level words for {self.n_bins} bins; use bin() or 3/5/7 bins")
        return words[b]

    def zscore(self, measure: str, value: Any, speaker: str | None = None) -> float | None:
        """(value - mean) / SD against the speaker (if well sampled) or dataset; None if undefined."""
        v = _finite(value)
        st = self.stats(measure, speaker)
        if v is None or st is None or not (math.isfinite(st.sd) and st.sd > 0):
            return None
        return (v - st.mean) / st.sd

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "quantiles": list(self.quantiles),
            "min_per_speaker": self.min_per_speaker,
            "speaker_scope": self.speaker_scope,
            "dataset": {m: s.to_dict() for m, s in self.dataset.items()},
            "speakers": {sp: {m: s.to_dict() for m, s in per.items()} for sp, per in self.speakers.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "NormStats":
        if d.get("format") != FORMAT:
            raise ValueError(f"not a NormStats dict (format {d.get('format')!r}, expected {FORMAT!r})")
        return cls(
            quantiles=tuple(float(q) for q in d["quantiles"]),
            min_per_speaker=int(d["min_per_speaker"]),
            speaker_scope=str(d.get("speaker_scope", "train")),
            dataset={m: MeasureStats.from_dict(s) for m, s in d["dataset"].items()},
            speakers={sp: {m: MeasureStats.from_dict(s) for m, s in per.items()}
                      for sp, per in d["speakers"].items()},
        )

    def save(self, path: str | Path) -> None:
        from textualize.manifest import atomic_write_json

        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "NormStats":
        from textualize.manifest import read_json

        try:
            data = read_json(path)
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: cannot read normalisation statistics ({e})") from None
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: malformed normalisation statistics ({e})") from None


def fit_norm_stats(
    rows: Iterable[tuple[str | None, Mapping[str, Any]] | Mapping[str, Any]],
    measures: Iterable[str] | None = None,
    speaker_key: str = "speaker",
    quantiles: Iterable[float] = DEFAULT_QUANTILES,
    min_per_speaker: int = 10,
) -> NormStats:
    """Fit ``NormStats`` on training rows.

    ``rows`` are ``(speaker or None, {measure: value})`` pairs, or flat dicts whose speaker is under
    ``speaker_key``. ``measures`` defaults to every key seen (except ``speaker_key``). NaN/None
    values are ignored; a measure with no finite value gets no edges (``bin`` returns None).
    """
    qs = tuple(float(q) for q in quantiles)
    if not qs or any(not 0 < q < 1 for q in qs) or list(qs) != sorted(set(qs)):
        raise ValueError(f"quantiles must be strictly increasing values in (0, 1), got {qs}")
    if min_per_speaker < 1:
        raise ValueError(f"min_per_speaker must be >= 1, got {min_per_speaker}")
    wanted = list(measures) if measures is not None else None
    pooled: dict[str, list[float]] = {m: [] for m in wanted} if wanted is not None else {}
    per_speaker: dict[str, dict[str, list[float]]] = {}
    for i, row in enumerate(rows):
        if isinstance(row, Mapping):
            speaker = row.get(speaker_key)
            values = {k: v for k, v in row.items() if k != speaker_key}
        else:
            try:
                speaker, values = row
            except (TypeError, ValueError):
                raise ValueError(f"row {i}: expected (speaker, {{measure: value}}) or a dict, got {row!r}") from None
            if not isinstance(values, Mapping):
                raise ValueError(f"row {i}: measures must be a mapping, got {type(values).__name__}")
        names = wanted if wanted is not None else list(values)
        for m in names:
            pooled.setdefault(m, [])
            v = _finite(values.get(m))
            if v is None:
                continue
            pooled[m].append(v)
            if speaker is not None:
                per_speaker.setdefault(str(speaker), {}).setdefault(m, []).append(v)
    stats = NormStats(quantiles=qs, min_per_speaker=int(min_per_speaker))
    stats.dataset = {m: _summarise(vals, qs) for m, vals in pooled.items()}
    for sp, per in per_speaker.items():
        kept = {m: _summarise(vals, qs) for m, vals in per.items() if len(vals) >= min_per_speaker}
        if kept:
            stats.speakers[sp] = kept
    return stats


def fit_speaker_norm_stats(
    train_rows: Iterable[tuple[str | None, Mapping[str, Any]]],
    all_rows: Iterable[tuple[str | None, Mapping[str, Any]]],
    measures: Iterable[str] | None = None,
    quantiles: Iterable[float] = DEFAULT_QUANTILES,
    min_per_speaker: int = 10,
) -> NormStats:
    """Speaker normalisation: dataset-level statistics from ``train_rows`` (the fallback for
    speakers with too few clips and for unknown speakers), per-speaker statistics from
    ``all_rows`` (each speaker's own clips in every split; rows carry measures, never labels)."""
    wanted = list(measures) if measures is not None else None
    stats = fit_norm_stats([(None, values) for _, values in train_rows], wanted, quantiles=quantiles,
                           min_per_speaker=min_per_speaker)
    per = fit_norm_stats(list(all_rows), wanted, quantiles=quantiles, min_per_speaker=min_per_speaker)
    stats.speakers = per.speakers
    stats.speaker_scope = "all splits"
    return stats
