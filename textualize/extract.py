"""Cue extraction stage: media files -> one cached ``ClipCues`` JSON per clip.

Cached per clip and per part (audio, visual) by content hash + parameters (``part_keys``), run on
an executor (local processes, Dask, Ray, SLURM: ``textualize.executors``; each worker loads its models once), resumable (finished clips are skipped, a crash loses at most the
clips in flight), with a failures file naming every clip that could not be processed and why.
"""
from __future__ import annotations

import json
import os
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from textualize.cues import SCHEMA_VERSION, ClipCues, MissingCue, from_json, to_json
from textualize.manifest import JsonlLog, atomic_write_bytes, atomic_write_json, json_bytes, printable, read_json, stable_hash
from textualize.media import AUDIO_SUFFIXES, IMAGE_SUFFIXES, MediaError, input_problem, sha256_file

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".flv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv",
                  ".gif", ".3gp", ".ogv", ".mts", ".m2ts"}
TABLE_SUFFIXES = {".csv", ".tsv", ".txt"}
MEDIA_SUFFIXES = VIDEO_SUFFIXES | AUDIO_SUFFIXES | IMAGE_SUFFIXES

# Bump when an extractor's output changes for the same inputs and parameters (a bug fix, a new
# field): cached clips made by older code are then redone instead of silently reused.
# 4: narrowband (telephone) audio gets Silero's 8 kHz VAD instead of "no speech"; videos with a
# display matrix (phone portrait video) are analysed as displayed.
EXTRACTOR_VERSION = 4

FAILURES_FILE = "failures.jsonl"
MANIFEST_FILE = "manifest.json"


@dataclass
class ExtractConfig:
    """Everything that changes the cues; its hash is part of each clip's cache key."""

    asr: str = "faster-whisper"
    asr_model: str | None = None
    language: str | None = None
    beam_size: int = 5  # Whisper's default; 1 = greedy, about twice as fast on CPU
    prosody: str = "opensmile"
    au: str = "mediapipe"
    detector: str = "mtcnn"
    fps: float = 5.0
    max_side: int = 640
    window_s: float = 2.0
    hop_s: float = 1.0
    openface_dir: str | None = None
    audio: bool = True
    visual: bool = True
    save_sequences: bool = True
    asr_pack_short_clips: bool = False  # short clips share Whisper encoder windows (audio_cues/asr_packing.py)
    # audio at least this long (s) goes through faster-whisper's batched pipeline: windows decoded
    # side by side, not conditioned on the previous window's text; None: never (asr_faster_whisper.py).
    # On by default for long audio, greedy there: the audio step then runs at 31x real time on 2 CPU
    # cores (beam 5: 17-20x) at a word error rate 0.01-0.03 higher (bench/RESULTS.md, long audio)
    asr_batched_min_s: float | None = 60.0
    asr_batched_beam_size: int | None = 1  # beam size on the batched path; None: beam_size
    # speed/memory only, so not in the cache keys (a GPU worker takes larger batches):
    face_batch_size: int = 4  # sampled frames per face-detector call
    asr_batch_size: int | None = None  # windows per call on faster-whisper's batched path (long audio); None: backend default

    def batched_beam_size(self) -> int:
        return int(self.beam_size if self.asr_batched_beam_size is None else self.asr_batched_beam_size)

    def asr_batches(self) -> bool:
        """Whether long audio takes the batched path: set, and the ASR backend has one."""
        from textualize.registry import ASR_BACKENDS

        return self.asr_batched_min_s is not None and getattr(ASR_BACKENDS.get(self.asr), "batched_pipeline", False)

    def part_params(self) -> dict[str, dict[str, Any]]:
        """Parameters of each requested part: audio (transcript + prosody) and visual (face).

        Each part is cached under its own key, so a face-only ablation build reuses the audio
        cues of a full build on the same cue folder and never overwrites them."""
        parts = {}
        if self.audio:
            from textualize.registry import PROSODY_BACKENDS

            parts["audio"] = {k: getattr(self, k) for k in (
                "asr", "asr_model", "language", "beam_size", "prosody", "window_s", "hop_s", "save_sequences")}
            if self.asr_pack_short_clips:  # only when on, so caches made without packing keep their keys
                from textualize.audio_cues.asr_packing import PACK_VERSION

                parts["audio"]["asr_pack"] = PACK_VERSION
            if self.asr_batches():  # off: the keys of caches made before it existed
                parts["audio"]["asr_batched_min_s"] = float(self.asr_batched_min_s)
                parts["audio"]["asr_batched_beam_size"] = self.batched_beam_size()
            # a prosody backend that measures more (its ``version``) redoes the audio part only
            parts["audio"]["prosody_version"] = getattr(PROSODY_BACKENDS.get(self.prosody), "version", 1)
        if self.visual:
            parts["visual"] = {k: getattr(self, k) for k in (
                "au", "detector", "fps", "max_side", "openface_dir", "save_sequences")}
        return parts


def part_keys(content_sha256: str, config: ExtractConfig) -> dict[str, str]:
    """Cache key of each requested part: content hash + that part's parameters + versions."""
    base = {"sha256": content_sha256, "schema": SCHEMA_VERSION, "extractor": EXTRACTOR_VERSION}
    return {part: stable_hash({**base, "part": part, "params": params}, 24) for part, params in config.part_params().items()}


def stale_parts(out_dir: Path, clip_id: str, content_sha256: str, config: ExtractConfig) -> set[str]:
    """Requested parts whose cached cues are absent or were made from other inputs or settings."""
    have = stored_part_keys(out_dir, clip_id)
    return {part for part, key in part_keys(content_sha256, config).items() if have.get(part) != key}


def check_backends(config: ExtractConfig) -> None:
    """Unknown backend names fail in the driver, before an engine starts a cluster or submits a job
    array for nothing (``executors.run_chunks`` still re-raises the same error from a worker whose
    registry lacks a backend the driver has)."""
    from textualize.registry import ASR_BACKENDS, AU_BACKENDS, FACE_DETECTORS, PROSODY_BACKENDS

    if config.audio:
        ASR_BACKENDS.get(config.asr)
        PROSODY_BACKENDS.get(config.prosody)
    if config.visual:
        AU_BACKENDS.get(config.au)
        FACE_DETECTORS.get(config.detector)


class CueExtractor:
    """Loads the chosen backends once and extracts the cues of one clip at a time."""

    def __init__(self, config: ExtractConfig, device: str = "cpu"):
        from textualize.registry import ASR_BACKENDS, AU_BACKENDS, FACE_DETECTORS, PROSODY_BACKENDS

        self.config = config
        self.concurrent_prosody = True  # prosody's first pass beside ASR (see _transcribe_priming_prosody)
        self.asr = self.prosody = self.au = self.detector = None
        if config.audio:
            batch = {"batch_size": config.asr_batch_size} if config.asr_batch_size else {}
            if config.asr_batches():
                batch.update(batched_min_s=float(config.asr_batched_min_s), batched_beam_size=config.batched_beam_size())
            self.asr = ASR_BACKENDS.get(config.asr)(
                model=config.asr_model, device=device, language=config.language, beam_size=config.beam_size, **batch
            )
            self.prosody = PROSODY_BACKENDS.get(config.prosody)(window_s=config.window_s, hop_s=config.hop_s)
        if config.visual:
            au_cls = AU_BACKENDS.get(config.au)
            self.au = au_cls(model_dir=config.openface_dir, device=device)
            if getattr(self.au, "kind", "frames") == "frames":
                self.detector = FACE_DETECTORS.get(config.detector)(device=device)

    def _transcribe_priming_prosody(self, audio: np.ndarray) -> Any:
        """ASR, with the prosody backend's word-independent analysis (openSMILE's one pass for LLDs
        and functionals, pYIN, Praat's pitch/pulses) running beside it in a thread: both run in
        native code that releases the GIL, so on 2 cores the prosody pass hides behind Whisper. The
        backend keeps that pass for the clip (``LastClipMemo``), so ``measure(words=...)`` afterwards
        reuses it; the results are the same as run one after the other. A failure while priming is left for
        ``measure`` to raise with its own message."""
        if not self.concurrent_prosody:
            return self.asr.transcribe(audio, 16_000)
        prime = getattr(self.prosody, "prepare", None) or self.prosody.lld

        def run():
            try:
                prime(audio, 16_000)
            except Exception:  # measure() re-runs the pass and reports the error on this clip
                pass

        with ThreadPoolExecutor(1, thread_name_prefix="prosody") as pool:
            future = pool.submit(run)
            try:
                return self.asr.transcribe(audio, 16_000)
            finally:
                future.result()

    def pack_asr(self, group: list[tuple]) -> dict[str, Any]:
        """Start loading + packed ASR of a group's clips on a background thread: clip id ->
        future of ``(audio, transcript)`` for ``extract(..., pre=...)``."""
        from textualize.audio_cues.asr_packing import transcribe_in_background
        from textualize.media import load_audio

        if not (self.config.audio and self.config.asr_pack_short_clips and hasattr(self.asr, "transcribe_many")):
            return {}
        if getattr(self, "_asr_pool", None) is None:
            self._asr_pool = ThreadPoolExecutor(1, thread_name_prefix="packed-asr")
        loaders = {c: (lambda p=p: load_audio(p, 16_000)) for c, p, _, parts in group
                   if "audio" in parts and Path(p).suffix.lower() not in TABLE_SUFFIXES}
        return transcribe_in_background(self.asr, loaders, self._asr_pool)

    def extract(
        self, path: str | Path, clip_id: str, content_sha256: str | None = None, parts: set[str] | None = None,
        pre: Any = None,
    ) -> tuple[ClipCues, dict[str, np.ndarray]]:
        """Cues of one clip; ``parts`` (subset of {"audio", "visual"}) limits the work to the parts
        that are stale in the cache (default: every part the config requests); ``pre``: a future
        of this clip's ``(audio, transcript)`` from ``pack_asr``."""
        from textualize.cues import MediaInfo
        from textualize.media import load_audio, probe

        path = Path(path)
        sha = content_sha256 or sha256_file(path)
        parts = set(self.config.part_params()) if parts is None else parts
        do_audio, do_visual = "audio" in parts and self.config.audio, "visual" in parts and self.config.visual
        sequences: dict[str, np.ndarray] = {}
        is_table = path.suffix.lower() in TABLE_SUFFIXES
        if is_table:
            info = MediaInfo(path=str(path), content_sha256=sha, duration_s=float("nan"))
        else:
            info = probe(path, content_sha256=sha)

        transcript: Any = MissingCue("not_requested")
        prosody: Any = MissingCue("not_requested")
        if do_audio and not is_table:
            if not info.has_audio:
                transcript = MissingCue("no_audio_track", f"{path.name} has no audio stream")
                prosody = MissingCue("no_audio_track", f"{path.name} has no audio stream")
            else:
                audio, packed = pre.result() if pre is not None else (load_audio(path, 16_000), None)
                if audio.size == 0:
                    transcript = prosody = MissingCue("no_speech", "the audio track decoded to 0 samples")
                else:
                    transcript = packed if pre is not None else self._transcribe_priming_prosody(audio)
                    words = None if isinstance(transcript, MissingCue) else transcript.words
                    if no_voice_activity(transcript):
                        # music, laughter or noise only: its pitch and loudness are not a voice
                        prosody = MissingCue("no_speech", f"{transcript.detail}; the sound is not described as a voice")
                    else:
                        language = None if isinstance(transcript, MissingCue) else transcript.language
                        prosody = self.prosody.measure(audio, 16_000, words=words, language=language)
                    if self.config.save_sequences and not isinstance(prosody, MissingCue):
                        names, hop_s, lld = self.prosody.lld(audio, 16_000)
                        sequences["audio_lld"] = np.asarray(lld, dtype=np.float32)
                        sequences["audio_lld_names"] = np.asarray(names)
                        sequences["audio_lld_hop_s"] = np.asarray(hop_s, dtype=np.float32)

        face: Any = MissingCue("not_requested")
        if do_visual:
            if is_table:
                face = self.au.from_table(str(path))
            elif not info.has_video:
                face = MissingCue("no_video_track", f"{path.name} has no video stream")
            else:
                from textualize.visual_cues.pipeline import extract_facial_cues

                face = extract_facial_cues(
                    path, self.au, self.detector, fps=self.config.fps, max_side=self.config.max_side,
                    batch_size=self.config.face_batch_size,
                )
            if self.config.save_sequences and not isinstance(face, MissingCue) and face.au_values:
                sequences["face_au"] = np.asarray(face.au_values, dtype=np.float32)
                sequences["face_au_names"] = np.asarray(face.au_names)
                sequences["face_times_s"] = np.asarray(face.times_s, dtype=np.float32)

        keys = {p: k for p, k in part_keys(sha, self.config).items() if p in parts}
        cues = ClipCues(clip_id=clip_id, media=info, transcript=transcript, prosody=prosody, face=face, part_keys=keys)
        return cues, sequences


def no_voice_activity(transcript: Any) -> bool:
    """True when the ASR backend's voice-activity gate found no speech at all (as opposed to
    speech that decoded to no text, whose prosody is still a voice)."""
    from textualize.audio_cues.asr_faster_whisper import NO_VOICE_ACTIVITY

    return isinstance(transcript, MissingCue) and transcript.detail.startswith(NO_VOICE_ACTIVITY)


# ---------------------------------------------------------------- on-disk cache


def cue_path(out_dir: Path, clip_id: str) -> Path:
    return out_dir / f"{clip_id}.json"


def sequence_path(out_dir: Path, clip_id: str) -> Path:
    return out_dir / f"{clip_id}.npz"


def save_clip(out_dir: Path, cues: ClipCues, sequences: dict[str, np.ndarray]) -> None:
    """Sequences first, JSON last: a JSON on disk means the clip is complete. Both files are
    serialised before either is written, so a clip that cannot be stored leaves nothing behind;
    a write that fails between the two removes the pair (the clip is redone next run). A clip
    redone without sequences loses its old .npz, so stale features never outlive their cues."""
    import io

    record = json_bytes(to_json(cues), indent=None) + b"\n"
    blob = None
    if sequences:
        buf = io.BytesIO()
        np.savez_compressed(buf, **sequences)
        blob = buf.getvalue()
    npz, js = sequence_path(out_dir, cues.clip_id), cue_path(out_dir, cues.clip_id)
    try:
        if blob is None:
            npz.unlink(missing_ok=True)
        else:
            atomic_write_bytes(npz, blob)
        atomic_write_bytes(js, record)
    except BaseException:
        for p in (js, npz):  # never a .npz without its .json, nor a .json beside foreign sequences
            try:
                p.unlink(missing_ok=True)
            except OSError:
                pass
        raise


def remove_orphan_sequences(out_dir: Path, clip_id: str) -> None:
    """Drop a .npz whose .json is absent (a clip that failed, or a run killed between the two)."""
    if not cue_path(out_dir, clip_id).exists():
        try:
            sequence_path(out_dir, clip_id).unlink(missing_ok=True)
        except OSError:
            pass


def load_clip(out_dir: Path, clip_id: str) -> ClipCues:
    return from_json(read_json(cue_path(out_dir, clip_id)))


def stored_part_keys(out_dir: Path, clip_id: str) -> dict[str, str]:
    p = cue_path(out_dir, clip_id)
    if not p.exists():
        return {}
    try:
        with open(p, encoding="utf-8") as f:
            return dict(json.load(f).get("part_keys") or {})
    except (OSError, json.JSONDecodeError, TypeError, ValueError):
        return {}  # a damaged file is redone


def merge_with_cached(out_dir: Path, cues: ClipCues, sequences: dict[str, np.ndarray]) -> tuple[ClipCues, dict]:
    """Keep the cached parts this run did not redo (their cues, keys and sequences)."""
    have = stored_part_keys(out_dir, cues.clip_id)
    keep = {p: k for p, k in have.items() if p not in cues.part_keys}
    if not keep:
        return cues, sequences
    old = load_clip(out_dir, cues.clip_id)
    old_seq = dict(np.load(sequence_path(out_dir, cues.clip_id))) if sequence_path(out_dir, cues.clip_id).exists() else {}
    if "audio" in keep:
        cues.transcript, cues.prosody = old.transcript, old.prosody
        sequences.update({k: v for k, v in old_seq.items() if k.startswith("audio_")})
    if "visual" in keep:
        cues.face = old.face
        sequences.update({k: v for k, v in old_seq.items() if k.startswith("face_")})
    cues.part_keys = {**keep, **cues.part_keys}
    return cues, sequences


# ---------------------------------------------------------------- one clip (in a worker)

ASR_PACK_GROUP = 24  # clips per task with --asr-pack: their ASR shares Whisper windows


def extract_one(extractor: CueExtractor, out_dir: str, clip_id: str, path: str, sha: str, parts: set[str] | None = None,
                pre: Any = None) -> dict:
    """Extract one clip with a loaded extractor and store it; a result record, never an exception.
    ``pre``: this clip's packed-ASR future from ``CueExtractor.pack_asr`` (``--asr-pack``)."""
    t0 = time.perf_counter()
    try:
        cues, sequences = extractor.extract(path, clip_id, content_sha256=sha, parts=parts, pre=pre)
        cues, sequences = merge_with_cached(Path(out_dir), cues, sequences)
        save_clip(Path(out_dir), cues, sequences)
        missing = [m for m in ("transcript", "prosody", "face") if isinstance(getattr(cues, m), MissingCue)
                   and getattr(cues, m).reason != "not_requested"]
        return {"clip_id": clip_id, "status": "ok", "seconds": time.perf_counter() - t0, "missing": missing}
    except MediaError as e:
        remove_orphan_sequences(Path(out_dir), clip_id)
        return {"clip_id": clip_id, "status": "failed", "path": path, "error": "MediaError", "reason": str(e)}
    except Exception as e:  # recorded per clip; the run goes on
        remove_orphan_sequences(Path(out_dir), clip_id)
        return {
            "clip_id": clip_id, "status": "failed", "path": path, "error": type(e).__name__,
            "reason": str(e) or repr(e), "traceback": traceback.format_exc(limit=6),
        }


@dataclass
class ExtractionSummary:
    out_dir: str
    total: int = 0
    done: int = 0
    cached: int = 0
    failed: int = 0
    missing: dict[str, int] = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def clip_ids_for(paths: list[Path]) -> list[str]:
    """Clip ids from file names, unique by construction and never silently overwritten.

    The stem by default (``clip.mp4`` -> ``clip``); stems shared by several inputs keep their
    extension (``single_face.jpg`` / ``single_face.mp4`` -> ``single_face.jpg``, ``single_face.mp4``),
    then their folder (``a/clip.mp3`` / ``b/clip.mp3`` -> ``a__clip.mp3``, ``b__clip.mp3``). The same
    file given twice is an error naming it. Links are followed as far as they go (``realpath``
    never raises, so a link loop or a dangling link is left for the run to report as a failure).
    """
    resolved = [Path(os.path.realpath(p)) for p in paths]
    seen: dict[Path, int] = {}
    for i, r in enumerate(resolved):
        if r in seen:
            raise ValueError(f"the same input is given twice: {printable(paths[seen[r]])} and {printable(paths[i])}")
        seen[r] = i

    def unique(candidates: list[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for c in candidates:
            counts[c] = counts.get(c, 0) + 1
        return counts

    ids = [p.stem for p in paths]
    for rule in (lambda p: p.name, lambda p: f"{p.parent.name}__{p.name}"):
        counts = unique(ids)
        if all(n == 1 for n in counts.values()):
            break
        ids = [rule(p) if counts[cid] > 1 else cid for p, cid in zip(paths, ids)]
    counts = unique(ids)
    clashes = sorted(c for c, n in counts.items() if n > 1)
    if clashes:
        raise ValueError(f"inputs share the clip id {printable(clashes[0])!r} even with folder and extension; rename one")
    return ids


def run_extraction(
    items: list[tuple[str, Path]],
    out_dir: str | Path,
    config: ExtractConfig,
    workers: int = 1,
    progress: bool = True,
    on_result: Callable[[dict], None] | None = None,
    run_name: str = "",
    executor: Any = "local",
    executor_options: dict | None = None,
) -> ExtractionSummary:
    """Extract cues for ``(clip_id, path)`` items into ``out_dir``; resumable and cached.

    ``executor`` names the engine the clips run on (``local``, ``dask``, ``ray``, ``slurm``; see
    ``textualize.executors``) or is an ``Engine``; ``executor_options`` configure it. The driver
    below (cache check, failures, manifest, progress) is the same for all of them.

    ``run_name`` (e.g. ``shard-0-of-4``) gives this run its own failures and manifest files, so
    shards that share one cue folder never overwrite each other's records.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    summary = ExtractionSummary(out_dir=str(out_dir), total=len(items))
    failures = JsonlLog(out_dir / _run_file(FAILURES_FILE, run_name))
    previous_failures = {r.get("clip_id"): r for r in failures}
    if failures.path.exists():
        failures.path.unlink()  # failed clips are retried; this run writes its own

    from textualize.executors import Engine, make_engine, run_chunk, run_chunks

    # made (and its options checked) before any work; started only when there are clips to do
    engine = executor if isinstance(executor, Engine) else make_engine(executor, workers, executor_options)
    engine_info = engine.describe()
    todo: list[tuple[str, str, str, set[str]]] = []
    for clip_id, path in items:
        path = Path(path)
        problem = input_problem(path)  # missing, dangling or looping link, folder, unreadable
        if problem is None:
            try:
                sha = sha256_file(path)
            except OSError as e:
                problem = f"{path}: cannot be read ({e.strerror or e})"
        if problem is not None:
            rec = {"clip_id": clip_id, "status": "failed", "path": str(path),
                   "error": "FileNotFoundError" if problem.endswith("file not found") else "InputError", "reason": problem}
            remove_orphan_sequences(out_dir, clip_id)
            failures.append(rec)
            summary.failures.append(rec)
            continue
        stale = stale_parts(out_dir, clip_id, sha, config)
        if not stale:
            summary.cached += 1
            continue
        todo.append((clip_id, str(path), sha, stale))

    def handle(result: dict) -> None:
        if result["status"] == "ok":
            summary.done += 1
            for m in result.get("missing", []):
                summary.missing[m] = summary.missing.get(m, 0) + 1
        else:
            failures.append(result)
            summary.failures.append(result)
        if on_result:
            on_result(result)

    if todo:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        check_backends(config)

        columns = (TextColumn("[bold]cues"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), TextColumn("{task.description}"))
        with engine, Progress(*columns, disable=not progress, transient=False) as bar:
            engine.start(len(todo), str(out_dir))
            engine_info = engine.describe()
            task = bar.add_task(engine.name if engine.name != "local" else "", total=len(todo))
            size = max(1, engine.chunk_size)
            if config.audio and config.asr_pack_short_clips:
                size = max(size, ASR_PACK_GROUP)  # a pack needs several clips in one task
            chunks = [todo[i:i + size] for i in range(0, len(todo), size)]

            def on_results(results: list[dict]) -> None:
                for result in results:
                    bar.update(task, description=printable(result["clip_id"]))
                    handle(result)
                    bar.advance(task)

            def lost(chunk, error: BaseException) -> list[dict]:
                reason = f"worker lost {engine.max_retries + 1} times ({type(error).__name__}: {error})"
                return [{"clip_id": c, "status": "failed", "path": p, "error": "WorkerLost", "reason": reason}
                        for c, p, _, _ in chunk]

            threads = engine.threads_per_worker()
            run_chunks(engine, run_chunk, chunks, lambda chunk: (str(out_dir), config, chunk, engine.device, threads),
                       on_results, lost)

    summary.failed = len(summary.failures)
    summary.seconds = time.perf_counter() - t_start
    write_manifest(out_dir / _run_file(MANIFEST_FILE, run_name), config, items, summary, previous_failures, engine_info)
    return summary


def _run_file(name: str, run_name: str) -> str:
    """``failures.jsonl`` -> ``failures.shard-0-of-4.jsonl`` for a named run."""
    if not run_name:
        return name
    stem, dot, suffix = name.partition(".")
    return f"{stem}.{run_name}{dot}{suffix}"


def write_manifest(path: Path, config: ExtractConfig, items, summary: ExtractionSummary, previous_failures,
                   executor: dict | None = None) -> None:
    from textualize.versions import library_versions

    failed = {f["clip_id"] for f in summary.failures}
    atomic_write_json(
        path,
        {
            "stage": "extract-cues",
            "schema_version": SCHEMA_VERSION,
            "extractor_version": EXTRACTOR_VERSION,
            "config": asdict(config),
            "executor": executor or {"name": "local"},
            "versions": library_versions(),
            "counts": {"total": summary.total, "extracted": summary.done, "cached": summary.cached,
                       "failed": summary.failed, "missing_cues": summary.missing},
            "clips": [{"clip_id": c, "path": str(p), "status": "failed" if c in failed else "ok"} for c, p in items],
            "previously_failed": sorted(set(previous_failures) - {None}),
        },
    )


def expand_inputs(paths: Iterable[str | Path], suffixes: set[str] = MEDIA_SUFFIXES | TABLE_SUFFIXES) -> list[Path]:
    """Files as given; folders expand to the media files inside them (sorted, recursive). A link
    with a media suffix that leads nowhere (dangling, or a loop) is kept, so it becomes a failure
    line instead of silently vanishing; links to folders are not followed (no cycles)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.suffix.lower() in suffixes
                              and (q.is_file() or (q.is_symlink() and not q.is_dir()))))
        else:
            out.append(p)  # a missing file is reported as a failure, not dropped
    return out
