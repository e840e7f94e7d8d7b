"""Build the real datasets the feature-model figures in bench/RESULTS.md use (from ../shared).

    python bench/build_feature_datasets.py emodb  --out runs/data/emodb        # 278 EmoDB wavs, voice
    python bench/build_feature_datasets.py news   --out runs/data/news         # 20 py-feat per-frame AU tables
    python bench/build_feature_datasets.py emodb  --out runs/data/emodb_v2 --template speech_cues_v2 --cues-dir runs/data/emodb/cues

EmoDB: label = 6th character of the file name; speakers 03 08 09 10 train, 11 validation, 12 test.
News: good (gn, 001-010) vs bad news (ists, 011-020), one anchor; the split column is a placeholder
(these figures use k-fold over clips). Then `textualize build-streams OUT` makes the streams.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

EMODB_LABELS = {"W": "anger", "L": "boredom", "N": "neutral", "F": "happiness", "A": "fear", "T": "sadness", "E": "disgust"}
EMODB_SPLIT = {"03": "train", "08": "train", "09": "train", "10": "train", "11": "validation", "12": "test"}


def emodb_manifest(root: Path, out_csv: Path) -> None:
    rows = ["id,path,label,split,speaker"]
    for f in sorted(root.glob("*.wav")):
        rows.append(f"emodb_{f.stem},{f.resolve()},{EMODB_LABELS[f.name[5]]},{EMODB_SPLIT[f.name[:2]]},{f.name[:2]}")
    out_csv.write_text("\n".join(rows) + "\n")


def news_table(root: Path, folder: Path) -> Path:
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in range(1, 21):
        link = folder / f"{n:03d}.csv"
        if not link.exists():
            os.symlink((root / f"{n:03d}.csv").resolve(), link)
        rows.append({"id": f"news{n:03d}", "label": "gn" if n <= 10 else "ists",
                     "split": ("validation" if n % 5 == 4 else "test" if n % 5 == 0 else "train"),
                     "speaker": "anchor", "face_table": f"{n:03d}.csv"})
    pd.DataFrame(rows).to_csv(folder / "cues.csv", index=False)
    return folder / "cues.csv"


def main() -> None:
    from textualize.build import BuildConfig, build_dataset

    p = argparse.ArgumentParser()
    p.add_argument("corpus", choices=["emodb", "news"])
    p.add_argument("--out", required=True)
    p.add_argument("--shared", default=str(REPO.parent / "shared"))
    p.add_argument("--template", default="paper_v1", help="prompt template id (the text model's prompts)")
    p.add_argument("--cues-dir", default=None, help="cue cache folder (default OUT/cues); share it between builds")
    a = p.parse_args()
    out = Path(a.out)
    data = Path(a.shared) / "data"
    out.parent.mkdir(parents=True, exist_ok=True)
    if a.corpus == "emodb":
        csv = out.parent / f"{out.name}.csv"
        emodb_manifest(data / "emodb", csv)
        cfg = BuildConfig(dataset="manifest", root=str(csv), out=str(out), modalities=("voice",),
                          template=a.template, cues_dir=a.cues_dir, adapter_options={"classes": ",".join(sorted(EMODB_LABELS.values()))})
    else:
        csv = news_table(data / "pyfeat_news_sample", out.parent / f"{out.name}_tables")
        cfg = BuildConfig(dataset="cue-table", root=str(csv), out=str(out), modalities=("face",), tokenizer=None,
                          template=a.template, cues_dir=a.cues_dir)
    build_dataset(cfg)


if __name__ == "__main__":
    main()
