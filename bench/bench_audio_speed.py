"""Audio-cue speed, old beside new, measured in the same run and interleaved clip by clip.

    python bench/bench_audio_speed.py [--short N] [--threads 2] [--profile]

old = the audio step as it was: ASR, then prosody ``measure(words)``, then ``lld`` (one after the
other). new = the audio step now: the prosody backend's word-independent pass runs in a thread
beside ASR; ``--batched-min-s S`` also sends audio of at least S seconds through faster-whisper's
BatchedInferencePipeline (opt-in; bench_asr_batched.py measures it on long audio). Both use the offline
defaults (Whisper tiny.en int8 beam 5, openSMILE eGeMAPS) through ``textualize.extract.Extractor``
with the same loaded models; the prosody backend's per-clip memo is cleared before every run so
neither variant reuses the other's work. Short clips: EmoDB utterances (2-3 s; the MELD case),
else the CREMA-D demo clips; long: espeak-ng passages of about 60 s and 3 min. Old and new
alternate which goes first. ``--profile`` adds a cProfile of the old path on the short clips.
The load average is printed: other jobs on the machine depress every wall-clock figure alike.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _short_clips(n: int):
    from textualize.media import load_audio

    shared = Path(os.environ.get("TEXTUALIZE_SHARED", REPO.parent / "shared"))
    emodb = sorted((shared / "data" / "emodb").glob("*.wav"))
    if emodb:
        step = max(1, len(emodb) // n)
        return "EmoDB", [load_audio(p, 16_000) for p in emodb[::step][:n]]
    from textualize.demo import fetch_demo_corpus

    paths = sorted(p for p in fetch_demo_corpus().iterdir() if p.suffix == ".mp3")[:n]
    return "CREMA-D demo", [load_audio(p, 16_000) for p in paths]


def _reset_memos(prosody) -> None:
    from textualize.audio_cues.speech_rate import LastClipMemo

    for k, v in list(vars(prosody).items()):
        if isinstance(v, LastClipMemo):
            setattr(prosody, k, LastClipMemo())


def audio_step(ext, audio: np.ndarray, concurrent: bool = True, batched_min_s: float | None = None) -> float:
    """Wall seconds of one clip's audio step as ``extract-cues`` runs it (ASR, prosody ``measure(words)``,
    ``lld``) on ``ext`` (a ``CueExtractor``), prosody memos cleared first so no run reuses another's work."""
    _reset_memos(ext.prosody)
    ext.concurrent_prosody = concurrent
    ext.asr.batched_min_s = batched_min_s
    t0 = time.perf_counter()
    transcript = ext._transcribe_priming_prosody(audio)
    ext.prosody.measure(audio, 16_000, words=getattr(transcript, "words", None))
    ext.prosody.lld(audio, 16_000)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--short", type=int, default=24, help="number of short clips")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-long", action="store_true", help="skip the 60 s / 2 min inputs")
    ap.add_argument("--profile", action="store_true", help="cProfile the old path on the short clips")
    ap.add_argument("--batched-min-s", type=float, default=None, help="new path: batched ASR from this length")
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    from textualize.extract import CueExtractor, ExtractConfig

    ext = CueExtractor(ExtractConfig(visual=False))
    corpus, short = _short_clips(args.short)
    sets = [(f"{len(short)} {corpus} clips", short)]
    if not args.no_long:
        from bench.bench_audio_cues import PASSAGE, VOICES, espeak

        passages = [espeak(PASSAGE, v) for v in VOICES[:2]]
        sets += [("~60 s espeak speech", passages[:1]), ("~2 min espeak speech", [np.concatenate(passages)])]

    def step(audio: np.ndarray, new: bool) -> float:
        return audio_step(ext, audio, concurrent=new, batched_min_s=args.batched_min_s if new else None)

    step(short[0], False), step(short[0], True)  # warm-up: first-call costs are not per clip
    load0 = os.getloadavg()
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, threads={args.threads}; "
          f"load average at start {load0[0]:.1f} / {load0[1]:.1f} / {load0[2]:.1f} (1/5/15 min)")
    print("| input | audio s | old s | new s | old x RT | new x RT | old clips/s | new clips/s | speed-up |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, audios in sets:
        seconds = sum(a.size for a in audios) / 16_000
        t_old = t_new = 0.0
        for i, a in enumerate(audios):
            order = (False, True) if i % 2 == 0 else (True, False)
            for new in order:
                dt = step(a, new)
                if new:
                    t_new += dt
                else:
                    t_old += dt
        n = len(audios)
        print(f"| {name} | {seconds:.1f} | {t_old:.2f} | {t_new:.2f} | {seconds / t_old:.1f} | {seconds / t_new:.1f} | "
              f"{n / t_old:.2f} | {n / t_new:.2f} | {t_old / t_new:.2f}x |")
    load1 = os.getloadavg()
    print(f"load average at end {load1[0]:.1f} / {load1[1]:.1f} / {load1[2]:.1f}")

    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        for a in short:
            step(a, False)
        prof.disable()
        stats = pstats.Stats(prof)
        total = sum(v[3] for k, v in stats.stats.items() if k[2] == "step") or 1.0
        print(f"\nwhere the time goes, old path, {len(short)} short clips ({total:.1f} s wall in cProfile):")
        rows = []
        wanted = {
            "VAD gate (Silero, backend)": ("asr_faster_whisper.py", "silero_vad_spans"),
            "Whisper transcribe (incl. its own VAD pass)": ("transcribe.py", "transcribe"),
            "  of which Silero VAD inside faster-whisper": ("vad.py", "get_speech_timestamps"),
            "  of which encoder": ("transcribe.py", "encode"),
            "  of which word alignment": ("transcribe.py", "add_word_timestamps"),
            "prosody measure (openSMILE LLD + functionals, timing)": ("prosody_opensmile.py", "measure"),
            "  of which speech timing (intensity, nuclei)": ("speech_rate.py", "speech_timing"),
            "prosody lld (memo hit)": ("prosody_opensmile.py", "lld"),
        }
        for label, (file, func) in wanted.items():
            cum = sum(v[3] for k, v in stats.stats.items() if k[0].endswith(file) and k[2] == func)
            rows.append((label, cum))
        for label, cum in rows:
            print(f"  {label:<58} {cum:6.2f} s  {100 * cum / total:5.1f} %")


if __name__ == "__main__":
    main()
