"""``textualize build-streams``: aligned feature streams of a built dataset (docs/streams_format.md).

For every sample of ``DATASET`` (the DatasetDict ids, per split) each requested stream is taken
from its registered extractor on the stream's own clock and resampled onto the sample's one time
axis (``align.py``); then, optionally, z-scored per speaker; then written as
``DATASET/streams/<split>.npz`` and, last, ``DATASET/streams/manifest.json``.

Cost lives in the extractors' per-clip caches (``CUE_DIR/streams/<stream>/``), so a rerun or a
resumed run only aligns and writes; a run with the same inputs and settings as the manifest on
disk returns at once.
"""
from __future__ import annotations

import io
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from textualize.manifest import atomic_write_bytes, atomic_write_json, read_json, stable_hash
from textualize.streams.align import align, align_per_clip, axis
from textualize.streams.base import SampleContext, Source, finite

FORMAT = "textualize.streams/1"
DEFAULT_STREAMS = ("face_au", "face_blendshapes", "face_landmarks", "face_dlib", "face_fer",
                   "audio_lld", "audio_whisper", "text_emb")
SD_FLOOR = 1e-6  # a dimension constant for a speaker is centred, not divided by ~0


class StreamsError(RuntimeError):
    """A streams build that cannot go on; the message says what to fix."""


@dataclass
class StreamsConfig:
    dataset: str
    rate_hz: float = 5.0
    streams: tuple[str, ...] | None = None  # None: the registered streams of the build's modalities
    speaker_normalisation: bool | None = None  # None: the build config's setting (default True)
    force: bool = False


@dataclass
class _Sample:
    id: str
    split: str
    speaker: str
    times: np.ndarray
    values: dict[str, np.ndarray] = field(default_factory=dict)
    masks: dict[str, np.ndarray] = field(default_factory=dict)


def _load_adapter_samples(build_cfg: dict, log: Callable[[str], None]) -> dict[str, Any] | None:
    """The adapter's samples again (precomputed cues, gold transcripts), or None with a notice."""
    from textualize.build import BuildConfig, load_samples
    from textualize.extract import ExtractConfig

    try:
        cfg = dict(build_cfg)
        cfg["extract"] = ExtractConfig(**cfg.get("extract", {}))
        cfg["modalities"] = tuple(cfg.get("modalities", ()))
        known = BuildConfig.__dataclass_fields__
        _, _, samples, _ = load_samples(BuildConfig(**{k: v for k, v in cfg.items() if k in known}))
        return {s.id: s for s in samples}
    except Exception as e:  # root moved away: the dataset columns still give media, spans, speakers
        log(f"notice: the corpus adapter could not be re-read ({type(e).__name__}: {e}); "
            "using the dataset columns only (no precomputed cue tables, gold transcripts from the 'transcript' column)")
        return None


def _cue_dir(dataset: Path, manifest: dict) -> Path:
    p = Path(manifest.get("cues_dir") or dataset / "cues")
    if not p.exists() and (dataset / "cues").exists():
        p = dataset / "cues"
    return p


def _span(ctx: SampleContext, sources: dict[str, Source | None]) -> tuple[float, float] | None:
    """The sample's span on its clip's clock, or None for a per-clip / text-only sample."""
    start = ctx.start_s if finite(ctx.start_s) else 0.0
    if finite(ctx.end_s):
        return start, float(ctx.end_s)
    if ctx.clip is not None:
        d = getattr(ctx.clip.media, "duration_s", None)
        if finite(d) and d > start:
            return start, float(d)
    ends = []  # no media duration (a per-frame table): the last row of any time-resolved stream
    for s in sources.values():
        if s is not None and not s.per_clip and len(s.times_s):
            # a frame stands for half a period either side of its time (align.py's nearest rule)
            last = s.ends_s.max() if s.ends_s is not None else s.times_s.max() + (0.5 / s.source_rate_hz if s.source_rate_hz else 0.0)
            ends.append(float(last))
    if ends and max(ends) > start:
        return start, max(ends)
    return None


def build_streams(config: StreamsConfig, progress: bool = True, log: Callable[[str], None] = print) -> dict:
    from datasets import load_from_disk

    from textualize.cues import from_json
    from textualize.extract import cue_path
    from textualize.registry import STREAM_EXTRACTORS
    from textualize.versions import library_versions

    t0 = time.perf_counter()
    dataset = Path(config.dataset)
    manifest_path = dataset / "manifest.json"
    if not manifest_path.exists():
        raise StreamsError(f"{dataset} is not a built dataset (no manifest.json); run `textualize build-dataset` first")
    if not math.isfinite(config.rate_hz) or config.rate_hz <= 0:
        raise StreamsError(f"--rate must be a positive number of Hz, got {config.rate_hz}")
    from textualize.media import sha256_file

    ds_manifest = read_json(manifest_path)
    build_cfg = ds_manifest.get("config", {})
    modalities = list(ds_manifest.get("modalities") or build_cfg.get("modalities") or ["text", "face", "voice"])
    speaker_norm = config.speaker_normalisation
    if speaker_norm is None:
        speaker_norm = bool(build_cfg.get("speaker_normalisation", True))
    names = list(config.streams) if config.streams else None
    extractors = {}
    for n in names or DEFAULT_STREAMS:
        extractors[n] = STREAM_EXTRACTORS.get(n)  # unknown name: the error lists the known ones
    if names is None:
        extractors = {n: cls for n, cls in extractors.items() if cls.modality in modalities}
    out_dir = dataset / "streams"
    ds_sha = sha256_file(manifest_path)
    run_key = stable_hash({"dataset": ds_sha, "rate": config.rate_hz, "norm": speaker_norm, "format": FORMAT,
                           "streams": {n: [cls.version, cls.params()] for n, cls in extractors.items()}})
    old = out_dir / "manifest.json"
    if not config.force and old.exists():
        try:
            prev = read_json(old)
            if prev.get("run_key") == run_key and all((out_dir / f"{s}.npz").exists() for s in prev.get("counts", {})):
                log(f"streams are up to date ({old}); --force rebuilds them")
                return prev
        except (OSError, ValueError):
            pass

    dd = load_from_disk(str(dataset))
    cue_dir = _cue_dir(dataset, ds_manifest)
    # precomputed cue tables and gold transcripts live only in the adapter's samples
    adapter_samples = _load_adapter_samples(build_cfg, log)
    instances = {n: cls() for n, cls in extractors.items()}
    prefer_gold = bool(build_cfg.get("prefer_gold_transcript", True))

    rows = [(split, r) for split in dd for r in dd[split].select_columns(
        [c for c in ("id", "speaker", "media_path", "cue_clip_id", "start_s", "end_s", "transcript") if c in dd[split].column_names])]
    samples: list[_Sample] = []
    stream_names: dict[str, list[str]] = {}
    stream_info: dict[str, dict] = {}
    stream_rates: dict[str, float] = {}
    counts_info: dict[str, dict[str, int]] = {n: {} for n in instances}
    with_data = {n: 0 for n in instances}
    per_clip_repeated = {n: 0 for n in instances}
    clip_cache: dict[str, Any] = {}

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("[bold]streams"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), TextColumn("{task.description}"))
    try:
        with Progress(*columns, disable=not progress, transient=False) as bar:
            task = bar.add_task("", total=len(rows))
            for split, r in rows:
                bar.update(task, description=r["id"])
                cid = r.get("cue_clip_id") or None
                clip = None
                if cid:
                    if cid not in clip_cache:
                        clip_cache.clear()  # one clip at a time (samples of one clip are adjacent)
                        p = cue_path(cue_dir, cid)
                        clip_cache[cid] = from_json(read_json(p)) if p.exists() else None
                    clip = clip_cache[cid]
                ctx = SampleContext(
                    id=r["id"], split=split, speaker=str(r.get("speaker") or ""),
                    start_s=finite_float(r.get("start_s")), end_s=finite_float(r.get("end_s")), clip_id=cid,
                    media_path=(r.get("media_path") or None), cue_dir=cue_dir, clip=clip,
                    sample=adapter_samples.get(r["id"]) if adapter_samples else None,
                    prefer_gold_transcript=prefer_gold, transcript_column=str(r.get("transcript") or ""),
                    extract=dict(build_cfg.get("extract", {})),
                )
                sources = {}
                for n, ext in instances.items():
                    try:
                        sources[n] = ext.source(ctx)
                    except Exception as e:
                        raise StreamsError(f"stream {n!r} failed on sample {r['id']!r}: {type(e).__name__}: {e}") from e
                span = _span(ctx, sources)
                times = axis(span[0], span[1], config.rate_hz) if span else np.asarray(
                    [ctx.start_s if finite(ctx.start_s) else 0.0], np.float64)
                sample = _Sample(r["id"], split, ctx.speaker, times)
                for n, src in sources.items():
                    if src is None:
                        continue
                    if n not in stream_names:
                        stream_names[n], stream_info[n] = list(src.names), dict(src.info)
                        stream_rates[n] = float(src.source_rate_hz)
                    elif src.names != stream_names[n]:
                        raise StreamsError(
                            f"stream {n!r}: sample {r['id']!r} has dimensions {src.names[:4]}… but earlier samples "
                            f"{stream_names[n][:4]}… (cues from different backends in one dataset); rebuild the cues with one backend")
                    if src.per_clip:
                        vals, mask = align_per_clip(src, len(times))
                        per_clip_repeated[n] += int(len(times) > 1)
                    else:
                        vals, mask = align(src, times, config.rate_hz, end_s=span[1] if span else None)
                    sample.values[n], sample.masks[n] = vals, mask
                    with_data[n] += int(mask.any())
                    for k, v in src.info.items():
                        if k.startswith("count_"):
                            counts_info[n][k[6:]] = counts_info[n].get(k[6:], 0) + int(v)
                samples.append(sample)
                bar.advance(task)
    finally:
        for ext in instances.values():
            ext.close()

    # dimensions of streams no sample had data for: fixed-name extractors keep all-False arrays
    absent = {}
    for n, ext in instances.items():
        if n not in stream_names:
            if ext.names:
                stream_names[n], stream_info[n], stream_rates[n] = list(ext.names), {}, float(ext.source_rate_hz)
            else:
                absent[n] = "no sample has data for it and its dimensions come from the data"
    present = [n for n in instances if n in stream_names]
    for s in samples:
        T = len(s.times)
        for n in present:
            if n not in s.values:
                s.values[n] = np.zeros((T, len(stream_names[n])), np.float32)
                s.masks[n] = np.zeros(T, bool)

    norm_record = None
    if speaker_norm:
        norm_record = speaker_normalise(samples, present)

    counts: dict[str, int] = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    for split in dd:
        arrays: dict[str, np.ndarray] = {}
        for s in (x for x in samples if x.split == split):
            arrays[f"{s.id}/times_s"] = s.times.astype(np.float32)
            for n in present:
                v = s.values[n]
                if not np.all(np.isfinite(v)):  # the contract: never NaN
                    raise StreamsError(f"internal error: non-finite values in {s.id}/{n}")
                arrays[f"{s.id}/{n}"] = v.astype(np.float32)
                arrays[f"{s.id}/{n}_mask"] = s.masks[n].astype(bool)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        atomic_write_bytes(out_dir / f"{split}.npz", buf.getvalue())
        counts[split] = sum(1 for x in samples if x.split == split)
    for stale in out_dir.glob("*.npz"):
        if stale.stem not in counts:
            stale.unlink()

    streams_entry = {}
    for n in present:
        ext = instances[n]
        info = stream_info[n]
        entry = {
            "dim": len(stream_names[n]),
            "modality": ext.modality,
            "extractor": info.get("extractor", ext.extractor),
            "source_rate_hz": stream_rates[n] or None,
            "unit": info.get("unit", ext.unit),
            "names": stream_names[n],
            "version": ext.version,
            "params": ext.params(),
            "samples_with_data": with_data[n],
        }
        if per_clip_repeated[n]:
            entry["per_clip_repeated_over_axis"] = per_clip_repeated[n]
        if counts_info[n]:
            entry[getattr(ext, "counts_key", "counts")] = counts_info[n]
        entry.update(getattr(ext, "manifest_extra", lambda: {})())
        streams_entry[n] = entry
    manifest = {
        "format": FORMAT,
        "rate_hz": float(config.rate_hz),
        "speaker_normalisation": bool(speaker_norm),
        "streams": streams_entry,
        "counts": counts,
        "dataset_manifest_sha256": ds_sha,
        "normalisation": norm_record,
        "absent_streams": absent,
        "axis": "times_s[k] = span start + k / rate_hz, step k averages [t_k - 0.5/rate, t_k + 0.5/rate); "
                "samples without a time span (per-clip tables, text without media) have T = 1",
        "cues_dir": str(cue_dir),
        "versions": library_versions(),
        "run_key": run_key,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    atomic_write_json(out_dir / "manifest.json", manifest)
    return manifest


def finite_float(x) -> float | None:
    """``x`` as a float, or None when it is missing, not a number or not finite (JSON rows)."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def speaker_normalise(samples: list[_Sample], streams: list[str]) -> dict:
    """Z-score every stream's dims per speaker, from that speaker's own valid steps (all splits,
    no labels). Speakers that are unknown ('') or have a single sample use the train split's
    statistics (all train samples; all samples when there is no train split). Masked steps stay 0.
    Each sample weighs as much as its valid steps (a long clip counts more than a short one)."""
    by_speaker: dict[str, list[_Sample]] = {}
    for s in samples:
        by_speaker.setdefault(s.speaker, []).append(s)
    own = {spk for spk, ss in by_speaker.items() if spk and len(ss) >= 2}
    train = [s for s in samples if s.split == "train"] or samples
    record = {"speakers_own_statistics": len(own),
              "samples_train_fallback": sum(1 for s in samples if s.speaker not in own),
              "fallback": "train-split statistics for unknown or single-sample speakers",
              "sd_floor": SD_FLOOR}
    for n in streams:
        fallback = _stats(train, n)
        stats = {spk: _stats(by_speaker[spk], n) for spk in own}
        for s in samples:
            mu, sd = stats.get(s.speaker) if s.speaker in own else fallback
            if mu is None:  # no valid step anywhere to learn from: leave as is
                continue
            m = s.masks[n]
            if m.any():
                s.values[n][m] = ((s.values[n][m] - mu) / sd).astype(np.float32)
    return record


def _stats(group: list[_Sample], n: str):
    rows = [s.values[n][s.masks[n]] for s in group if s.masks[n].any()]
    if not rows:
        return None, None
    x = np.concatenate(rows).astype(np.float64)
    mu = x.mean(axis=0)
    sd = x.std(axis=0)
    sd[sd < SD_FLOOR] = 1.0
    return mu, sd
