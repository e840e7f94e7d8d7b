"""Speed and memory of `textualize predict` / `annotate` (bench/RESULTS.md, "predict and annotate").

    python bench/bench_predict.py --text RUN --feature RUN [--clips 4] [--long-s 60] [--work DIR]

The runs are only read: new cues go to ``--work``/cues, not to the runs' dataset.

- latency per clip of ``predict`` with a text run and with a feature run: model load once, then
  the demo clips with their cues cached (the model part) and, separately, the cold first clip
  (cue extraction included);
- frames per second of ``annotate``'s rendering (decode, draw, encode with sound) at the
  video's own frame rate, and the sliding-window predictions' time;
- peak memory (max RSS of a fresh process) of rendering a 20 s video and a long one made by
  looping a real CREMA-D clip (the cues of the short clip drive both, so the difference is the
  renderer's own growth with length).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def looped_video(src: Path, seconds: float, out: Path) -> Path:
    """A real clip's frames and sound repeated to ``seconds`` (PyAV)."""
    import av

    with av.open(str(src)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        rate = c.streams.video[0].average_rate
    with av.open(str(src)) as c:
        audio = [f.to_ndarray() for f in c.decode(audio=0)]
        sr, layout = c.streams.audio[0].codec_context.sample_rate, c.streams.audio[0].codec_context.layout.name
        fmt = c.streams.audio[0].codec_context.format.name
    import numpy as np

    pcm = np.concatenate(audio, axis=1)
    with av.open(str(out), "w") as dst:
        v = dst.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=rate)
        v.width, v.height, v.pix_fmt = frames[0].shape[1] // 2 * 2, frames[0].shape[0] // 2 * 2, "yuv420p"
        a = dst.add_stream("aac", rate=sr)
        n = int(seconds * float(rate))
        for k in range(n):
            f = av.VideoFrame.from_ndarray(frames[k % len(frames)], format="rgb24").reformat(v.width, v.height, "yuv420p")
            for p in v.encode(f):
                dst.mux(p)
        for p in v.encode():
            dst.mux(p)
        reps = int(np.ceil(seconds * sr / pcm.shape[1]))
        long = np.tile(pcm, (1, reps))[:, : int(seconds * sr)]
        for i in range(0, long.shape[1], 1024):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(long[:, i:i + 1024]), format=fmt, layout=layout)
            af.sample_rate = sr
            for p in a.encode(af):
                dst.mux(p)
        for p in a.encode():
            dst.mux(p)
    return out


def render_child(args) -> None:
    """In a fresh process: render ``args.video`` with the short clip's cues; print fps and max RSS."""
    from textualize.annotate import render
    from textualize.extract import load_clip

    clip = load_clip(Path(args.cue_dir), args.clip_id)
    windows = [{"start_s": float(t), "end_s": float(t) + 2, "prediction": "neutral", "p": 0.5, "entropy": 0.7, "spread": None}
               for t in range(0, int(args.seconds))]
    info = render(Path(args.video), Path(args.out), windows, clip, progress=False)
    info["max_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(info))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--text", type=Path)
    ap.add_argument("--feature", type=Path)
    ap.add_argument("--long-s", type=float, default=60.0)
    ap.add_argument("--clips", type=int, default=4, help="demo clips per run (half .flv video, half .mp3 audio-only)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_predict"))
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--video"), ap.add_argument("--out"), ap.add_argument("--cue-dir"), ap.add_argument("--clip-id")
    ap.add_argument("--seconds", type=float, default=20)
    args = ap.parse_args()
    if args.child:
        return render_child(args)
    from textualize.annotate import annotate_video
    from textualize.demo import fetch_demo_corpus
    from textualize.predict import PredictConfig, load_predictor, make_inputs, predict_paths

    corpus = fetch_demo_corpus()
    half = max(1, args.clips // 2)
    clips = sorted(corpus.glob("1001_*.flv"))[:half] + sorted(corpus.glob("1002_*.mp3"))[:args.clips - half]
    args.work.mkdir(parents=True, exist_ok=True)
    cues = str(args.work / "cues")
    results: dict = {"load_average_before": [round(x, 1) for x in os.getloadavg()], "cpus": os.cpu_count()}
    for kind, run in (("text", args.text), ("feature", args.feature)):
        t0 = time.perf_counter()
        pred = load_predictor(run)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        predict_paths(clips, [pred], PredictConfig(progress=False, cues_dir=cues))  # cues (cold unless cached), lazy parts
        cold_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = predict_paths(clips, [pred], PredictConfig(progress=False, batch=1, cues_dir=cues))
        per_clip = (time.perf_counter() - t0) / len(res["rows"])
        results[kind] = {"load_s": round(load_s, 2), "first_pass_s": round(cold_s, 2), "per_clip_cached_cues_s": round(per_clip, 3),
                         "clips": len(res["rows"]), "model_loads": getattr(pred, "model_loads", None)}
        print(kind, results[kind], flush=True)
    pred = load_predictor(args.feature)
    s = annotate_video(clips[0], [pred], args.work / "annotated.mp4", progress=False, cues_dir=cues)
    results["annotate"] = {k: s[k] for k in ("frames", "render_fps", "predict_seconds", "total_seconds")}
    results["annotate"]["windows"] = len(s["windows"])
    print("annotate", results["annotate"], flush=True)
    inp = make_inputs([clips[0]])[0]
    cue_dir = cues
    for seconds in (20.0, args.long_s):
        video = looped_video(clips[0], seconds, args.work / f"loop{int(seconds)}.mp4")
        out = subprocess.run([sys.executable, __file__, "--child", "--video", str(video), "--out", str(args.work / f"ann{int(seconds)}.mp4"),
                              "--cue-dir", cue_dir, "--clip-id", inp.clip_id, "--seconds", str(seconds)],
                             capture_output=True, text=True, check=True)
        results[f"render_{int(seconds)}s"] = json.loads(out.stdout.strip().splitlines()[-1])
        print(seconds, results[f"render_{int(seconds)}s"], flush=True)
    results["load_average_after"] = [round(x, 1) for x in os.getloadavg()]
    (args.work / "results.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
