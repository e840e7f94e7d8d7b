"""``textualize build-dataset``: adapter -> cue extraction -> converters -> template -> DatasetDict.

Stages share the on-disk layout below, so each one caches and resumes:

    OUT/validation.json      what the adapter's validation found (errors stop the build)
    OUT/cues/                one ClipCues JSON (+ .npz sequences) per media file (extract stage)
    OUT/norm_stats.json      quantile/z-score statistics fitted on the TRAIN split only
    OUT/dataset_dict.json, OUT/train/, OUT/validation/, OUT/test/   the Hugging Face DatasetDict
    OUT/features/<split>.npz per-sample feature sequences for the feature baseline, same ids
    OUT/failures.jsonl       every sample that could not be rendered, with the reason
    OUT/manifest.json        versions, configuration, template id + hash, counts, timings

Sharding (``--num-shards N --shard-index i``) splits only the expensive extraction; running the
same command without shard flags afterwards (``--merge`` to forbid new extraction) renders
everything from the shared cue cache.
"""
from __future__ import annotations

import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from textualize.corpora.base import SPLITS, LabelMap, Sample, validate_samples
from textualize.converters.spans import restrict_to_span
from textualize.cues import MissingCue, ProsodyCues, to_json
from textualize.extract import ExtractConfig, load_clip, run_extraction, sequence_path
from textualize.manifest import JsonlLog, atomic_write_json, read_json, stable_hash

MODALITIES = ("text", "face", "voice")


class BuildError(RuntimeError):
    """A build that cannot go on; the message lists what to fix."""


@dataclass
class BuildConfig:
    dataset: str
    root: str
    out: str
    template: str = "paper_v1"
    modalities: tuple[str, ...] = MODALITIES
    mode: str = "words"  # converters: "words" | "numeric"
    context_turns: int = 0
    prefer_gold_transcript: bool = True
    tokenizer: str | None = "minilm-l6-bert"  # for the prompt token count; None = whitespace
    num_shards: int = 1
    shard_index: int | None = None
    merge: bool = False
    workers: int = 1
    executor: str = "local"  # where extraction runs: local, dask, ray, slurm (textualize.executors)
    executor_options: dict[str, Any] = field(default_factory=dict)
    allow_invalid: bool = False  # record invalid samples as failures instead of stopping
    cues_dir: str | None = None  # shared cue cache (default OUT/cues): other templates reuse it
    adapter_options: dict[str, Any] = field(default_factory=dict)
    converter_config: dict[str, Any] = field(default_factory=dict)  # TextualizeConfig.to_dict() form
    # prompts describe each speaker's cues relative to that speaker's own clips (all splits, no
    # labels; the training split's statistics for speakers with too few clips); False: relative
    # to the training split's pooled statistics only
    speaker_normalisation: bool = True
    extract: ExtractConfig = field(default_factory=ExtractConfig)


def media_clip_id(sample: Sample, root: Path) -> str:
    """Cue-cache id of a sample's media file: readable stem + hash of its path below the root."""
    p = Path(sample.media_path)
    try:
        rel = str(p.resolve().relative_to(root.resolve()))
    except ValueError:
        rel = str(p.resolve())
    return f"{p.stem}-{stable_hash(rel, 8)}"


def shard_of(key: str, num_shards: int) -> int:
    return int(stable_hash(key, 8), 16) % num_shards


def load_samples(config: BuildConfig) -> tuple[Any, LabelMap, list[Sample], list[str]]:
    from textualize.registry import CORPORA

    adapter = CORPORA.get(config.dataset)()
    root = Path(config.root)
    if not root.exists():
        raise BuildError(f"--root {root} does not exist")
    samples = list(adapter.samples(root, **config.adapter_options))
    notices = list(getattr(adapter, "notices", []))
    return adapter, adapter.label_map(), samples, notices


def _needs_media(config: BuildConfig, samples: list[Sample]) -> tuple[bool, bool]:
    """(audio, visual) extraction needed: voice always needs audio; text needs ASR unless every
    sample with media has a gold transcript and gold is preferred."""
    needs_asr = "text" in config.modalities and (
        not config.prefer_gold_transcript or any(s.media_path and s.transcript is None for s in samples)
    )
    return "voice" in config.modalities or needs_asr, "face" in config.modalities


def _precomputed(sample: Sample, kind: str) -> bool:
    """A real precomputed cue of this kind (a precomputed MissingCue does not stop extraction)."""
    return kind in sample.precomputed and not isinstance(sample.precomputed[kind], MissingCue)


def _needs_extraction(sample: Sample, need_audio: bool, need_visual: bool) -> bool:
    """Extract from the sample's media when a requested cue kind is not already precomputed."""
    if not sample.media_path:
        return False
    return (need_audio and not _precomputed(sample, "prosody")) or (need_visual and not _precomputed(sample, "face"))


def build_dataset(config: BuildConfig, progress: bool = True, log=print) -> dict:
    t0 = time.perf_counter()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    if not set(config.modalities) or not set(config.modalities) <= set(MODALITIES):
        raise BuildError(f"--modalities must be a non-empty subset of {','.join(MODALITIES)}")

    from textualize.converters.config import TextualizeConfig

    try:  # a typo in the converter settings fails here, before any extraction
        TextualizeConfig.from_build(config)
    except (TypeError, ValueError, KeyError) as e:
        raise BuildError(f"converter settings: {e}") from None

    adapter, label_map, samples, notices = load_samples(config)
    # adapters log their notices themselves (logger "textualize.corpora"); the manifest keeps them
    report = validate_samples(samples, label_map)
    atomic_write_json(out / "validation.json", {"errors": report.errors, "warnings": report.warnings, "counts": report.counts})
    failures = JsonlLog(out / "failures.jsonl")
    if failures.path.exists() and config.shard_index is None:
        failures.path.unlink()
    invalid_ids = {e["id"] for e in report.errors}
    if report.errors:
        head = "\n".join(f"  {e['id']}: {e['problem']} ({e['detail']})" for e in report.errors[:20])
        more = f"\n  … and {len(report.errors) - 20} more (see {out / 'validation.json'})" if len(report.errors) > 20 else ""
        if not config.allow_invalid:
            raise BuildError(f"{len(report.errors)} invalid samples:\n{head}{more}\n(--allow-invalid records them as failures and goes on)")
        for e in report.errors:
            failures.append({"id": e["id"], "stage": "validation", "reason": f"{e['problem']}: {e['detail']}"})
        samples = [s for s in samples if s.id not in invalid_ids]
    if len(report.warnings) <= 10:
        for w in report.warnings:
            log(f"warning: {w['id']}: {w['problem']} ({w['detail']})")
    else:
        log(f"{len(report.warnings)} warnings (see {out / 'validation.json'})")

    # ---- extraction (the only stage that is sharded)
    root = Path(config.root)
    need_audio, need_visual = _needs_media(config, samples)
    media: dict[str, Path] = {}
    for s in samples:
        if _needs_extraction(s, need_audio, need_visual):
            media.setdefault(media_clip_id(s, root), Path(s.media_path))
    cue_dir = Path(config.cues_dir) if config.cues_dir else out / "cues"
    extract_config = ExtractConfig(**{**asdict(config.extract), "audio": need_audio, "visual": need_visual})
    items = sorted(media.items())
    if config.shard_index is not None:
        items = [(cid, p) for cid, p in items if shard_of(cid, config.num_shards) == config.shard_index]
    extraction_failures: dict[str, str] = {}
    shard_dir = out / "shards"
    if items and (need_audio or need_visual):
        if config.merge:
            from textualize.extract import stale_parts
            from textualize.media import sha256_file

            # clips a shard tried and could not process are failures to record, not missing work
            for record in sorted(shard_dir.glob(f"*-of-{config.num_shards}.json")):
                extraction_failures.update(read_json(record).get("failed", {}))
            missing = [
                cid for cid, p in items
                if cid not in extraction_failures
                and (not p.exists() or stale_parts(cue_dir, cid, sha256_file(p), extract_config))
            ]
            if missing:
                raise BuildError(f"--merge: {len(missing)} clips have no cached cues yet (first: {missing[:5]}); run the shards first")
        else:
            log(f"extracting cues for {len(items)} media files into {cue_dir}")
            run_name = f"shard-{config.shard_index}-of-{config.num_shards}" if config.shard_index is not None else ""
            summary = run_extraction(items, cue_dir, extract_config, workers=config.workers, progress=progress, run_name=run_name,
                                     executor=config.executor, executor_options=config.executor_options)
            extraction_failures = {f["clip_id"]: f["reason"] for f in summary.failures}
    if config.shard_index is not None:
        atomic_write_json(shard_dir / f"{config.shard_index}-of-{config.num_shards}.json",
                          {"clips": len(items), "failed": extraction_failures})
        return {"shard": config.shard_index, "clips": len(items), "failed": len(extraction_failures)}

    # ---- cues per sample
    cues_by_sample: dict[str, dict[str, Any]] = {}
    clip_cache: dict[str, Any] = {}
    kept: list[Sample] = []
    for s in samples:
        cues: dict[str, Any] = dict(s.precomputed)
        if _needs_extraction(s, need_audio, need_visual):
            cid = media_clip_id(s, root)
            if cid in extraction_failures or not (cue_dir / f"{cid}.json").exists():
                reason = extraction_failures.get(cid, "no cached cues")
                failures.append({"id": s.id, "stage": "extract", "media": s.media_path, "reason": reason})
                continue
            if cid not in clip_cache:
                clip_cache[cid] = load_clip(cue_dir, cid)
            clip = clip_cache[cid]
            for kind in ("transcript", "prosody", "face"):
                if not _precomputed(s, kind):
                    cues[kind] = getattr(clip, kind)
            # a segment or window of a longer file is described by its own span only; the
            # training statistics below are fitted on these restricted cues too
            cues = restrict_to_span(cues, s.start_s, s.end_s)
            cues["clip_id"] = cid
        elif s.media_path is None and not s.precomputed:
            reason = "no media (text-only corpus)"
            cues.setdefault("face", MissingCue("not_requested", reason))
            cues.setdefault("prosody", MissingCue("not_requested", reason))
        kept.append(s)
        cues_by_sample[s.id] = cues

    # ---- normalisation statistics: training split, per speaker from the speakers' own clips
    prosody_config = TextualizeConfig.from_build(config).prosody
    norm_stats = fit_training_norm_stats(
        kept, cues_by_sample, config.speaker_normalisation, prosody_config.speaker_min_clips,
        quantiles=prosody_config.quantiles,
    )
    if norm_stats is not None:
        norm_stats.save(out / "norm_stats.json")

    # ---- render
    rows_by_split, render_failures = render_rows(config, kept, cues_by_sample, label_map, norm_stats, progress)
    for f in render_failures:
        failures.append(f)
    features = collect_features(kept, cues_by_sample, cue_dir)
    save_dataset_dict(out, rows_by_split)
    for split, feats in features.items():
        if feats:
            from textualize.manifest import atomic_write_bytes
            import io

            buf = io.BytesIO()
            np.savez_compressed(buf, **feats)
            atomic_write_bytes(out / "features" / f"{split}.npz", buf.getvalue())

    from textualize.templates import load_template
    from textualize.versions import library_versions

    template = load_template(config.template)
    converters = TextualizeConfig.from_build(config)
    counts = {split: {"rows": len(rows), "labels": _label_counts(rows)} for split, rows in rows_by_split.items()}
    n_failures = sum(1 for _ in failures)
    manifest = {
        "stage": "build-dataset",
        "dataset": config.dataset,
        "label_map": label_map.to_dict(),
        "template": {"id": template.id, "version": template.version, "hash": template.hash},
        "converters": {"hash": converters.hash, "config": converters.to_dict()},
        "modalities": list(config.modalities),
        "config": to_json(asdict(config)),
        "versions": library_versions(),
        "counts": counts,
        "failures": n_failures,
        "notices": notices,
        "validation": {"errors": len(report.errors), "warnings": len(report.warnings)},
        "cues_dir": str(cue_dir),
        "input_hashes": annotation_hashes(root, exclude=out),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    atomic_write_json(out / "manifest.json", manifest)
    return manifest


ANNOTATION_SUFFIXES = {".csv", ".tsv", ".jsonl", ".json", ".txt", ".yaml", ".yml"}


def annotation_hashes(root: Path, exclude: Path | None = None, limit: int = 2000) -> dict[str, str]:
    """SHA-256 of the corpus' annotation files (labels, splits, transcripts), so a manifest says
    exactly which annotations a dataset was built from. Media files are hashed per clip in the
    cue cache instead."""
    from textualize.media import sha256_file

    if root.is_file():
        return {root.name: sha256_file(root)}
    skip = exclude.resolve() if exclude is not None else None
    files = sorted(
        p for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in ANNOTATION_SUFFIXES
        and not (skip is not None and p.resolve().is_relative_to(skip))  # our own outputs
    )[:limit]
    return {str(p.relative_to(root)): sha256_file(p) for p in files}


def fit_training_norm_stats(samples: list[Sample], cues_by_sample: dict[str, dict],
                            speaker_normalisation: bool = True, min_per_speaker: int = 10,
                            quantiles: tuple[float, ...] | None = None):
    """Prosody statistics for the converters: the training split's (dataset level) and, with
    ``speaker_normalisation``, each speaker's own over all splits (measures only, no labels).
    Without it the statistics are the training split's pooled ones (no per-speaker bins)."""
    from textualize.cues import PROSODY_MEASURE_NAMES
    from textualize.normalization import fit_norm_stats, fit_speaker_norm_stats

    train, every = [], []
    for s in samples:
        pros = cues_by_sample[s.id].get("prosody")
        if isinstance(pros, ProsodyCues):
            row = (s.speaker, {m: getattr(pros.clip, m) for m in PROSODY_MEASURE_NAMES})
            every.append(row)
            if s.split == "train":
                train.append(row)
    if not train:
        return None
    if speaker_normalisation:
        return fit_speaker_norm_stats(train, every, list(PROSODY_MEASURE_NAMES), min_per_speaker=min_per_speaker,
                                      **({"quantiles": quantiles} if quantiles else {}))
    stats = fit_norm_stats([(None, values) for _, values in train], list(PROSODY_MEASURE_NAMES),
                           **({"quantiles": quantiles} if quantiles else {}))
    stats.speaker_scope = "none"
    return stats


def render_rows(config: BuildConfig, samples, cues_by_sample, label_map: LabelMap, norm_stats, progress: bool):
    from rich.progress import track

    from textualize.converters import textualize_sample
    from textualize.converters.config import TextualizeConfig
    from textualize.templates import count_tokens, load_template

    template = load_template(config.template)
    tconfig = TextualizeConfig.from_build(config)
    tokenizer = _load_tokenizer(config.tokenizer)
    rows_by_split: dict[str, list[dict]] = {}
    failures = []
    modalities = tuple(m for m in MODALITIES if m in config.modalities)
    for s in track(samples, description="render", disable=not progress or len(samples) < 2000):
        try:
            cues = cues_by_sample[s.id]
            fragments = textualize_sample(s, cues, tconfig, norm_stats)
            text = template.render_text(fragments, modalities, label_map.classes)
            messages = template.render_chat(fragments, modalities, label_map.classes)
        except Exception as e:  # recorded, never dropped silently
            failures.append({"id": s.id, "stage": "render", "reason": f"{type(e).__name__}: {e}"})
            continue
        missing = sorted(
            cue for modality, cue in (("text", "transcript"), ("face", "face"), ("voice", "prosody"))
            if modality in modalities and isinstance(cues.get(cue), MissingCue)
            and not (cue == "transcript" and s.transcript is not None and config.prefer_gold_transcript)
        )
        rows_by_split.setdefault(s.split, []).append(
            {
                "id": s.id,
                "label": s.label,
                "label_id": label_map.index(s.label),
                "split": s.split,
                "text": text,
                "messages": messages,
                "transcript": fragments.get("transcript", ""),
                "face_text": fragments.get("face", ""),
                "voice_text": fragments.get("voice", ""),
                "speaker": s.speaker or "",
                "media_path": s.media_path or "",
                "cue_clip_id": cues.get("clip_id", ""),
                "start_s": float(s.start_s) if s.start_s is not None else math.nan,
                "end_s": float(s.end_s) if s.end_s is not None else math.nan,
                "missing_cues": missing,
                "template_id": template.id,
                "template_hash": template.hash,
                "n_tokens": count_tokens(text, tokenizer),
            }
        )
    return rows_by_split, failures


_TOKENIZERS: dict[str, Any] = {}


def _load_tokenizer(name: str | None):
    if not name:
        return None
    if name not in _TOKENIZERS:
        from transformers import AutoTokenizer

        from textualize.models import MODELS

        path = MODELS[name].require() if name in MODELS else name
        _TOKENIZERS[name] = AutoTokenizer.from_pretrained(str(path))
    return _TOKENIZERS[name]


def collect_features(samples, cues_by_sample, cue_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """Per-sample feature sequences for the feature baseline, cut to the sample's time span."""
    out: dict[str, dict[str, np.ndarray]] = {}
    npz_cache: dict[str, Any] = {}
    for s in samples:
        cues = cues_by_sample[s.id]
        feats = out.setdefault(s.split, {})
        cid = cues.get("clip_id")
        if cid is not None and sequence_path(cue_dir, cid).exists():
            if cid not in npz_cache:
                npz_cache = {cid: dict(np.load(sequence_path(cue_dir, cid)))}  # one clip at a time
            seq = npz_cache[cid]
            lo = s.start_s if s.start_s is not None else -math.inf
            hi = s.end_s if s.end_s is not None else math.inf
            if "face_au" in seq:
                t = seq["face_times_s"]
                keep = (t >= lo) & (t < hi)
                feats[f"{s.id}/face_au"] = seq["face_au"][keep]
            if "audio_lld" in seq:
                hop = float(seq["audio_lld_hop_s"])
                t = np.arange(len(seq["audio_lld"])) * hop
                keep = (t >= lo) & (t < hi)
                feats[f"{s.id}/audio_lld"] = seq["audio_lld"][keep]
        face = cues.get("face")
        if face is not None and not isinstance(face, MissingCue) and face.au_summary and cid is None:
            feats[f"{s.id}/face_au_clip"] = np.asarray(
                [face.au_summary[a].mean if a in face.au_summary else math.nan for a in face.au_names], np.float32
            )
        pros = cues.get("prosody")
        if isinstance(pros, ProsodyCues) and cid is None:
            from textualize.cues import PROSODY_MEASURE_NAMES

            feats[f"{s.id}/prosody_clip"] = np.asarray([getattr(pros.clip, m) for m in PROSODY_MEASURE_NAMES], np.float32)
    return out


def save_dataset_dict(out: Path, rows_by_split: dict[str, list[dict]]) -> None:
    """Save into a staging folder, then swap the split folders in (a crash leaves the old set)."""
    from datasets import Dataset, DatasetDict

    dd = DatasetDict({split: Dataset.from_list(rows_by_split[split]) for split in SPLITS if rows_by_split.get(split)})
    staging = out / ".staging-dataset"
    if staging.exists():
        shutil.rmtree(staging)
    dd.save_to_disk(str(staging))
    for split in SPLITS:
        target = out / split
        if target.exists():
            shutil.rmtree(target)
    for entry in staging.iterdir():
        entry.replace(out / entry.name)
    staging.rmdir()


def _label_counts(rows: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["label"]] = counts.get(r["label"], 0) + 1
    return dict(sorted(counts.items()))
