"""Speed of the fusion models: training throughput (windows/s), inference real-time factor, and
step time under AMP on a GPU.

    OMP_NUM_THREADS=2 python bench/bench_feature_speed.py --threads 2                      # CPU figures
    python bench/bench_feature_speed.py --device cuda --amp bf16 --models lfan             # GPU, AMP step time
    python bench/bench_feature_speed.py --dataset runs/data/emodb                          # that dataset's stream layout

The stream layout (which streams, their dimensions and modalities) is a real dataset's
(``--dataset``, from ``DATASET/streams/manifest.json``) or, by default, that of
``textualize build-streams`` with every default stream: face_au 20, face_blendshapes 52,
face_fer 7+128... (see DEFAULT_LAYOUT). Inputs are random values of that shape: speed does not
depend on the values. A training step is forward + class-weighted loss + backward + AdamW step,
as ``Trainer`` runs it (without its logging and checkpointing). Inference RTF = wall time to
predict a ``--media_s`` long sample with overlapping windows (``--eval_hop``) and frame
stitching, divided by ``--media_s``.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# stream -> (dim, modality) of the default build-streams output (textualize/streams/)
DEFAULT_LAYOUT = {
    "face_au": (20, "face"), "face_blendshapes": (52, "face"), "face_landmarks": (136, "face"),
    "face_dlib": (128, "face"), "face_fer": (135, "face"),
    "audio_lld": (25, "voice"), "audio_whisper": (384, "voice"), "text_emb": (384, "text"),
}


def layout_from(streams: dict[str, tuple[int, str]]) -> dict:
    names = list(streams)
    offsets, k = {}, 0
    for s in names:
        offsets[s] = (k, k + streams[s][0])
        k += streams[s][0]
    modalities: dict[str, list[int]] = {}
    for i, s in enumerate(names):
        modalities.setdefault(streams[s][1], []).append(i)
    return {"streams": names, "dims": {s: d for s, (d, _) in streams.items()}, "offsets": offsets,
            "modalities": modalities, "modality_streams": {m: [names[i] for i in idx] for m, idx in modalities.items()}}


def build(model: str, layout: dict, n_classes: int, args):
    from baselines.feature_fusion.registry import FEATURE_MODELS

    spec = FEATURE_MODELS.get(model)()
    ns = SimpleNamespace(channels=[int(c) for c in args.tcn_channels.split(",")], kernel_size=5, dropout=0.3,
                         modal_dim=32, num_heads=2, leader="")
    return spec.make_model(layout, n_classes, ns)


def batch(layout: dict, b: int, t: int, device):
    import torch

    d = sum(layout["dims"].values())
    feats = torch.randn(b, t, d, device=device)
    masks = torch.rand(b, t, len(layout["streams"]), device=device) > 0.1
    labels = torch.randint(0, 7, (b, t), device=device)
    return feats, masks, labels


def time_training(model, layout, args, device) -> dict:
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    weight = torch.ones(7, device=device)
    feats, masks, labels = batch(layout, args.batch, args.window, device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)
    scaler = torch.amp.GradScaler(enabled=args.amp == "fp16")
    model.train()
    times = []
    for i in range(args.warmup + args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = model(feats=feats, masks=masks)["logits"]
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 7).float(), labels.reshape(-1), weight=weight)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    step = statistics.median(times)
    return {"step_s_median": round(step, 5), "step_s_min": round(min(times), 5), "windows_per_s": round(args.batch / step, 1),
            "frames_per_s": round(args.batch * args.window / step, 0)}


def time_inference(model, layout, args, device) -> dict:
    import torch

    from baselines.feature_fusion.data import window_starts

    t_frames = int(round(args.media_s * args.rate))
    feats, masks, _ = batch(layout, 1, t_frames, device)
    starts = window_starts(t_frames, args.window, args.eval_hop)
    model.eval()
    times = []
    for i in range(args.warmup + max(3, args.steps // 3)):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.no_grad():
            sums = torch.zeros(t_frames, 7, device=device)
            counts = torch.zeros(t_frames, 1, device=device)
            for j in range(0, len(starts), args.batch):  # windows in batches, as Trainer.predict does
                group = starts[j : j + args.batch]
                n = min(args.window, t_frames)
                f = torch.stack([feats[0, a : a + n] for a in group])
                m = torch.stack([masks[0, a : a + n] for a in group])
                lg = model(feats=f, masks=m)["logits"].float()
                for a, row in zip(group, lg):
                    sums[a : a + n] += row
                    counts[a : a + n] += 1
            probs = torch.softmax(sums / counts, dim=-1).mean(0)
            probs.cpu()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    wall = statistics.median(times)
    return {"media_s": args.media_s, "frames": t_frames, "windows": len(starts), "wall_s": round(wall, 4),
            "rtf": round(wall / args.media_s, 6)}


def main() -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="lfan,early,late")
    p.add_argument("--dataset", default=None, help="take the stream layout (dims, modalities) from DATASET/streams")
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--window", type=int, default=300)
    p.add_argument("--eval_hop", type=int, default=200)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rate", type=float, default=5.0, help="Hz of the stream axis (for the real-time factor)")
    p.add_argument("--media_s", type=float, default=600.0, help="length of the sample timed for inference")
    p.add_argument("--tcn_channels", default="64,64")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", default=None, help="write the figures as JSON here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.dataset:
        m = json.loads((Path(args.dataset) / "streams" / "manifest.json").read_text())
        streams = {s: (int(e["dim"]), str(e.get("modality") or s)) for s, e in m["streams"].items()}
        args.rate = float(m.get("rate_hz", args.rate))
    else:
        streams = DEFAULT_LAYOUT
    layout = layout_from(streams)
    env = {"python": platform.python_version(), "torch": torch.__version__, "device": str(device),
           "threads": torch.get_num_threads(), "amp": args.amp, "cpu": platform.processor() or platform.machine(),
           "load_average_at_start": [round(x, 1) for x in __import__("os").getloadavg()]}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    results = {"env": env, "layout": {s: list(v) for s, v in streams.items()}, "window": args.window, "batch": args.batch,
               "models": {}}
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        torch.manual_seed(0)
        model = build(name, layout, 7, args).to(device)
        r = {"parameters": sum(p.numel() for p in model.parameters())}
        r["train"] = time_training(model, layout, args, device)
        r["inference"] = time_inference(model, layout, args, device)
        results["models"][name] = r
        print(json.dumps({name: r}), flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1))
    print(json.dumps(results["env"]))


if __name__ == "__main__":
    main()
