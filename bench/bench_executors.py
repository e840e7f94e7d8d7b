"""Cue extraction throughput on each engine (local, dask, ray, slurm via submitit's local
executor) with 1 and 2 workers, and the scheduling overhead per clip.

Two workloads:
- ``demo``: the 6 CREMA-D demo videos, face cues only (MediaPipe AUs + MTCNN at 1 fps): real
  models, loaded once per worker; also checks each engine's cue files are byte-identical to the
  in-process run.
- ``tables``: N OpenFace AU tables through the ``csv`` backend (no model, ~ms of work per clip),
  so the per-clip time is the engine's own cost: submit, schedule, ship args and results.

Usage: PYTHONPATH=. python bench/bench_executors.py [--engines local,dask,ray,slurm] [--tables 48]
Prints a markdown table and writes bench/executors.json.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from textualize.extract import ExtractConfig, run_extraction

OPTIONS = {"local": {}, "dask": {}, "ray": {}, "slurm": {"cluster": "local", "poll_s": 0.2}}


def cue_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix in (".json", ".npz") and p.name != "manifest.json"}


def timed_run(items, out: Path, config, engine: str, workers: int) -> dict:
    stamps: list[float] = []
    t0 = time.perf_counter()
    summary = run_extraction(items, out, config, workers=workers, progress=False, executor=engine,
                             executor_options=OPTIONS[engine], on_result=lambda r: stamps.append(time.perf_counter()))
    wall = time.perf_counter() - t0
    stamps = sorted(s - t0 for s in stamps)
    k = min(workers, len(stamps) - 1)  # steady state: after every worker has delivered once
    if engine == "slurm":  # an array task returns its whole chunk at once: no steady rate to see
        k = len(stamps)
    steady = (len(stamps) - 1 - k) / (stamps[-1] - stamps[k]) if len(stamps) - 1 > k and stamps[-1] > stamps[k] else float("nan")
    return {"engine": engine, "workers": workers, "clips": len(items), "done": summary.done, "failed": summary.failed,
            "wall_s": round(wall, 2), "first_result_s": round(stamps[0], 2) if stamps else None,
            "clips_per_s": round(len(items) / wall, 3), "steady_clips_per_s": round(steady, 3)}


def _untimed_reference(items, config, out: Path) -> Path:
    """The in-process run every engine's cue files are compared with, byte for byte."""
    run_extraction(items, out, config, progress=False)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engines", default="local,dask,ray,slurm")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--tables", type=int, default=48)
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--json", default=str(Path(__file__).with_name("executors.json")))
    args = ap.parse_args()
    engines = args.engines.split(",")
    workers_list = [int(w) for w in args.workers.split(",")]
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-exec-"))
    try:
        if not args.skip_demo:
            from textualize.demo import fetch_demo_corpus

            clips = [(c.stem, c) for c in sorted(fetch_demo_corpus().glob("1001_*.flv"))]
            config = ExtractConfig(audio=False, fps=1.0)
            reference = cue_bytes(_untimed_reference(clips, config, tmp / "reference"))
            for engine in engines:
                for w in workers_list:
                    out = tmp / f"demo-{engine}-{w}"
                    row = {"workload": "demo", **timed_run(clips, out, config, engine, w)}
                    files = cue_bytes(out)
                    row["identical_to_local"] = files == reference
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        from textualize.models import package_dir

        table = package_dir("feat") / "tests" / "data" / "OpenFace_Test.csv"
        lines = table.read_text().splitlines(keepends=True)
        tdir = tmp / "tables"
        tdir.mkdir()
        items = []
        for i in range(args.tables):
            p = tdir / f"t{i}.csv"
            p.write_text("".join(lines[:1]) + "".join(lines[1 + i % 5: 21 + i % 80]))
            items.append((p.stem, p))
        tconfig = ExtractConfig(audio=False, au="csv")
        for engine in engines:
            for w in workers_list:
                row = {"workload": "tables", **timed_run(items, tmp / f"tab-{engine}-{w}", tconfig, engine, w)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    base = {r["workers"]: r["steady_clips_per_s"] for r in rows if r["workload"] == "tables" and r["engine"] == "local"}
    print("| workload | engine | workers | clips | wall s | first result s | clips/s | steady clips/s | overhead ms/clip | identical |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        overhead = ""
        if r["workload"] == "tables" and r["steady_clips_per_s"] == r["steady_clips_per_s"] and base.get(1):
            overhead = f"{1000 * (1 / r['steady_clips_per_s'] - 1 / base[1]):.1f}"
        print(f"| {r['workload']} | {r['engine']} | {r['workers']} | {r['clips']} | {r['wall_s']} | {r['first_result_s']} | "
              f"{r['clips_per_s']} | {r['steady_clips_per_s']} | {overhead} | {r.get('identical_to_local', '')} |")


if __name__ == "__main__":
    main()
