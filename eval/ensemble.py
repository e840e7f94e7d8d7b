"""Ensemble: the mean of several runs' probabilities (seeds, models, folds), as one run folder.

Equal weights, nothing chosen on any split: each member already selected its own checkpoint on
validation, so the ensemble's validation figure is as honest as a member's. Members must cover the
same ids with the same gold labels and classes (:func:`eval.hybrid.align` says what differs). The
result is a run folder in the shared format (``run.json`` + ``predictions/<split>.jsonl``, clip
files when rows are parts of clips), so ``eval compare`` reads it like a trained run; its
``describe.parameters`` is the members' sum, the size to quote beside its figure.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from eval.hybrid import HybridError, align
from eval.predictions import Predictions, read_run


def mean_probabilities(members: Sequence[Predictions], what: str = "") -> Predictions:
    """Every member's rows aligned on the first member's ids and classes; the mean of their
    probabilities and its arg-max."""
    if len(members) < 2:
        raise HybridError(f"an ensemble needs at least two members, got {len(members)}")
    first = members[0]
    aligned = [first] + [align(first, m, what, ("first member's", f"member {k + 2}'s"))[1] for k, m in enumerate(members[1:])]
    probs = np.mean([m.probs for m in aligned], axis=0)
    probs = probs / probs.sum(axis=1, keepdims=True)
    clips = next((m.clips for m in aligned if m.clips is not None), None)
    return Predictions(ids=list(first.ids), labels=list(first.labels), predictions=[first.classes[k] for k in probs.argmax(1)],
                       classes=list(first.classes), probs=probs, clips=clips)


def write_ensemble_run(runs: Sequence[str | Path], out: str | Path, aggregate: str = "mean_probs") -> Path:
    """Average ``runs`` into ``out``: every row-level split all members have."""
    from eval.predictions import write_run_json
    from textualize.training import write_split_predictions

    members = [read_run(r) for r in runs]
    splits = [s for s in members[0].splits if not s.endswith(".clip") and all(s in m.splits for m in members)]
    if not splits:
        raise HybridError("the runs share no prediction split: " + "; ".join(f"{m.path}: {sorted(m.splits) or 'none'}" for m in members))
    metrics: dict[str, Any] = {}
    for split in splits:
        mean = mean_probabilities([m.predictions(split) for m in members], split)
        metrics[split] = write_split_predictions(out, split, mean.ids, mean.labels, mean.probs, mean.classes,
                                                 clips=mean.clips, aggregate=aggregate)
    infos = [m.info for m in members]
    approaches = {i.get("approach") for i in infos}
    params = [(i.get("describe") or {}).get("parameters") for i in infos]
    datasets = {str((i.get("dataset") or {}).get("manifest_sha256") or (i.get("dataset") or {}).get("path")) for i in infos}
    write_run_json(out, {
        "approach": approaches.pop() if len(approaches) == 1 else "hybrid",
        "model": " + ".join(str(i.get("model")) for i in infos),
        "method": f"ensemble of {len(members)} (mean probabilities)",
        "dataset": infos[0].get("dataset"),
        "classes": members[0].classes,
        "seed": None,
        "metrics": metrics,
        "describe": {"parameters": int(sum(params)) if all(isinstance(p, int) for p in params) else None,
                     "members": len(members)},
        "config": {"members": [str(m.path) for m in members], "aggregate": aggregate,
                   "same_dataset": len(datasets) == 1},
        "sources": [{k: i.get(k) for k in ("approach", "model", "method", "seed", "git_commit", "date")} for i in infos],
        "timings": {},
    })
    return Path(out)
