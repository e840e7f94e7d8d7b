"""EmoDB reference: logistic regression on the same clips' eGeMAPS functionals (88 values).

The text model reads the prosody-only prompts of a ``build-dataset --modalities voice`` folder;
this baseline reads the raw openSMILE eGeMAPSv02 functionals of the very same clips from that
build's cue cache, with the same splits (speakers), so the two rows compare the textualisation,
not the data. C is chosen on the validation speaker(s); the model is then scored on validation
and test and writes a run folder in the shared format (``eval`` reads it like any run)::

    python bench/bench_emodb_egemaps_logreg.py --dataset data/emodb --output_dir runs/emodb-logreg
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def find_functionals(obj):
    """The ``functionals`` mapping inside a serialised clip-cue record (wherever it is nested)."""
    if isinstance(obj, dict):
        f = obj.get("functionals")
        if isinstance(f, dict) and f:
            return f
        for v in obj.values():
            found = find_functionals(v)
            if found:
                return found
    elif isinstance(obj, list):
        for v in obj:
            found = find_functionals(v)
            if found:
                return found
    return None


def main() -> None:
    import numpy as np
    from datasets import load_from_disk
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from eval.metrics import weighted_f1_score
    from textualize.training import Stopwatch, finish_run, write_split_predictions

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--output_dir", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    sw = Stopwatch()
    ds_dir = Path(args.dataset)
    manifest = json.loads((ds_dir / "manifest.json").read_text(encoding="utf-8"))
    classes = manifest["label_map"]["classes"]
    cues_dir = Path(manifest["cues_dir"])
    dd = load_from_disk(str(ds_dir))
    data, names = {}, None
    for split, ds in dd.items():
        rows, missing = [], []
        for sid, clip in zip(ds["id"], ds["cue_clip_id"]):
            path = cues_dir / f"{clip}.json"
            f = find_functionals(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else None
            if not f:
                missing.append(sid)
                continue
            names = names or sorted(f)
            rows.append([float(f[n]) for n in names])
        if missing:
            raise SystemExit(f"{split}: no eGeMAPS functionals for {len(missing)} clips (first: {missing[:3]})")
        data[split] = (np.asarray(rows), np.asarray(ds["label_id"]), list(ds["id"]), list(ds["label"]))
    xtr, ytr = data["train"][:2]
    xva, yva = data["validation"][:2]
    best = None
    with sw("train"):
        for c in (0.001, 0.01, 0.1, 1.0, 10.0):
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000, class_weight="balanced"))
            clf.fit(xtr, ytr)
            score = weighted_f1_score(yva, clf.predict(xva))
            if best is None or score > best[0]:
                best = (score, c, clf)
    _, c, clf = best
    out = Path(args.output_dir)
    metrics = {}
    for split in ("validation", "test"):
        if split not in data:
            continue
        x, _, ids, labels = data[split]
        probs = np.zeros((len(ids), len(classes)))
        probs[:, clf.classes_] = clf.predict_proba(x)
        metrics[split] = write_split_predictions(out, split, ids, labels, probs, classes)
        m = metrics[split]["rows"]
        print(f"{split}: weighted F1 {m['weighted_f1']:.4f}  UAR {m['uar']:.4f}  accuracy {m['accuracy']:.4f}  (n={m['n']})")
    finish_run(out, approach="feature", model="logreg-egemaps88", method="logistic-regression", dataset_dir=ds_dir,
               classes=classes, seed=args.seed, metrics=metrics, timings=sw.seconds,
               config={"C": c, "C_grid": [0.001, 0.01, 0.1, 1.0, 10.0], "class_weight": "balanced",
                       "features": len(names)})
    print(f"C={c}, {len(names)} functionals; run folder {out}")


if __name__ == "__main__":
    main()
