"""Small real models for the report tests and the demo's orchestration test: a TF-IDF logistic
regression on a dataset's rendered prompts (text run) and a logistic regression on the clips'
eGeMAPS low-level descriptors (feature run), both written through ``textualize.training`` in the
shared prediction format. Real predictions from real data, in seconds on a CPU.

    python tests/real_runs.py text --dataset DIR --output_dir RUN
    python tests/real_runs.py feature --dataset DIR --output_dir RUN
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

EMODB = {"W": "anger", "N": "neutral", "T": "sadness", "F": "happiness"}
EMODB_SPLITS = {"03": "train", "08": "train", "09": "train", "10": "validation", "11": "test", "12": "test"}
# eGeMAPS functionals the cue-table adapter reads as prosody measures (the rest stay features only)
PROMPT_COLUMNS = ("F0semitoneFrom27.5Hz_sma3nz_amean", "F0semitoneFrom27.5Hz_sma3nz_pctlrange0-2", "loudness_sma3_amean",
                  "jitterLocal_sma3nz_amean", "shimmerLocaldB_sma3nz_amean", "HNRdBACF_sma3nz_amean")


def build_emodb_dataset(shared_dir: Path, out: Path, per_class: int = 5) -> Path:
    """A voice-only dataset of real EmoDB clips (4 emotions; speakers 03/08/09 train, 10
    validation, 11/12 test) without media extraction: openSMILE eGeMAPSv02 functionals per clip
    (``OUT/functionals.npz``, 88 per clip), of which the prosody ones go through the
    ``cue-table`` adapter and `build-dataset` into rendered prompts (the ``text`` column)."""
    import opensmile
    import pandas as pd

    from textualize.build import BuildConfig, build_dataset
    from textualize.extract import ExtractConfig

    files, meta = [], []
    for spk, split in EMODB_SPLITS.items():
        for code, emotion in EMODB.items():
            for f in sorted((shared_dir / "data" / "emodb").glob(f"{spk}*{code}?.wav"))[:per_class]:
                files.append(str(f.resolve()))
                meta.append({"id": f.stem, "label": emotion, "split": split, "speaker": spk})
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals)
    functionals = smile.process_files(files)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "functionals.npz", **{m["id"]: row.astype(np.float32) for m, row in zip(meta, functionals.to_numpy())})
    table = pd.DataFrame(meta)
    for col in PROMPT_COLUMNS:
        table[col] = functionals[col].to_numpy()
    table.to_csv(out / "cue_table.csv", index=False)
    build_dataset(BuildConfig(dataset="cue-table", root=str(out / "cue_table.csv"), out=str(out / "dataset"),
                              template="paper_v1", modalities=("voice",), tokenizer=None, extract=ExtractConfig()),
                  progress=False, log=lambda m: None)
    return out / "dataset"


def _finish(run: Path, dataset: Path, approach: str, model: str, ids_by_split, labels_by_split, probs_by_split, classes):
    from textualize.training import finish_run, write_split_predictions

    metrics = {s: write_split_predictions(run, s, ids_by_split[s], labels_by_split[s], probs_by_split[s], classes)
               for s in probs_by_split}
    finish_run(run, approach=approach, model=model, method="full", dataset_dir=dataset, classes=classes, seed=0,
               metrics=metrics, config={"model": model}, timings={})
    return run


def train_text_run(dataset: Path, run: Path) -> Path:
    """A real text classifier on the rendered prompts: TF-IDF + logistic regression."""
    from datasets import load_from_disk
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    dd = load_from_disk(str(dataset))
    classes = _classes(dd)
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    x = vec.fit_transform(dd["train"]["text"])
    clf = LogisticRegression(max_iter=2000, C=10.0).fit(x, [classes.index(c) for c in dd["train"]["label"]])
    probs = {s: _full_probs(clf, vec.transform(dd[s]["text"]), len(classes)) for s in ("validation", "test")}
    return _finish(run, dataset, "text", "tfidf-logreg", {s: dd[s]["id"] for s in probs}, {s: dd[s]["label"] for s in probs},
                   probs, classes)


def train_feature_run(dataset: Path, run: Path, functionals: Path | None = None) -> Path:
    """A real feature classifier (standardised features -> logistic regression): the clips'
    eGeMAPS functionals when ``functionals`` (an npz by id) is given, else the mean and SD of each
    sample's eGeMAPS LLDs from the dataset's ``features/<split>.npz``."""
    from datasets import load_from_disk
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    dd = load_from_disk(str(dataset))
    classes = _classes(dd)
    table = dict(np.load(functionals)) if functionals else None

    def feats(split):
        if table is not None:
            return np.stack([table[i] for i in dd[split]["id"]])
        z = np.load(dataset / "features" / f"{split}.npz")
        return np.stack([np.concatenate([np.nanmean(z[f"{i}/audio_lld"], 0), np.nanstd(z[f"{i}/audio_lld"], 0)])
                         for i in dd[split]["id"]])

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5))
    clf.fit(np.nan_to_num(feats("train")), [classes.index(c) for c in dd["train"]["label"]])
    probs = {s: _full_probs(clf, np.nan_to_num(feats(s)), len(classes)) for s in ("validation", "test")}
    return _finish(run, dataset, "feature", "egemaps-functionals-logreg" if table is not None else "egemaps-lld-logreg",
                   {s: dd[s]["id"] for s in probs}, {s: dd[s]["label"] for s in probs}, probs, classes)


def _classes(dd) -> list[str]:
    feature = dd["train"].features.get("label_id")
    return list(feature.names) if hasattr(feature, "names") else sorted(set(dd["train"]["label"]))


def _full_probs(clf, x, k):
    p = np.zeros((x.shape[0], k))
    p[:, clf.classes_] = clf.predict_proba(x)
    return p


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["text", "feature"])
    parser.add_argument("--dataset", required=True, type=Path)
    parser.add_argument("--output_dir", required=True, type=Path)
    parser.add_argument("--functionals", type=Path, default=None, help="npz of per-clip functionals by id (feature run)")
    args, _ = parser.parse_known_args(argv)  # trainer flags such as --num_train_epochs are ignored
    if args.kind == "text":
        train_text_run(args.dataset, args.output_dir)
    else:
        train_feature_run(args.dataset, args.output_dir, args.functionals)
    print(f"wrote {args.output_dir}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
