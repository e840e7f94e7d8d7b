"""Deep ensembles (Lakshminarayanan et al. 2017) of any feature model, for epistemic uncertainty.

    python baselines/feature_fusion/deep_ensemble.py --members 5 --dataset DIR --model emenet --output_dir RUN [train.py flags]

Each member is an ordinary ``train.py`` run with its own seed (initialisation, shuffling, dropout)
in ``RUN/seed-<s>/`` — the project's one training loop, nothing else; a rerun skips finished
members. Then every split present in all members is combined into ``RUN/predictions/<split>.jsonl``
(the shared format): ``probs`` is the members' mean and each row carries, from
``eval.calibration.ensemble_spread``, ``entropy`` (normalised entropy of the mean: total),
``aleatoric`` (mean of the members' normalised entropies), ``epistemic`` (their difference, the
normalised mutual information), ``member_std`` (SD over members of the probability of the
predicted class) and ``member_probs`` (each member's probabilities, in class order).
``RUN/run.json`` records the members, their metrics and a temperature fitted on validation.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def _mean_extra(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Members' per-row extras: numbers (and dicts of numbers, e.g. AU probabilities) averaged,
    anything else from the first member; the per-member uncertainty keys are dropped."""
    drop = {"logits", "entropy", "entropy_calibrated", "fold"}
    out: dict[str, Any] = {}
    for key, first in rows[0].items():
        if key in drop:
            continue
        values = [r.get(key) for r in rows]
        if all(v == first for v in values):
            out[key] = first
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            out[key] = round(float(np.mean(values)), 6)
        elif all(isinstance(v, dict) for v in values) and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for v in values for x in v.values()
        ):
            out[key] = {k: round(float(np.mean([v.get(k, np.nan) for v in values])), 6) for k in first}
        else:
            out[key] = first
    if "fold" in rows[0]:
        out["fold"] = rows[0]["fold"]
    return out


def combine_members(member_dirs: Sequence[str | Path], out_dir: str | Path, aggregate: str = "mean_probs") -> dict[str, Any]:
    """Write the ensemble of finished runs ``member_dirs`` into ``out_dir``; returns its metrics."""
    from eval.calibration import (apply_temperature, brier_score, ensemble_spread, expected_calibration_error,
                                  fit_temperature, negative_log_likelihood, probs_to_logits)
    from eval.predictions import read_predictions, read_run
    from textualize.training import finish_run, write_split_predictions

    if len(member_dirs) < 2:
        raise ValueError(f"a deep ensemble needs at least 2 members, got {len(member_dirs)}")
    runs = [read_run(d) for d in member_dirs]
    classes = runs[0].classes
    for r in runs[1:]:
        if r.classes != classes:
            raise ValueError(f"{r.path}: classes {r.classes} differ from {runs[0].path}: {classes}")
    # row-level files only: "<split>.clip.jsonl" is rebuilt from the combined rows
    splits = [s for s in runs[0].splits if "." not in s and all(s in r.splits for r in runs[1:])]
    if not splits:
        raise ValueError("the members share no prediction split")
    combined: dict[str, dict[str, Any]] = {}
    for split in splits:
        preds = [read_predictions(r.splits[split], classes) for r in runs]
        ids = preds[0].ids
        preds = [preds[0]] + [p.subset(ids) for p in preds[1:]]  # same rows, same order (KeyError names a gap)
        if any(p.probs is None for p in preds):
            raise ValueError(f"split {split}: a member's predictions carry no probabilities")
        spread = ensemble_spread(np.stack([p.probs for p in preds]))
        extra = []
        for k in range(len(ids)):
            row = _mean_extra([p.extra[k] if p.extra else {} for p in preds])
            row.update(
                entropy=round(float(spread["total"][k]), 6), aleatoric=round(float(spread["aleatoric"][k]), 6),
                epistemic=round(float(spread["epistemic"][k]), 6), member_std=round(float(spread["std"][k]), 6),
                member_probs=[[round(float(v), 6) for v in p.probs[k]] for p in preds],
            )
            extra.append(row)
        combined[split] = {"ids": ids, "labels": preds[0].labels, "probs": spread["mean"], "clips": preds[0].clips,
                           "extra": extra, "spread": spread}
    temperature = None
    if "validation" in combined:
        v = combined["validation"]
        temperature = fit_temperature(probs_to_logits(v["probs"]), [classes.index(lab) for lab in v["labels"]])
    metrics: dict[str, Any] = {}
    for split, c in combined.items():
        logits = probs_to_logits(c["probs"])
        m = write_split_predictions(out_dir, split, c["ids"], c["labels"], c["probs"], classes, clips=c["clips"],
                                    aggregate=aggregate, extra=c["extra"], logits=logits)
        m["uncertainty"] = {k: float(np.mean(c["spread"][k])) for k in ("total", "aleatoric", "epistemic", "std")}
        if temperature is not None:
            y = [classes.index(lab) for lab in c["labels"]]
            cal = apply_temperature(logits, temperature)
            m["calibrated"] = {"temperature": temperature, "ece": expected_calibration_error(cal, y),
                               "nll": negative_log_likelihood(cal, y), "brier": brier_score(cal, y)}
        metrics[split] = m
    first = runs[0].info
    model = first.get("model", "")
    finish_run(
        out_dir, approach=first.get("approach", "feature"), model=model,
        method=f"{first.get('method', model)} deep ensemble of {len(runs)}",
        dataset_dir=(first.get("dataset") or {}).get("path", ""), classes=classes, seed=first.get("seed"),
        metrics=metrics, config={"members": [str(Path(d)) for d in member_dirs], "aggregate": aggregate},
        timings={"members_train_s": float(sum((r.info.get("timings") or {}).get("train", 0.0) for r in runs))},
        members=[{"path": str(r.path), "seed": r.info.get("seed"),
                  "metrics": {s: {k: (r.info["metrics"].get(s, {}).get("rows") or {}).get(k)
                                  for k in ("accuracy", "weighted_f1", "macro_f1", "uar", "ece", "nll")}
                              for s in splits}} for r in runs],
        model_info=first.get("model_info"), temperature=temperature,
    )
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    from baselines.feature_fusion import train

    argv = list(sys.argv[1:] if argv is None else argv)
    own = argparse.ArgumentParser(add_help=False, allow_abbrev=False)  # "--seed" is a member flag, not "--seeds"
    own.add_argument("--members", type=int, default=5, help="ensemble size (seeds seed, seed+1, ...)")
    own.add_argument("--seeds", default="", help="explicit comma-separated member seeds (overrides --members)")
    ns, rest = own.parse_known_args(argv)
    fargs, targs, _, _ = train.parse(rest)  # validates the member arguments once, before any training
    seeds = [int(s) for s in ns.seeds.split(",") if s.strip()] or [targs.seed + k for k in range(ns.members)]
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise SystemExit(f"a deep ensemble needs at least 2 distinct seeds, got {seeds}")
    run_dir = Path(targs.output_dir)
    members = []
    for seed in seeds:
        member = run_dir / f"seed-{seed}"
        members.append(member)
        if (member / "run.json").exists() and (member / "predictions").is_dir():
            print(f"member seed {seed}: already finished in {member}")
            continue
        train.main([*rest, "--seed", str(seed), "--output_dir", str(member)])
    metrics = combine_members(members, run_dir, aggregate=fargs.aggregate)
    head = metrics.get("test", metrics.get("validation", {})).get("rows", {})
    print(json.dumps({**{k: round(head[k], 4) for k in ("n", "accuracy", "weighted_f1", "macro_f1", "uar") if k in head},
                      "members": len(members)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
