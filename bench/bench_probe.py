"""How much of the voice information the prompts keep: a linear probe on prompt words vs features.

EmoDB from ``../shared/data/emodb`` (278 clips, 7 emotions), voice only. Speakers 03, 08, 09, 10
and 11 are the training split and 12 the validation split (issue 9). The dataset is built with
the real pipeline (``build_dataset``: Whisper words, openSMILE prosody, converters, template),
and the same cue cache gives both representations of the same clips:

* text: TF-IDF of the rendered prompt's words (1-3 grams, sublinear tf);
* features: the 88 eGeMAPSv02 functionals, z-normalised per speaker over that speaker's own
  clips (``--speaker-norm``, no labels) or with the training split's mean and SD
  (``--no-speaker-norm``), the same normalisation the prompts were built with.

The probe is fixed: class-balanced logistic regression, its C picked from a grid by
leave-one-speaker-out accuracy over the training speakers only. Printed: accuracy on speaker 12
(the issue's split), mean accuracy over leave-one-speaker-out folds of all six speakers (each
speaker scored by a probe trained on the other five; steadier than 35 clips of one speaker),
and text / features, the share of the feature side's accuracy the prompts keep.

Usage (2-core CPU: about 15 min for the first build's cue extraction, then seconds):

    python bench/bench_probe.py --out runs/probe
    python bench/bench_probe.py --out runs/probe --no-speaker-norm
    python bench/bench_probe.py --out runs/probe --converter-config old.yaml   # e.g. extra_measures: []
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

EMODB_LABELS = {"W": "anger", "L": "boredom", "N": "neutral", "F": "happiness", "A": "fear", "T": "sadness",
                "E": "disgust"}
TRAIN_SPEAKERS = ("03", "08", "09", "10", "11")
VALIDATION_SPEAKERS = ("12",)
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def write_manifest(emodb: Path, out: Path) -> Path:
    """The EmoDB manifest CSV (path, label, split, speaker) for the ``manifest`` adapter."""
    rows = []
    for wav in sorted(emodb.glob("*.wav")):
        speaker, code = wav.name[:2], wav.name[5]
        if code not in EMODB_LABELS:
            raise ValueError(f"{wav.name}: not an EmoDB file name (emotion letter {code!r})")
        split = "train" if speaker in TRAIN_SPEAKERS else "validation" if speaker in VALIDATION_SPEAKERS else None
        if split is None:
            continue
        rows.append({"id": wav.stem, "path": str(wav.resolve()), "label": EMODB_LABELS[code], "split": split,
                     "speaker": speaker})
    if not rows:
        raise SystemExit(f"no EmoDB wav files in {emodb}")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "emodb_manifest.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def build(args, manifest: Path, out: Path) -> Path:
    from textualize.build import BuildConfig, build_dataset

    converter = {}
    if args.converter_config:
        from textualize.cli import _load_mapping

        converter = _load_mapping(Path(args.converter_config))
    config = BuildConfig(
        dataset="manifest", root=str(manifest), out=str(out), template=args.template, modalities=("voice",),
        cues_dir=str(Path(args.out) / "cues"), workers=args.workers, converter_config=converter,
        speaker_normalisation=args.speaker_norm,
    )
    build_dataset(config, progress=False, log=lambda m: print(m, flush=True))
    return out


def load_rows(dataset: Path) -> list[dict]:
    from datasets import load_from_disk

    dd = load_from_disk(str(dataset))
    return [dict(r) for split in dd for r in dd[split]]


def functionals(rows: list[dict], cue_dir: Path) -> tuple[np.ndarray, list[str]]:
    from textualize.cues import ProsodyCues
    from textualize.extract import load_clip

    names, table = None, []
    for r in rows:
        pros = load_clip(cue_dir, r["cue_clip_id"]).prosody
        if not isinstance(pros, ProsodyCues) or not pros.functionals:
            table.append(None)
            continue
        names = names or sorted(pros.functionals)
        table.append([pros.functionals.get(n, np.nan) for n in names])
    if names is None:
        raise SystemExit("no eGeMAPS functionals in the cue cache (use the opensmile prosody backend)")
    width = len(names)
    return np.array([t if t is not None else [np.nan] * width for t in table], dtype=np.float64), names


def normalise(x: np.ndarray, speakers: np.ndarray, train: np.ndarray, per_speaker: bool) -> np.ndarray:
    """z-scores per speaker (each speaker's own clips) or with the training rows' statistics;
    missing values become 0 (the mean)."""
    out = np.empty_like(x)
    groups = [speakers == s for s in np.unique(speakers)] if per_speaker else [np.ones(len(x), bool)]
    for g in groups:
        ref = x[g] if per_speaker else x[train]
        mu, sd = np.nanmean(ref, axis=0), np.nanstd(ref, axis=0)
        sd = np.where(sd > 0, sd, 1.0)
        out[g] = (x[g] - mu) / sd
    return np.nan_to_num(out, nan=0.0)


def probe_accuracy(make_x, y: np.ndarray, speakers: np.ndarray, train: np.ndarray, test: np.ndarray) -> tuple[float, float]:
    """(accuracy on ``test``, chosen C); C by leave-one-speaker-out over the training rows.
    ``make_x(fit_rows)`` returns the design matrix fitted on those rows (TF-IDF vocabulary)."""
    from sklearn.linear_model import LogisticRegression

    def fit_score(fit_rows, score_rows, c):
        x = make_x(fit_rows)
        clf = LogisticRegression(C=c, class_weight="balanced", max_iter=5000)
        clf.fit(x[fit_rows], y[fit_rows])
        return float(np.mean(clf.predict(x[score_rows]) == y[score_rows]))

    train_speakers = np.unique(speakers[train])
    best_c, best = C_GRID[0], -1.0
    for c in C_GRID:
        folds = [fit_score(train & (speakers != s), train & (speakers == s), c) for s in train_speakers]
        if np.mean(folds) > best + 1e-9:
            best, best_c = float(np.mean(folds)), c
    return fit_score(train, test, best_c), best_c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--emodb", default=str(REPO.parent / "shared" / "data" / "emodb"))
    ap.add_argument("--out", default="runs/probe", help="work folder (cue cache, built datasets)")
    ap.add_argument("--template", default="paper_v1")
    ap.add_argument("--converter-config", default=None, help="YAML/JSON converter settings for the prompts")
    ap.add_argument("--speaker-norm", dest="speaker_norm", action="store_true", default=True)
    ap.add_argument("--no-speaker-norm", dest="speaker_norm", action="store_false")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "2")

    from sklearn.feature_extraction.text import TfidfVectorizer

    work = Path(args.out)
    manifest = write_manifest(Path(args.emodb), work)
    tag = f"{args.template}-{'spk' if args.speaker_norm else 'train'}-" + (
        Path(args.converter_config).stem if args.converter_config else "default")
    dataset = build(args, manifest, work / tag)
    rows = load_rows(dataset)
    y = np.array([r["label"] for r in rows])
    speakers = np.array([r["speaker"] for r in rows])
    train = np.array([r["split"] == "train" for r in rows])
    texts = [r["text"] for r in rows]
    feats, names = functionals(rows, work / "cues")
    feats = normalise(feats, speakers, train, args.speaker_norm)

    def text_x(fit_rows):
        vec = TfidfVectorizer(ngram_range=(1, 3), sublinear_tf=True, token_pattern=r"(?u)\b[\w-]+\b")
        vec.fit([t for t, keep in zip(texts, fit_rows) if keep])
        return vec.transform(texts)

    def feat_x(_fit_rows):
        return feats

    results = {"clips": len(rows), "features": len(names), "speaker_norm": args.speaker_norm,
               "template": args.template, "converter_config": args.converter_config,
               "mean_tokens": float(np.mean([r["n_tokens"] for r in rows])),
               "max_tokens": int(max(r["n_tokens"] for r in rows))}
    for name, make_x in (("text", text_x), ("features", feat_x)):
        acc12, c12 = probe_accuracy(make_x, y, speakers, train, ~train)
        loso = []
        for s in np.unique(speakers):
            acc, _ = probe_accuracy(make_x, y, speakers, speakers != s, speakers == s)
            loso.append(acc)
        results[name] = {"speaker_12": acc12, "C": c12, "loso_mean": float(np.mean(loso)),
                         "loso": dict(zip(np.unique(speakers).tolist(), loso))}
    results["ratio_speaker_12"] = results["text"]["speaker_12"] / results["features"]["speaker_12"]
    results["ratio_loso"] = results["text"]["loso_mean"] / results["features"]["loso_mean"]
    print(f"\nEmoDB voice probe ({len(rows)} clips; prompts {tag}; tokens mean {results['mean_tokens']:.0f}, "
          f"max {results['max_tokens']})")
    print(f"{'representation':<40} {'speaker 12':>10} {'LOSO mean':>10}")
    print(f"{'prompt words (TF-IDF)':<40} {results['text']['speaker_12']:>10.3f} {results['text']['loso_mean']:>10.3f}")
    norm = "per-speaker z" if args.speaker_norm else "train-split z"
    print(f"{'88 eGeMAPS functionals, ' + norm:<40} {results['features']['speaker_12']:>10.3f} "
          f"{results['features']['loso_mean']:>10.3f}")
    print(f"{'ratio text / features':<40} {results['ratio_speaker_12']:>10.3f} {results['ratio_loso']:>10.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
