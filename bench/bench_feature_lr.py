"""Reference for the feature models: logistic regression on the 88 eGeMAPS functionals.

The functionals are the ones the cue stage already computed (openSMILE eGeMAPSv02, in each
clip's cue record), so the comparison with a fusion model on the same dataset's ``audio_lld``
stream uses the same extractor, the same samples and the same splits:

    python bench/bench_feature_lr.py runs/data/emodb                       # the dataset's splits
    python bench/bench_feature_lr.py runs/data/emodb --kfold 6 --seed 42   # train.py's k-fold plan
    python bench/bench_feature_lr.py runs/data/emodb --speaker-norm        # z-scores per speaker, like the streams

``--kfold`` uses ``baselines/feature_fusion/train.py``'s own fold plan (same grouping, same seed),
so the pooled out-of-fold figures are comparable with ``train.py --kfold``. C is chosen on the
validation split (fold) by weighted F1 from a small grid; features are z-scored on train, after
(``--speaker-norm``) a z-score per speaker over that speaker's own clips (all splits, no labels:
what ``build-streams`` does to the streams by default).
Writes ``OUT/predictions/test.jsonl`` + ``OUT/run.json`` in the shared format when --out is given.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)


def functionals(dataset: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """id -> 88 eGeMAPS functionals from the cue cache of the dataset's build."""
    from datasets import load_from_disk

    manifest = json.loads((dataset / "manifest.json").read_text())
    cue_dir = Path(manifest.get("cues_dir") or dataset / "cues")
    if not cue_dir.exists():
        cue_dir = dataset / "cues"
    dd = load_from_disk(str(dataset))
    out, names = {}, None
    for split in dd:
        for sid, clip in zip(dd[split]["id"], dd[split]["cue_clip_id"]):
            rec = json.loads((cue_dir / f"{clip}.json").read_text())
            f = (rec.get("prosody") or {}).get("functionals")
            if not isinstance(f, dict):
                raise SystemExit(f"{sid}: no eGeMAPS functionals in {cue_dir / (clip + '.json')} (voice cues missing?)")
            names = names or sorted(f)
            out[sid] = np.asarray([np.nan if f[n] is None else float(f[n]) for n in names], dtype=np.float64)
    return out, names


def speaker_z(feats: dict[str, np.ndarray], table: list[dict]) -> dict[str, np.ndarray]:
    """Each sample's functionals z-scored with its speaker's own mean and SD (no labels; NaNs kept);
    samples without a speaker or whose speaker has one clip use the training split's statistics
    (as ``build-streams`` does)."""
    by_speaker: dict[str, list[str]] = {}
    for r in table:
        by_speaker.setdefault(r["speaker"] or "\0" + r["id"], []).append(r["id"])
    train = np.stack([feats[r["id"]] for r in table if r["split"] == "train"])
    out = {}
    for ids in by_speaker.values():
        x = np.stack([feats[i] for i in ids])
        ref = x if len(ids) > 1 else train
        mu, sd = np.nanmean(ref, axis=0), np.nanstd(ref, axis=0)
        z = (x - mu) / np.where(sd > 0, sd, 1.0)
        out.update(zip(ids, z))
    return out


def fit_predict(x_tr, y_tr, x_va, y_va, x_te, classes):
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from eval.metrics import weighted_f1_score

    best = None
    for c in C_GRID:
        clf = make_pipeline(SimpleImputer(), StandardScaler(),
                            LogisticRegression(C=c, max_iter=5000, class_weight="balanced"))
        clf.fit(x_tr, y_tr)
        score = weighted_f1_score(y_va, clf.predict(x_va), labels=list(range(len(classes)))) if len(y_va) else 0.0
        if best is None or score > best[0]:
            best = (score, c, clf)
    _, c, clf = best
    probs = np.zeros((len(x_te), len(classes)))
    probs[:, clf.classes_] = clf.predict_proba(x_te)
    return probs, c, best[0]


def main() -> None:
    from baselines.feature_fusion.train import dataset_classes, kfold_splits, sample_table
    from eval.metrics import classification_metrics, summary
    from textualize.training import finish_run, write_split_predictions

    p = argparse.ArgumentParser()
    p.add_argument("dataset")
    p.add_argument("--kfold", type=int, default=0)
    p.add_argument("--fold_by", default="speaker")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", default=None)
    p.add_argument("--speaker-norm", dest="speaker_norm", action="store_true",
                   help="z-score the functionals per speaker first (like build-streams' default)")
    a = p.parse_args()
    dataset = Path(a.dataset)
    classes = dataset_classes(dataset)
    feats, names = functionals(dataset)
    table = sample_table(dataset)
    if a.speaker_norm:
        feats = speaker_z(feats, table)
    label = {r["id"]: classes.index(r["label"]) for r in table}
    if a.kfold:
        plans = kfold_splits(table, a.kfold, a.fold_by, a.seed)
    else:
        plans = [{s: [r["id"] for r in table if r["split"] == s] for s in ("train", "validation", "test")}]
    ids, probs, per_fold, cs, val_scores = [], [], [], [], []
    for plan in plans:
        xs = {s: np.stack([feats[i] for i in plan[s]]) if plan[s] else np.zeros((0, len(names))) for s in plan}
        ys = {s: np.asarray([label[i] for i in plan[s]]) for s in plan}
        pr, c, val = fit_predict(xs["train"], ys["train"], xs["validation"], ys["validation"], xs["test"], classes)
        val_scores.append(val)
        per_fold.append(summary(classification_metrics(ys["test"], pr.argmax(1), classes, probs=pr)))
        ids += plan["test"]
        probs.append(pr)
        cs.append(c)
    probs = np.concatenate(probs)
    y = np.asarray([label[i] for i in ids])
    pooled = summary(classification_metrics(y, probs.argmax(1), classes, probs=probs))
    result = {"dataset": str(dataset), "features": f"{len(names)} eGeMAPSv02 functionals (cue cache)",
              "kfold": a.kfold, "speaker_norm": a.speaker_norm, "C": cs, "validation_weighted_f1": val_scores, "pooled_test": pooled, "folds": per_fold}
    if a.out:
        lab = {r["id"]: r["label"] for r in table}
        m = write_split_predictions(a.out, "test", ids, [lab[i] for i in ids], probs, classes)
        finish_run(a.out, approach="feature", model="logreg-egemaps-functionals", method="logistic regression",
                   dataset_dir=dataset, classes=classes, seed=a.seed, metrics={"test": m, "folds": per_fold},
                   config=vars(a), timings={})
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
