"""Benchmark: audio cues (ASR + prosody + LLD sequences) with the offline defaults, x real time.

    python bench/bench_audio_cues.py [--threads 2]

Target (issue "Foundation"): at least 30x real time on 2 CPU cores. Inputs: the six real CREMA-D
mp3s (2-3 s each) and espeak-ng speech of a varied English passage (about 60 s; ten different
passages make 10 min). The same sentence repeated would make Whisper's compression-ratio check
fire and re-decode at higher temperatures, which measures a pathology, not the pipeline. Each
stage is timed separately on the decoded 16 kHz audio (decoding is reported apart), with Whisper
beam 5 (its default) and beam 1 (greedy). Prints a markdown table.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


PASSAGE = (
    "When the committee met on Thursday morning, nobody expected the budget to be approved so quickly. "
    "Maria had prepared three different proposals, each with its own spreadsheet and a short summary "
    "for the directors who never read the details. The first plan cut travel by half, the second moved "
    "the research lab to a cheaper building near the river, and the third simply asked for more time. "
    "To everyone's surprise, the chairman picked the second plan after only ten minutes of discussion. "
    "Some of the engineers were delighted, because the new building had larger windows and a quiet "
    "garden, while others worried about the longer commute and the unreliable bus service. In the "
    "afternoon, a small group gathered in the kitchen to talk it over, drinking coffee and arguing about "
    "whether the decision had been made before the meeting even started."
)
VOICES = ["en-us", "en", "en-us+m3", "en+f2", "en-us+f3", "en+m5", "en-us+m7", "en+f4", "en-us+m2", "en+f5"]


def espeak(text: str, voice: str) -> np.ndarray:
    import shutil
    import subprocess
    import tempfile

    from textualize.media import load_audio

    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SystemExit("espeak-ng is needed for this benchmark (apt-get install espeak-ng)")
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        subprocess.run([exe, "-v", voice, "-s", "150", "-w", f.name, text], check=True)
        return load_audio(f.name)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from textualize.demo import fetch_demo_corpus
    from textualize.media import load_audio
    from textualize.registry import ASR_BACKENDS, PROSODY_BACKENDS

    corpus = fetch_demo_corpus()
    mp3s = sorted(corpus.glob("1002_*.mp3"))
    t0 = time.perf_counter()
    clips = [load_audio(p) for p in mp3s]
    decode_s = time.perf_counter() - t0
    passages = [espeak(PASSAGE, voice) for voice in VOICES]
    sets = {"6 CREMA-D clips": clips, "~60 s espeak speech": passages[:1], "~10 min espeak speech": [np.concatenate(passages)]}
    audio_total = sum(c.size for c in clips) / 16000
    print(f"decoding the 6 mp3s: {decode_s:.2f} s for {audio_total:.1f} s of audio ({audio_total / decode_s:.0f}x real time)\n")

    prosody = PROSODY_BACKENDS.get("opensmile")()
    print("| input | beam | audio s | ASR s | prosody s | LLD s | total x real time | ASR x RT | prosody+LLD x RT |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for beam in (5, 1):
        asr = ASR_BACKENDS.get("faster-whisper")(beam_size=beam, cpu_threads=args.threads)
        asr.transcribe(clips[0])  # warm-up: model load and first-call costs are not per clip
        prosody.measure(clips[0])
        for name, audios in sets.items():
            seconds = sum(a.size for a in audios) / 16000
            t_asr = t_pro = t_lld = 0.0
            for a in audios:
                t = time.perf_counter()
                tr = asr.transcribe(a)
                t_asr += time.perf_counter() - t
                words = getattr(tr, "words", None)
                t = time.perf_counter()
                prosody.measure(a, words=words)
                t_pro += time.perf_counter() - t
                t = time.perf_counter()
                prosody.lld(a)
                t_lld += time.perf_counter() - t
            total = t_asr + t_pro + t_lld
            print(f"| {name} | {beam} | {seconds:.1f} | {t_asr:.2f} | {t_pro:.2f} | {t_lld:.2f} | {seconds / total:.1f} | "
                  f"{seconds / t_asr:.1f} | {seconds / (t_pro + t_lld):.1f} |")


if __name__ == "__main__":
    main()
