"""ASR packing of short clips (``--asr-pack``), old beside new in one run, interleaved by set.

    python bench/bench_asr_packing.py [--emodb 24] [--threads 2] [--window]

old = the audio step per clip as ``extract-cues`` runs it without packing (ASR with prosody's
first pass beside it, then prosody ``measure(words)`` and ``lld``). new = ``--asr-pack``: the
clips' ASR packed (one Whisper encoder pass per ~29 s of short clips, each clip decoded on its
own) on a background thread while prosody runs clip by clip. Same loaded models, offline
defaults (tiny.en int8 beam 5, openSMILE eGeMAPS). Inputs: EmoDB utterances from ../shared
(German, 2-3 s: a speed case; tiny.en's English guesses at German are unstable), the 12
CREMA-D demo clips (English, 2-3 s, one sentence) and the sentences of bench_audio_cues' English
passage spoken by espeak-ng in varied voices (2-6 s). Agreement: word error rate of the packed transcripts
against the per-clip ones (Whisper's EnglishTextNormalizer), beside the per-clip path against
itself run twice (its temperature fallback samples, so it is not deterministic on hard clips).
A profile splits the packed ASR into encoder, per-clip decoding, alignment and the rest.
``--window`` also measures the rejected variant (one decode for the whole pack).
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _sets(n_emodb: int):
    from textualize.demo import fetch_demo_corpus
    from textualize.media import load_audio

    shared = Path(os.environ.get("TEXTUALIZE_SHARED", REPO.parent / "shared"))
    out = []
    emodb = sorted((shared / "data" / "emodb").glob("*.wav"))
    if emodb:
        step = max(1, len(emodb) // n_emodb)
        out.append((f"{n_emodb} EmoDB clips", [load_audio(p, 16_000) for p in emodb[::step][:n_emodb]]))
    out.append(("12 CREMA-D demo clips", [load_audio(p, 16_000) for p in sorted(fetch_demo_corpus().iterdir())]))
    from bench.bench_audio_cues import PASSAGE, VOICES, espeak

    sentences = [s.strip() + "." for s in PASSAGE.split(". ") if s.strip()]
    out.append((f"{len(sentences)} espeak-ng sentences", [espeak(s, VOICES[i % len(VOICES)]) for i, s in enumerate(sentences)]))
    return out


class _Timed:
    """Wraps the CTranslate2 Whisper model to time generate/align calls (its attributes are read-only)."""

    def __init__(self, model, clock: dict):
        self._m, self._clock = model, clock

    def __getattr__(self, k):
        return getattr(self._m, k)

    def _timed(self, key, fn, *a, **kw):
        t = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            self._clock[key] = self._clock.get(key, 0.0) + time.perf_counter() - t

    def generate(self, *a, **kw):
        return self._timed("decode", self._m.generate, *a, **kw)

    def align(self, *a, **kw):
        return self._timed("align", self._m.align, *a, **kw)

    def encode(self, *a, **kw):
        return self._timed("encode", self._m.encode, *a, **kw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--emodb", type=int, default=24)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--window", action="store_true", help="also the one-decode-per-pack variant")
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import jiwer
    import torch
    from whisper.normalizers import EnglishTextNormalizer

    from bench.bench_audio_speed import _reset_memos
    from textualize.audio_cues.asr_packing import PackedTranscriber, transcribe_in_background
    from textualize.extract import CueExtractor, ExtractConfig

    torch.set_num_threads(args.threads)
    ext = CueExtractor(ExtractConfig(visual=False))
    asr, prosody = ext.asr, ext.prosody
    clock: dict[str, float] = {}
    asr.model.model = _Timed(asr.model.model, clock)
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1)
    normalise = EnglishTextNormalizer()

    def old_step(audios):
        out = []
        for a in audios:
            _reset_memos(prosody)
            tr = ext._transcribe_priming_prosody(a)
            prosody.measure(a, 16_000, words=getattr(tr, "words", None))
            prosody.lld(a, 16_000)
            out.append(tr)
        return out

    prosody_s = [0.0]

    def new_step(audios):
        futures = transcribe_in_background(asr, {i: (lambda a=a: a) for i, a in enumerate(audios)}, pool)
        out = []
        for i in range(len(audios)):
            a, tr = futures[i].result()
            _reset_memos(prosody)
            t = time.perf_counter()
            prosody.measure(a, 16_000, words=getattr(tr, "words", None))
            prosody.lld(a, 16_000)
            prosody_s[0] += time.perf_counter() - t
            out.append(tr)
        return out

    def text(t):
        return normalise(getattr(t, "text", "")) or "<none>"

    sets = _sets(args.emodb)
    old_step(sets[-1][1][:1]), new_step(sets[-1][1][:2])  # warm-up
    load0 = os.getloadavg()
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, threads={args.threads}; "
          f"load average at start {load0[0]:.1f} / {load0[1]:.1f} / {load0[2]:.1f} (1/5/15 min)\n")
    print("| input | audio s | path | wall s | clips/s | x real time | CPU s | ASR-only s | ASR x RT |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    agreement, profiles = [], []
    for name, audios in sets:
        seconds = sum(a.size for a in audios) / 16_000
        c = time.process_time(); t = time.perf_counter(); old = old_step(audios); t_old = time.perf_counter() - t
        c_old = time.process_time() - c
        prosody_s[0] = 0.0
        c = time.process_time(); t = time.perf_counter(); new = new_step(audios); t_new = time.perf_counter() - t
        c_new = time.process_time() - c
        t_prosody = prosody_s[0]
        t = time.perf_counter(); solo2 = [asr.transcribe(a) for a in audios]; t_asr_old = time.perf_counter() - t
        clock.clear()
        transcriber = PackedTranscriber(asr)
        t = time.perf_counter(); packed = transcriber.transcribe_many(audios); t_asr_new = time.perf_counter() - t
        prof = dict(clock, total=t_asr_new, prosody=t_prosody)
        n = len(audios)
        for label, wall, cpu, asr_s in (("per clip (old)", t_old, c_old, t_asr_old), ("packed (new)", t_new, c_new, t_asr_new)):
            print(f"| {name} | {seconds:.1f} | {label} | {wall:.2f} | {n / wall:.2f} | {seconds / wall:.1f} | "
                  f"{cpu:.2f} | {asr_s:.2f} | {seconds / asr_s:.1f} |")
        refs = [text(t) for t in old]
        row = {"set": name, "n": n, "stats": transcriber.stats,
               "wer_packed": jiwer.wer(refs, [text(t) for t in packed]),
               "wer_packed_in_step": jiwer.wer(refs, [text(t) for t in new]),
               "wer_solo_rerun": jiwer.wer(refs, [text(t) for t in solo2]),
               "same_text": sum(a == b for a, b in zip(refs, [text(t) for t in packed]))}
        if args.window:
            w = PackedTranscriber(asr, mode="window").transcribe_many(audios)
            row["wer_window"] = jiwer.wer(refs, [text(t) for t in w])
        agreement.append(row)
        profiles.append((name, prof))
    print("\n| input | packed vs per-clip WER | same text | per-clip rerun WER | packed clips / fallbacks to per-clip |"
          + (" one-decode-per-pack WER |" if args.window else ""))
    print("|---|---:|---:|---:|---|" + ("---:|" if args.window else ""))
    for r in agreement:
        s = r["stats"]
        print(f"| {r['set']} | {r['wer_packed']:.3f} (in the step: {r['wer_packed_in_step']:.3f}) | {r['same_text']}/{r['n']} | "
              f"{r['wer_solo_rerun']:.3f} | {s['packed_clips']} in {s['packs']} packs / {s['fallback']} |"
              + (f" {r['wer_window']:.3f} |" if args.window else ""))
    print("\nwhere the packed ASR time goes (s):")
    for name, p in profiles:
        other = p["total"] - p.get("encode", 0) - p.get("decode", 0) - p.get("align", 0)
        print(f"  {name}: total {p['total']:.2f} = encoder {p.get('encode', 0):.2f} + decoding {p.get('decode', 0):.2f} "
              f"+ word alignment {p.get('align', 0):.2f} + VAD/features/other {other:.2f}; "
              f"prosody (measure + LLD, main thread, beside the ASR thread) {p['prosody']:.2f}")
    load1 = os.getloadavg()
    print(f"\nload average at end {load1[0]:.1f} / {load1[1]:.1f} / {load1[2]:.1f}")
    pool.shutdown()


if __name__ == "__main__":
    main()
