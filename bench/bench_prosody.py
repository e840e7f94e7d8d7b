"""Real-time factor (audio seconds / wall seconds) of the prosody backends on real speech.

Runs each backend over EmoDB utterances from ../shared (or the CREMA-D demo clips when ../shared
is absent) and over one 60 s concatenation of them, after one warm-up call (pYIN's numba kernels
compile on first use). Also times librosa's pitch-tracker settings, and prints how well the two
backends agree on clip pitch. Usage: python bench/bench_prosody.py [--files N] [--threads T]
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _clips(limit: int) -> tuple[str, list[Path]]:
    shared = Path(os.environ.get("TEXTUALIZE_SHARED", REPO.parent / "shared"))
    emodb = sorted((shared / "data" / "emodb").glob("*.wav"))
    if emodb:
        step = max(1, len(emodb) // limit)
        return "EmoDB", emodb[::step][:limit]
    from textualize.demo import fetch_demo_corpus

    return "CREMA-D demo", sorted(p for p in fetch_demo_corpus().iterdir() if p.suffix in (".mp3", ".flv"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--files", type=int, default=60, help="number of corpus clips to time")
    ap.add_argument("--threads", type=int, default=2, help="OMP/BLAS threads (machine has 2 cores)")
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import numpy as np

    from textualize.media import load_audio
    from textualize.cues import ProsodyCues
    from textualize.registry import PROSODY_BACKENDS

    corpus, paths = _clips(args.files)
    audios = [load_audio(p, 16_000) for p in paths]
    total_s = sum(a.size for a in audios) / 16_000
    long = np.concatenate(audios)
    long = np.concatenate([long] * int(np.ceil(60 * 16_000 / long.size)))[: 60 * 16_000]
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, threads={args.threads}; "
          f"corpus: {corpus}, {len(audios)} clips, {total_s:.1f} s of audio")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average at start: {load:.1f} (wall-clock RTF is depressed when other jobs share the CPUs;"
          " CPU RTF = audio s / process CPU s is not)")
    print(f"{'backend':<28}{'init s':>8}{'warm-up s':>11}{'corpus RTF':>12}{'CPU RTF':>9}{'ms/clip':>9}"
          f"{'60 s RTF':>10}{'CPU RTF':>9}")
    results = {}
    configs = [
        ("opensmile", {}),
        ("librosa", {}),  # defaults: 10 ms hop, 0.2 st bins
        ("librosa", {"pitch_hop_s": 0.02}),
        ("librosa", {"resolution_st": 0.1}),  # librosa's own default bin width
    ]
    for name, opts in configs:
        label = name + ("" if not opts else " " + ",".join(f"{k}={v}" for k, v in opts.items()))
        t0 = time.perf_counter()
        backend = PROSODY_BACKENDS.get(name)(window_s=2.0, hop_s=1.0, **opts)
        init = time.perf_counter() - t0
        t0 = time.perf_counter()
        backend.measure(audios[0])
        warm = time.perf_counter() - t0
        if opts.get("resolution_st") == 0.1:  # slow setting: time the 60 s signal only
            corpus_rtf = corpus_cpu = per_clip = float("nan")
            out = None
        else:
            t0, c0 = time.perf_counter(), time.process_time()
            out = [backend.measure(a) for a in audios]
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            corpus_rtf, corpus_cpu, per_clip = total_s / dt, total_s / dc, 1000 * dt / len(audios)
        t0, c0 = time.perf_counter(), time.process_time()
        backend.measure(long)
        long_rtf, long_cpu = 60.0 / (time.perf_counter() - t0), 60.0 / (time.process_time() - c0)
        if out is not None and not opts:
            results[name] = out
        print(f"{label:<28}{init:>8.2f}{warm:>11.2f}{corpus_rtf:>12.1f}{corpus_cpu:>9.1f}{per_clip:>9.0f}"
              f"{long_rtf:>10.1f}{long_cpu:>9.1f}")

    pairs = [(o.clip.pitch_mean_hz, lb.clip.pitch_mean_hz) for o, lb in zip(results["opensmile"], results["librosa"])
             if isinstance(o, ProsodyCues) and isinstance(lb, ProsodyCues)]
    missing = {k: sum(not isinstance(c, ProsodyCues) for c in v) for k, v in results.items()}
    x, y = np.array(pairs).T
    print(f"clip pitch agreement over {len(pairs)} clips: Pearson r = {np.corrcoef(x, y)[0, 1]:.3f}, "
          f"median |difference| = {np.median(np.abs(12 * np.log2(x / y))):.2f} semitones; "
          f"MissingCue per backend: {missing}")


if __name__ == "__main__":
    main()
