"""openSMILE eGeMAPSv02: the backend's one pass for LLDs + functionals against two ``opensmile.Smile``
runs (one per feature level, how the backend ran before), on the 12 CREMA-D demo clips and on about
106 s of espeak-ng speech.

    python bench/bench_opensmile_pass.py [--repeats 2]

Single-threaded C code either way, so wall and CPU seconds agree on an idle machine.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    import numpy as np
    import opensmile

    from bench.bench_audio_cues import PASSAGE, VOICES, espeak
    from textualize.audio_cues.prosody_opensmile import OpenSmileProsody
    from textualize.demo import fetch_demo_corpus
    from textualize.media import load_audio

    backend = OpenSmileProsody()
    lld_smile = backend._smile()
    func_smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                 feature_level=opensmile.FeatureLevel.Functionals)
    sets = [("12 CREMA-D demo clips", [load_audio(p, 16_000) for p in sorted(fetch_demo_corpus().iterdir())]),
            ("~106 s espeak-ng speech", [np.concatenate([espeak(PASSAGE, v) for v in VOICES[:2]])])]

    def timed(fn, xs):
        t, c = time.perf_counter(), time.process_time()
        for x in xs:
            fn(x)
        return time.perf_counter() - t, time.process_time() - c

    print("| input | audio s | two Smile runs wall / CPU s | one pass wall / CPU s |")
    print("|---|---:|---:|---:|")
    for name, xs in sets:
        seconds = sum(x.size for x in xs) / 16_000
        for _ in range(args.repeats):
            two = timed(lambda x: (lld_smile.process_signal(x, 16_000), func_smile.process_signal(x, 16_000)), xs)
            one = timed(backend._compute_both, xs)
            print(f"| {name} | {seconds:.1f} | {two[0]:.2f} / {two[1]:.2f} | {one[0]:.2f} / {one[1]:.2f} |")


if __name__ == "__main__":
    main()
