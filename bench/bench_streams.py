"""Stream-extractor cost per clip: `textualize build-streams` on the 12 CREMA-D demo clips
(6 talking-face FLVs of ~2.3 s, 6 audio-only MP3s), one extractor at a time, cold per-clip caches,
then the whole warm rerun (every per-clip cache hit) for comparison.

    OMP_NUM_THREADS=2 python bench/bench_streams.py [--work /tmp/bench_streams]

Builds the dataset first (cue stage, not timed here: see bench_visual / bench_audio_cues). Times
are wall seconds per clip that has the stream's input (videos for face streams, all 12 otherwise):
a cold run (no per-clip cache) minus a warm rerun (cache hits), so model loading once is included.
"""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

STREAMS = ("face_au", "face_blendshapes", "face_landmarks", "face_dlib", "face_fer", "audio_lld", "audio_whisper", "text_emb")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/bench_streams")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    from textualize.build import BuildConfig, build_dataset
    from textualize.demo import crema_d_label, fetch_demo_corpus
    from textualize.extract import ExtractConfig
    from textualize.streams.writer import StreamsConfig, build_streams

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    crema = fetch_demo_corpus()
    clips = sorted(crema.glob("1001_*.flv")) + sorted(crema.glob("1002_*.mp3"))
    rows = ["path,label,split,speaker"] + [f"{p},{crema_d_label(p)},train,{p.name[:4]}" for p in clips]
    (work / "m.csv").write_text("\n".join(rows) + "\n")
    out = work / "ds"
    if not (out / "manifest.json").exists():
        build_dataset(BuildConfig(dataset="manifest", root=str(work / "m.csv"), out=str(out)), progress=False, log=lambda m: None)
    quiet = dict(progress=False, log=lambda m: None)
    print("| stream | clips with input | cold run s | warm rerun s | extraction s per clip (cold - warm) / clips |")
    print("|---|---:|---:|---:|---:|")
    total_cold = 0.0
    for name in STREAMS:
        shutil.rmtree(out / "cues" / "streams" / name, ignore_errors=True)
        t0 = time.perf_counter()
        build_streams(StreamsConfig(str(out), streams=(name,), force=True), **quiet)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        build_streams(StreamsConfig(str(out), streams=(name,), force=True), **quiet)
        warm = time.perf_counter() - t0
        total_cold += cold
        n = 6 if name.startswith("face") else 12
        print(f"| {name} | {n} | {cold:.2f} | {warm:.2f} | {(cold - warm) / n:.3f} |", flush=True)
    t0 = time.perf_counter()
    build_streams(StreamsConfig(str(out), streams=STREAMS, force=True), **quiet)
    warm = time.perf_counter() - t0
    print(f"\nall 8 streams, warm per-clip caches (align + normalise + write 12 samples): {warm:.2f} s "
          f"({warm / 12:.3f} s per clip); cold sum over streams {total_cold:.1f} s")


if __name__ == "__main__":
    main()
