"""ASR packing of short clips (``--asr-pack``), old beside new in one run, interleaved by set.

    python bench/bench_asr_packing.py [--emodb 24] [--threads 2] [--window] [--no-espeak]

Paths, each run on every set one after the other (same process, same load): per clip (old);
packed, the clips of a pack decoded one by one (``batch_size=1``, PACK_VERSION 1); packed +
batched (one ``generate``/``align`` call per pack, the default since PACK_VERSION 2); and
packed + batched with greedy decoding (beam 1, i.e. ``--beam-size 1``). The whole audio step
(ASR + prosody) is timed for per clip, packed and packed + batched; ASR alone for all four.

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
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python bench/bench_asr_packing.py` imports bench.bench_audio_speed
    sys.path.insert(0, str(REPO))


def _sets(n_emodb: int):
    from textualize.demo import fetch_demo_corpus
    from textualize.media import load_audio

    shared = Path(os.environ.get("TEXTUALIZE_SHARED", REPO.parent / "shared"))
    out = []
    emodb = sorted((shared / "data" / "emodb").glob("*.wav"))
    if emodb and n_emodb > 0:
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
    ap.add_argument("--emodb", type=int, default=24, help="EmoDB clips from ../shared (0: none)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--window", action="store_true", help="also the one-decode-per-pack variant")
    ap.add_argument("--no-espeak", action="store_true", help="skip the espeak-ng sentences")
    ap.add_argument("--asr-threads", type=int, default=None,
                    help="CTranslate2 threads of the Whisper model (default: the backend's, min(4, CPUs))")
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import jiwer
    import torch
    from whisper.normalizers import EnglishTextNormalizer

    from bench.bench_audio_speed import _reset_memos
    from textualize.audio_cues.asr_packing import DECODE_BATCH, PackedTranscriber, transcribe_in_background
    from textualize.extract import CueExtractor, ExtractConfig
    from textualize.registry import ASR_BACKENDS

    torch.set_num_threads(args.threads)
    ext = CueExtractor(ExtractConfig(visual=False))
    if args.asr_threads:
        ext.asr = ASR_BACKENDS.get("faster-whisper")(cpu_threads=args.asr_threads)
    asr, prosody = ext.asr, ext.prosody
    greedy = ASR_BACKENDS.get("faster-whisper")(beam_size=1, **asr.model_kwargs)  # what --beam-size 1 builds
    clock: dict[str, float] = {}
    asr.model.model = _Timed(asr.model.model, clock)
    greedy.model.model = _Timed(greedy.model.model, clock)
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

    def new_step(audios, batch_size):
        futures = transcribe_in_background(asr, {i: (lambda a=a: a) for i, a in enumerate(audios)}, pool,
                                           batch_size=batch_size)
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

    def timed(fn, *a):
        c, t = time.process_time(), time.perf_counter()
        out = fn(*a)
        return out, time.perf_counter() - t, time.process_time() - c

    sets = _sets(args.emodb)
    if args.no_espeak:
        sets = [s for s in sets if "espeak" not in s[0]]
    old_step(sets[-1][1][:1]), new_step(sets[-1][1][:2], DECODE_BATCH)  # warm-up
    load0 = os.getloadavg()
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, threads={args.threads}, "
          f"CTranslate2 threads={asr.model_kwargs['cpu_threads']}; "
          f"load average at start {load0[0]:.1f} / {load0[1]:.1f} / {load0[2]:.1f} (1/5/15 min)\n")
    step_rows, asr_rows, agreement, profiles = [], [], [], []
    for name, audios in sets:
        seconds = sum(a.size for a in audios) / 16_000
        n = len(audios)
        # the whole audio step (ASR + prosody), the three paths one after the other
        old, t_old, c_old = timed(old_step, audios)
        prosody_s[0] = 0.0
        step_b1, t_b1, c_b1 = timed(new_step, audios, 1)
        prosody_s[0] = 0.0
        step_bb, t_bb, c_bb = timed(new_step, audios, DECODE_BATCH)
        t_prosody = prosody_s[0]
        for label, wall, cpu in (("per clip (old)", t_old, c_old), ("packed", t_b1, c_b1),
                                 ("packed + batched (new)", t_bb, c_bb)):
            step_rows.append(f"| {name} | {seconds:.1f} | {label} | {wall:.2f} | {n / wall:.2f} | {seconds / wall:.1f} | {cpu:.2f} |")
        # ASR alone, four paths
        solo2, t_solo, _ = timed(lambda: [asr.transcribe(a) for a in audios])
        results = {}
        for label, model, bs in (("packed", asr, 1), ("packed + batched", asr, DECODE_BATCH),
                                 ("packed + batched, beam 1", greedy, DECODE_BATCH)):
            clock.clear()
            tr = PackedTranscriber(model, batch_size=bs)
            out, wall, _ = timed(tr.transcribe_many, audios)
            results[label] = (out, wall, tr.stats, dict(clock, total=wall))
        refs = [text(t) for t in old]
        asr_rows.append(f"| {name} | {seconds:.1f} | per clip (old) | {t_solo:.2f} | {n / t_solo:.2f} | {seconds / t_solo:.1f} | "
                        f"{jiwer.wer(refs, [text(t) for t in solo2]):.3f} | {n}/{n} alone |")
        for label, (out, wall, stats, prof) in results.items():
            asr_rows.append(f"| {name} | {seconds:.1f} | {label} | {wall:.2f} | {n / wall:.2f} | {seconds / wall:.1f} | "
                            f"{jiwer.wer(refs, [text(t) for t in out]):.3f} | "
                            f"{stats['packed_clips']} in {stats['packs']} packs / {stats['fallback']} redone alone |")
            profiles.append((name, label, prof))
        row = {"set": name, "n": n,
               "step_b1": jiwer.wer(refs, [text(t) for t in step_b1]),
               "step_bb": jiwer.wer(refs, [text(t) for t in step_bb]),
               "b1_vs_bb": jiwer.wer([text(t) for t in results["packed"][0]], [text(t) for t in results["packed + batched"][0]]),
               "same_text": sum(a == text(b) for a, b in zip(refs, results["packed + batched"][0])),
               "prosody": t_prosody}
        if args.window:
            w = PackedTranscriber(asr, mode="window").transcribe_many(audios)
            row["wer_window"] = jiwer.wer(refs, [text(t) for t in w])
        agreement.append(row)
    print("whole audio step (ASR + prosody):\n")
    print("| input | audio s | path | wall s | clips/s | × real time | CPU s |")
    print("|---|---:|---|---:|---:|---:|---:|")
    print("\n".join(step_rows))
    print("\nASR alone (WER against the per-clip transcripts of the step above):\n")
    print("| input | audio s | path | wall s | clips/s | × real time | WER vs per clip | packed / redone alone |")
    print("|---|---:|---|---:|---:|---:|---:|---|")
    print("\n".join(asr_rows))
    print("\n| input | packed vs per clip, in the step | packed + batched vs per clip, in the step | "
          "packed vs packed + batched (ASR alone) | same text (batched) |" + (" one-decode-per-pack WER |" if args.window else ""))
    print("|---|---:|---:|---:|---:|" + ("---:|" if args.window else ""))
    for r in agreement:
        print(f"| {r['set']} | {r['step_b1']:.3f} | {r['step_bb']:.3f} | {r['b1_vs_bb']:.3f} | {r['same_text']}/{r['n']} |"
              + (f" {r['wer_window']:.3f} |" if args.window else ""))
    print("\nwhere the packed ASR time goes (s):")
    for name, label, p in profiles:
        other = p["total"] - p.get("encode", 0) - p.get("decode", 0) - p.get("align", 0)
        print(f"  {name}, {label}: total {p['total']:.2f} = encoder {p.get('encode', 0):.2f} + decoding "
              f"{p.get('decode', 0):.2f} + word alignment {p.get('align', 0):.2f} + VAD/features/other {other:.2f}")
    load1 = os.getloadavg()
    print(f"\nload average at end {load1[0]:.1f} / {load1[1]:.1f} / {load1[2]:.1f}")
    pool.shutdown()


if __name__ == "__main__":
    main()
