"""Agreement of the three prosody backends (praat, opensmile, librosa) on EmoDB, per measure.

Runs every backend over the EmoDB utterances in ../shared/data/emodb (no ASR words: pauses and
rates from energy), then prints, per clip measure, each backend's mean and the Pearson and
Spearman correlations across clips for every pair of backends. Also pairs Praat's formants
with eGeMAPS' F1-F3 functionals and Praat's intensity with eGeMAPS' loudness (different units:
correlation only). Clips where a backend gives NaN are left out of that pair's figures (n is
printed). Per-clip values are appended to ``--cache DIR/<backend>.jsonl`` as they come, so an
interrupted run resumes, and ``--backend NAME`` runs one backend (three processes share a loaded
machine better than one). Usage:

    python bench/bench_prosody_agreement.py [--files N] [--cache DIR] [--backend NAME] [--report-only]
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BACKENDS = ("praat", "opensmile", "librosa")
MEASURES = ("pitch_mean_st", "pitch_sd_st", "pitch_range_st", "voiced_ratio", "jitter_local",
            "shimmer_local_db", "hnr_db", "speaking_rate_syl_per_s")
# (Praat functional, eGeMAPS functional): same quantity, maybe different units
EXTRA_PAIRS = (
    ("praat_f1_mean_hz", "F1frequency_sma3nz_amean"),
    ("praat_f2_mean_hz", "F2frequency_sma3nz_amean"),
    ("praat_f3_mean_hz", "F3frequency_sma3nz_amean"),
    ("praat_intensity_voiced_mean_db", "loudness_sma3_amean"),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--files", type=int, default=0, help="first N EmoDB files (0 = all)")
    ap.add_argument("--out", default="", help="also write per-clip values to this JSON")
    ap.add_argument("--cache", default=str(REPO / "runs" / "prosody_agreement"),
                    help="folder of per-backend JSONL results (resumable)")
    ap.add_argument("--backend", choices=BACKENDS, help="run only this backend (then report with --report-only)")
    ap.add_argument("--report-only", action="store_true", help="print the tables from the cache")
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, "1")

    import numpy as np
    from scipy.stats import pearsonr, spearmanr

    from textualize.cues import ProsodyCues
    from textualize.media import load_audio
    from textualize.registry import PROSODY_BACKENDS

    shared = Path(os.environ.get("TEXTUALIZE_SHARED", REPO.parent / "shared"))
    paths = sorted((shared / "data" / "emodb").glob("*.wav"))
    if args.files:
        paths = paths[: args.files]
    if not paths:
        raise SystemExit(f"no EmoDB wavs under {shared / 'data' / 'emodb'}")
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}; "
          f"EmoDB: {len(paths)} files")
    backends: dict = {}
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict[str, dict[str, float]]] = {n: {} for n in BACKENDS}
    seconds = {n: 0.0 for n in BACKENDS}
    missing = {n: 0 for n in BACKENDS}
    for name in BACKENDS:  # resume: what earlier runs measured
        f = cache / f"{name}.jsonl"
        if f.exists():
            for line in f.read_text().splitlines():
                rec = json.loads(line)
                seconds[name] += rec["seconds"]
                if rec["values"] is None:
                    missing[name] += 1
                else:
                    rows[name][rec["file"]] = {k: (math.nan if v is None else v) for k, v in rec["values"].items()}
    todo = [] if args.report_only else ([args.backend] if args.backend else list(BACKENDS))
    audio_s = 0.0
    for path in paths:
        x = load_audio(path, 16_000)
        audio_s += x.size / 16_000
        for name in todo:
            if path.name in rows[name]:
                continue
            b = backends.get(name) or backends.setdefault(name, PROSODY_BACKENDS.get(name)(window_s=2.0, hop_s=1.0))
            t0 = time.perf_counter()
            cues = b.measure(x, 16_000)
            dt = time.perf_counter() - t0
            seconds[name] += dt
            vals = None
            if isinstance(cues, ProsodyCues):
                vals = {m: float(getattr(cues.clip, m)) for m in MEASURES}
                vals.update({k: float(v) for k, v in cues.functionals.items()
                             if k.startswith("praat_") or k in {p[1] for p in EXTRA_PAIRS}})
                rows[name][path.name] = vals
            else:
                missing[name] += 1
            with open(cache / f"{name}.jsonl", "a") as f:
                f.write(json.dumps({"file": path.name, "seconds": dt, "values": None if vals is None else
                                    {k: (None if not math.isfinite(v) else v) for k, v in vals.items()}}) + "\n")
    if args.backend and not args.report_only:
        print(f"{args.backend}: {len(rows[args.backend])} clips in {cache}")
        return
    print(f"audio {audio_s:.0f} s; time per backend (s, summed over runs): "
          + ", ".join(f"{n} {seconds[n]:.0f} ({audio_s / max(seconds[n], 1e-9):.1f}x real time)" for n in BACKENDS)
          + "; missing: " + ", ".join(f"{n} {missing[n]}" for n in BACKENDS))

    def paired(a: str, ka: str, b: str, kb: str):
        xs, ys = [], []
        for clip, va in rows[a].items():
            vb = rows[b].get(clip)
            if vb is None:
                continue
            x, y = va.get(ka, math.nan), vb.get(kb, math.nan)
            if math.isfinite(x) and math.isfinite(y):
                xs.append(x), ys.append(y)
        return np.asarray(xs), np.asarray(ys)

    def fmt(x, y) -> str:
        if x.size < 3 or np.std(x) == 0 or np.std(y) == 0:
            return f"n={x.size}"
        return f"{pearsonr(x, y)[0]:.2f} / {spearmanr(x, y)[0]:.2f} (n={x.size})"

    pairs = list(itertools.combinations(BACKENDS, 2))
    print()
    print("| measure | " + " | ".join(f"mean {n}" for n in BACKENDS) + " | "
          + " | ".join(f"r / rho {a}-{b}" for a, b in pairs) + " |")
    print("|---" * (1 + len(BACKENDS) + len(pairs)) + "|")
    for m in MEASURES:
        means = []
        for n in BACKENDS:
            v = np.asarray([r[m] for r in rows[n].values() if math.isfinite(r[m])])
            means.append(f"{v.mean():.3g}" if v.size else "-")
        cors = [fmt(*paired(a, m, b, m)) for a, b in pairs]
        print(f"| {m} | " + " | ".join(means) + " | " + " | ".join(cors) + " |")
    print()
    print("| Praat functional | eGeMAPS functional | mean Praat | mean eGeMAPS | r / rho |")
    print("|---|---|---|---|---|")
    for kp, ko in EXTRA_PAIRS:
        x, y = paired("praat", kp, "opensmile", ko)
        print(f"| {kp} | {ko} | {x.mean():.4g} | {y.mean():.4g} | {fmt(x, y)} |")
    print()
    print("Praat's other voice measures (mean over clips; r with praat_jitter_local / praat_shimmer_local):")
    for k in ("praat_jitter_rap", "praat_jitter_ppq5", "praat_shimmer_apq3", "praat_shimmer_apq5",
              "praat_shimmer_apq11"):
        ref = "praat_jitter_local" if "jitter" in k else "praat_shimmer_local"
        x, y = paired("praat", k, "praat", ref)
        print(f"  {k}: mean {x.mean():.4g}; r with {ref} {fmt(x, y)}")
    for k in ("praat_pitch_floor_hz", "praat_pitch_ceiling_hz"):
        v = np.asarray([r[k] for r in rows["praat"].values()])
        print(f"  {k} (two-pass adaptive range): mean {v.mean():.4g}, min {v.min():.4g}, max {v.max():.4g}")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
