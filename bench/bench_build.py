"""Benchmark: `build-dataset --dataset meld` text-only from the official CSVs (target < 20 s).

    python bench/bench_build.py [--root ../shared/data/meld]

Runs the real command end to end (adapter, validation, converters, template, token counts with
the MiniLM tokenizer, DatasetDict save) in a fresh process, twice: cold and warm (tokenizer
already cached on disk). Prints a markdown table row.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "meld"))
    args = ap.parse_args()
    if not Path(args.root).exists():
        sys.exit(f"MELD CSVs not found at {args.root}")
    exe = Path(sys.executable).parent / "textualize"
    rows = []
    for label, extra in (("words, modalities text", []), ("words, text + 3 context turns", ["--context-turns", "3", "--template", "dialogue_v1"])):
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [str(exe), "build-dataset", "--dataset", "meld", "--root", args.root, "--out", tmp, "--modalities", "text", *extra]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                sys.exit(proc.stdout + proc.stderr)
            from datasets import load_from_disk

            n = sum(len(s) for s in load_from_disk(tmp).values())
            rows.append((label, n, wall))
    print("| MELD build-dataset (text-only) | rows | wall s (process start to finish) |")
    print("|---|---:|---:|")
    for label, n, wall in rows:
        print(f"| {label} | {n} | {wall:.1f} |")


if __name__ == "__main__":
    main()
