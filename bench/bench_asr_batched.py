"""Long audio: faster-whisper's batched pipeline beside the sequential decode, old beside new.

    python bench/bench_asr_batched.py [--threads 2] [--voices 1 2 10] [--batch-size 8]
                                      [--beam-size 5] [--batched-beam-size 1]

Old = the sequential path with ``--beam-size`` (5: the old default for all audio); new = the
batched path with ``--batched-beam-size`` (1: today's default for audio of at least 60 s).

Inputs: espeak-ng readings of the bench passage (about 53 s per voice), one voice, two voices and
ten voices joined (about 53 s, 106 s, 9 min), so the reference text is known. For each input, in
the same process with the same loaded model, alternating which goes first:

- ASR alone: ``FasterWhisperASR.transcribe`` sequential (``batched_min_s=None``, the old default:
  windows one after the other, each conditioned on the previous window's text) and batched
  (``batched_min_s`` set: the gate's voiced chunks grouped into windows of at most 30 s, decoded
  ``--batch-size`` windows per call, word timestamps from one alignment call per batch);
- the whole audio step (ASR with openSMILE's one pass for LLDs and functionals beside it, then
  ``measure(words)`` and ``lld``), as ``extract-cues`` runs it, with each ASR path;
- word error rate of each transcript against the passage text (Whisper's EnglishTextNormalizer),
  and the median gap between a word's start on the two paths (nearest same word in time).

Offline defaults: Whisper tiny.en int8, Silero VAD, word timestamps, openSMILE eGeMAPS.
The load average is printed: other jobs on the machine depress every wall-clock figure alike.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def wer(ref: str, hyp: str) -> float:
    import jiwer
    from whisper.normalizers import EnglishTextNormalizer

    norm = EnglishTextNormalizer()
    return float(jiwer.wer(norm(ref), norm(hyp)))


def start_gap_s(a, b) -> float:
    """Median over a's words of |start - start of the nearest word of b with the same text| (nearest
    in time: the passage repeats, so matching by order alone would pair different readings)."""
    import bisect

    def key(w):
        return w.text.lower().strip(".,!?;:\"'")

    starts: dict[str, list[float]] = {}
    for w in b.words:
        starts.setdefault(key(w), []).append(w.start_s)
    gaps = []
    for w in a.words:
        s = sorted(starts.get(key(w), []))
        if s:
            i = bisect.bisect_left(s, w.start_s)
            gaps.append(min(abs(w.start_s - s[j]) for j in (i - 1, i) if 0 <= j < len(s)))
    return float(np.median(gaps)) if gaps else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--voices", type=int, nargs="+", default=[1, 2, 10], help="passages joined per input")
    ap.add_argument("--batch-size", type=int, default=8, help="windows per batched encoder/decoder call")
    ap.add_argument("--beam-size", type=int, default=5, help="beam on the sequential path (old)")
    ap.add_argument("--batched-beam-size", type=int, default=None,
                    help="beam on the batched path (new); default: ExtractConfig's (greedy)")
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(REPO))
    from bench.bench_audio_cues import PASSAGE, VOICES, espeak
    from bench.bench_audio_speed import audio_step
    from textualize.extract import CueExtractor, ExtractConfig

    config = ExtractConfig(visual=False, beam_size=args.beam_size)
    if args.batched_beam_size is not None:
        config.asr_batched_beam_size = args.batched_beam_size
    ext = CueExtractor(config)
    asr = ext.asr
    asr.batch_size = args.batch_size
    passages = [espeak(PASSAGE, v) for v in VOICES[: max(args.voices)]]
    inputs = [(n, np.concatenate(passages[:n]), " ".join([PASSAGE] * n)) for n in args.voices]

    def asr_only(audio, batched: bool):
        asr.batched_min_s = 1.0 if batched else None
        t0 = time.perf_counter()
        c0 = time.process_time()
        t = asr.transcribe(audio, 16_000)
        return t, time.perf_counter() - t0, time.process_time() - c0

    asr_only(passages[0][: 16_000 * 5], False), asr_only(passages[0][: 16_000 * 5], True)  # warm-up
    load0 = os.getloadavg()
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, threads={args.threads}, beam {args.beam_size} "
          f"sequential / {config.batched_beam_size()} batched, "
          f"batch {args.batch_size}; load average at start {load0[0]:.1f} / {load0[1]:.1f} / {load0[2]:.1f}")
    print("| input | audio s | path | ASR s | ASR × RT | ASR CPU s | audio step s | step × RT | WER vs text |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for i, (n, audio, ref) in enumerate(inputs):
        seconds = audio.size / 16_000
        order = (False, True) if i % 2 == 0 else (True, False)
        res = {}
        for batched in order:
            t, wall, cpu = asr_only(audio, batched)
            step_wall = audio_step(ext, audio, batched_min_s=1.0 if batched else None)
            res[batched] = (t, wall, cpu, step_wall)
        for batched in (False, True):
            t, wall, cpu, step_wall = res[batched]
            name = "batched (new)" if batched else "sequential (old)"
            windows = t.provenance.params.get("windows", "") if batched else ""
            print(f"| {n} voice(s) | {seconds:.1f} | {name}{f', {windows} windows' if windows else ''} | {wall:.2f} | "
                  f"{seconds / wall:.1f} | {cpu:.2f} | {step_wall:.2f} | {seconds / step_wall:.1f} | {wer(ref, t.text):.3f} |")
        print(f"|   | | batched vs sequential: WER {wer(res[False][0].text, res[True][0].text):.3f}, median word-start "
              f"gap {start_gap_s(res[False][0], res[True][0]):.3f} s | | | | | | |")
    load1 = os.getloadavg()
    print(f"load average at end {load1[0]:.1f} / {load1[1]:.1f} / {load1[2]:.1f}")


if __name__ == "__main__":
    main()
