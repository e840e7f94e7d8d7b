"""faster-whisper vs openai-whisper on the same Whisper tiny.en weights and the same audio.

Sets: the 6 CREMA-D MP3s ("Don't forget a jacket."), espeak-ng speech (known text), and a ~60 s
concatenation of all 12 CREMA-D clips and espeak passages with short pauses. Reports speed as
audio seconds per wall second ("x real time", higher is faster), CPU seconds (robust to a busy
shared machine), the faster/openai speed ratio, and corpus WER against the known transcripts (after Whisper's EnglishTextNormalizer).

    python bench/bench_asr.py [--threads 2] [--backends faster-whisper openai-whisper]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import jiwer
import numpy as np
from whisper.normalizers import EnglishTextNormalizer

from textualize.cues import MissingCue
from textualize.demo import CREMA_D_SENTENCES, fetch_demo_corpus
from textualize.media import load_audio
from textualize.registry import ASR_BACKENDS

SR = 16_000
ESPEAK_PASSAGES = [
    "The quick brown fox jumps over the lazy dog. I am very happy to see you today.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "We will meet again next week to talk about the results of the study.",
    "It was a bright cold day in April, and the clocks were striking thirteen.",
]


def espeak(text: str, folder: Path) -> np.ndarray:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SystemExit("espeak-ng is needed for this benchmark (apt-get install espeak-ng)")
    out = folder / f"espeak_{abs(hash(text))}.wav"
    subprocess.run([exe, "-v", "en-us", "-s", "150", "-w", str(out), text], check=True)
    return load_audio(out, SR)


def build_sets(folder: Path) -> dict[str, list[tuple[np.ndarray, str]]]:
    corpus = fetch_demo_corpus()
    crema_text = CREMA_D_SENTENCES["DFA"]
    mp3 = [(load_audio(p, SR), crema_text) for p in sorted(corpus.glob("1002_DFA_*.mp3"))]
    flv = [(load_audio(p, SR), crema_text) for p in sorted(corpus.glob("1001_DFA_*.flv"))]
    speech = [(espeak(t, folder), t) for t in ESPEAK_PASSAGES]
    pause = np.zeros(int(0.7 * SR), np.float32)
    pieces, texts = [], []
    for i, (audio, text) in enumerate(mp3 + flv):  # interleave the clips with the espeak passages
        pieces += [audio, pause]
        texts.append(text)
        if i % 3 == 2:
            s_audio, s_text = speech[(i // 3) % len(speech)]
            pieces += [s_audio, pause]
            texts.append(s_text)
    long = [(np.concatenate(pieces), " ".join(texts))]
    return {"crema-d mp3 (6)": mp3, "espeak (4)": speech, f"concat {len(long[0][0]) / SR:.0f} s (1)": long}


def run_set(backend, items) -> dict:
    hyps, refs = [], []
    audio_s = sum(len(a) / SR for a, _ in items)
    c0, t0 = os.times(), time.perf_counter()
    for audio, ref in items:
        result = backend.transcribe(audio)
        hyps.append("" if isinstance(result, MissingCue) else result.text)
        refs.append(ref)
    wall = time.perf_counter() - t0
    c1 = os.times()
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    normalise = EnglishTextNormalizer()  # Whisper's WER normaliser: case, punctuation, "thirteen" == "13"
    wer = jiwer.wer([normalise(r) for r in refs], [normalise(h) or "<empty>" for h in hyps])
    return {"audio_s": audio_s, "wall_s": wall, "cpu_s": cpu, "x_rt": audio_s / wall, "wer": wer, "hyps": hyps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backends", nargs="+", default=["faster-whisper", "openai-whisper"])
    parser.add_argument("--show-text", action="store_true", help="print every hypothesis")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        sets = build_sets(Path(tmp))
    results: dict[str, dict[str, dict]] = {}
    load_before = os.getloadavg()
    for name in args.backends:
        t0 = time.perf_counter()
        backend = ASR_BACKENDS.get(name)(cpu_threads=args.threads)
        load_s = time.perf_counter() - t0
        backend.transcribe(next(iter(sets.values()))[0][0])  # warm-up (JIT, allocators), not timed
        results[name] = {set_name: run_set(backend, items) for set_name, items in sets.items()}
        print(f"# {name}: model {backend.model_name!r} loaded in {load_s:.1f} s")
        del backend

    print(f"\nWhisper tiny.en (same weights), {args.threads} CPU threads, "
          f"load average before/after: {load_before[0]:.1f}/{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print("| set | backend | audio s | wall s | CPU s | x real time | WER |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for set_name in sets:
        for name in args.backends:
            r = results[name][set_name]
            print(f"| {set_name} | {name} | {r['audio_s']:.1f} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | "
                  f"{r['x_rt']:.2f} | {r['wer']:.3f} |")
    if len(args.backends) == 2:
        a, b = args.backends
        print(f"\n| set | speed ratio {a} / {b} (wall) | (CPU) |")
        print("|---|---:|---:|")
        for set_name in sets:
            ra, rb = results[a][set_name], results[b][set_name]
            print(f"| {set_name} | {rb['wall_s'] / ra['wall_s']:.2f} | {rb['cpu_s'] / ra['cpu_s']:.2f} |")
    if args.show_text:
        for name in args.backends:
            for set_name in sets:
                for h in results[name][set_name]["hyps"]:
                    print(f"{name} | {set_name} | {h}")


if __name__ == "__main__":
    main()
