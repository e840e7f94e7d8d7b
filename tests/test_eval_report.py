"""eval compare / report / hybrid / stats: metrics against scikit-learn and statsmodels, every
refusal, the hybrid, and a report rendered from real prediction files (real EmoDB clips: a
TF-IDF logistic regression on the rendered prosody prompts as the text run, a logistic regression
on the clips' eGeMAPS low-level descriptors as the feature run)."""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from eval.aggregate import aggregate_predictions
from eval.compare import ComparisonError, compare, load_runs
from eval.hybrid import HybridError, choose_weight, fuse, write_hybrid_run
from eval.metrics import classification_metrics, evaluate_predictions, other_class
from eval.predictions import Predictions, prediction_rows, read_run, write_predictions, write_run_json
from eval.stats import bootstrap_metrics, mcnemar_test, metrics_from_confusion, paired_bootstrap

CLASSES = ["anger", "joy", "neutral", "Other"]


def _probs(n, k, seed, signal=None, strength=2.0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k))
    if signal is not None:
        logits[np.arange(n), signal] += strength
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def _write_run(path: Path, approach: str, ids, labels, probs, classes=CLASSES, splits=("validation", "test"),
               clips=None, manifest="abc", modalities=("text", "face", "voice"), model="m", dataset_path=None):
    """A run folder in the shared format (probabilities given by the caller)."""
    for split in splits:
        write_predictions(path / "predictions" / f"{split}.jsonl",
                          prediction_rows(ids, labels, probs, classes, clips=clips))
    write_run_json(path, {"approach": approach, "model": model, "method": "full", "classes": list(classes), "seed": 0,
                          "dataset": {"path": dataset_path, "manifest_sha256": manifest, "modalities": list(modalities),
                                      "template": {"id": "paper_v1", "version": 1, "hash": "x"}},
                          "metrics": {}, "config": {}, "timings": {}})
    return path


# ---------------------------------------------------------------- metrics against scikit-learn


def test_metrics_from_confusion_match_scikit_learn_on_random_labels():
    rng = np.random.default_rng(0)
    for _ in range(40):
        k = int(rng.integers(2, 7))
        n = int(rng.integers(1, 60))
        y, p = rng.integers(0, k, n), rng.integers(0, k, n)
        m = metrics_from_confusion(confusion_matrix(y, p, labels=range(k)))
        assert m["accuracy"] == pytest.approx(accuracy_score(y, p))
        assert m["weighted_f1"] == pytest.approx(f1_score(y, p, labels=range(k), average="weighted", zero_division=0))
        assert m["macro_f1"] == pytest.approx(f1_score(y, p, average="macro", zero_division=0))
        assert m["uar"] == pytest.approx(balanced_accuracy_score(y, p))
        labels = list(range(k - 1))  # last class excluded, as "Other"
        ref = classification_metrics(y, p, [str(i) for i in range(k)], exclude=[str(k - 1)])
        if ref["n"]:
            m = metrics_from_confusion(confusion_matrix(y, p, labels=range(k)), labels)
            for key in ("accuracy", "weighted_f1", "macro_f1", "uar"):
                assert m[key] == pytest.approx(ref[key]), key


def test_row_and_clip_level_metrics_with_and_without_other_match_scikit_learn():
    rng = np.random.default_rng(3)
    n_clips, per = 40, 5
    clip_gold = rng.integers(0, 4, n_clips)
    ids = [f"c{c}_w{w}" for c in range(n_clips) for w in range(per)]
    clips = [f"c{c}" for c in range(n_clips) for _ in range(per)]
    y = np.repeat(clip_gold, per)
    probs = _probs(len(y), 4, 4, signal=y, strength=1.0)
    pred = Predictions(ids, [CLASSES[i] for i in y], [CLASSES[i] for i in probs.argmax(1)], CLASSES, probs, clips)
    m = evaluate_predictions(pred)
    rows = m["rows"]["all"]
    assert rows["weighted_f1"] == pytest.approx(f1_score(y, probs.argmax(1), average="weighted"))
    assert rows["uar"] == pytest.approx(balanced_accuracy_score(y, probs.argmax(1)))
    keep = y != 3
    wo = m["rows"]["without_other"]
    assert wo["n"] == keep.sum()
    assert wo["macro_f1"] == pytest.approx(f1_score(y[keep], probs.argmax(1)[keep], labels=[0, 1, 2], average="macro", zero_division=0))
    assert "Other" not in wo["per_class"]
    # clip level: mean probabilities per clip, then the same scikit-learn metrics
    clip_probs = probs.reshape(n_clips, per, 4).mean(1)
    c = m["clips"]["all"]
    assert c["n"] == n_clips and m["clips"]["aggregate"] == "mean_probs"
    assert c["accuracy"] == pytest.approx(accuracy_score(clip_gold, clip_probs.argmax(1)))
    assert c["macro_f1"] == pytest.approx(f1_score(clip_gold, clip_probs.argmax(1), average="macro", zero_division=0))
    # a class absent from the split is not averaged in as a zero (scikit-learn's default label set)
    small = classification_metrics([0, 0, 1], [0, 1, 1], CLASSES)
    assert small["macro_f1"] == pytest.approx(f1_score([0, 0, 1], [0, 1, 1], average="macro"))
    assert small["uar"] == pytest.approx(balanced_accuracy_score([0, 0, 1], [0, 1, 1]))
    assert np.asarray(c["confusion"]).tolist() == confusion_matrix(clip_gold, clip_probs.argmax(1), labels=range(4)).tolist()
    p_, r_, f_, s_ = precision_recall_fscore_support(clip_gold, clip_probs.argmax(1), labels=range(4), zero_division=0)
    assert [c["per_class"][k]["f1"] for k in CLASSES] == pytest.approx(f_.tolist())
    assert other_class(CLASSES) == "Other" and other_class(["a", "b"]) is None
    three = Predictions(ids, [CLASSES[i % 3] for i in y], [CLASSES[i % 3] for i in y], CLASSES[:3], None, clips)
    assert "without_other" not in evaluate_predictions(three, aggregate="vote")["rows"]


def test_bootstrap_interval_contains_point_and_shrinks_with_more_samples():
    rng = np.random.default_rng(1)

    def ci_width(n):
        y = rng.integers(0, 3, n)
        p = np.where(rng.random(n) < 0.7, y, rng.integers(0, 3, n))
        ci = bootstrap_metrics(y, p, 3, n_resamples=1000, seed=0)
        point = f1_score(y, p, average="weighted")
        assert ci["weighted_f1"]["low"] <= point <= ci["weighted_f1"]["high"]
        return ci["weighted_f1"]["high"] - ci["weighted_f1"]["low"]

    assert ci_width(2000) < ci_width(100) / 2
    y = rng.integers(0, 3, 300)
    p = rng.integers(0, 3, 300)
    a = bootstrap_metrics(y, p, 3, n_resamples=500, seed=7)
    assert a == bootstrap_metrics(y, p, 3, n_resamples=500, seed=7)  # seeded
    probs = _probs(300, 3, 2)
    b = bootstrap_metrics(y, probs.argmax(1), 3, probs=probs, n_resamples=500)
    assert b["nll"]["low"] < classification_metrics(y, probs.argmax(1), ["a", "b", "c"], probs=probs)["nll"] < b["nll"]["high"]


def test_cluster_bootstrap_resamples_clips_not_rows():
    """Rows of a clip share their prediction: resampling rows as if independent understates the
    spread; resampling clips (groups) gives the interval of the clip-level data."""
    rng = np.random.default_rng(2)
    y_clip = rng.integers(0, 2, 30)
    p_clip = np.where(rng.random(30) < 0.7, y_clip, 1 - y_clip)
    y, p = np.repeat(y_clip, 50), np.repeat(p_clip, 50)
    groups = np.repeat([f"c{i}" for i in range(30)], 50)
    naive = bootstrap_metrics(y, p, 2, n_resamples=1000)
    cluster = bootstrap_metrics(y, p, 2, groups=groups, n_resamples=1000)
    clip_level = bootstrap_metrics(y_clip, p_clip, 2, n_resamples=1000)
    width = lambda c: c["accuracy"]["high"] - c["accuracy"]["low"]
    assert width(cluster) > 3 * width(naive)
    assert width(cluster) == pytest.approx(width(clip_level), rel=0.25)
    assert cluster["_meta"]["unit"] == "clip" and cluster["_meta"]["n_units"] == 30


def test_mcnemar_matches_statsmodels_and_the_exact_binomial():
    from statsmodels.stats.contingency_tables import mcnemar

    rng = np.random.default_rng(5)
    a, b = rng.random(400) < 0.7, rng.random(400) < 0.6
    r = mcnemar_test(a, b)
    table = [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]]
    ref = mcnemar(table, exact=False, correction=True)
    assert not r["exact"] and r["pvalue"] == pytest.approx(ref.pvalue) and r["statistic"] == pytest.approx(ref.statistic)
    small_a = np.array([1, 1, 1, 1, 1, 1, 0, 1, 1, 0], bool)
    small_b = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 0], bool)
    r = mcnemar_test(small_a, small_b)
    assert r["exact"] and (r["a_only"], r["b_only"]) == (5, 1)
    assert r["pvalue"] == pytest.approx(binomtest(1, 6, 0.5).pvalue)
    assert mcnemar_test(small_a, small_a)["pvalue"] == 1.0


def test_paired_bootstrap_difference_and_pvalue():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 4, 600)
    good = np.where(rng.random(600) < 0.8, y, rng.integers(0, 4, 600))
    bad = np.where(rng.random(600) < 0.4, y, rng.integers(0, 4, 600))
    d = paired_bootstrap(y, good, bad, 4, n_resamples=1000)
    obs = f1_score(y, good, average="weighted") - f1_score(y, bad, average="weighted")
    assert d["weighted_f1"]["difference"] == pytest.approx(obs)
    assert 0 < d["weighted_f1"]["low"] < obs < d["weighted_f1"]["high"]
    assert d["weighted_f1"]["pvalue"] < 0.01
    same = paired_bootstrap(y, good, good, 4, n_resamples=500)
    assert same["macro_f1"]["difference"] == 0 and same["macro_f1"]["pvalue"] == 1.0
    # runs that differ on 6 samples, 3 each way: no evidence of a difference
    noisy = good.copy()
    right, wrong = np.flatnonzero(good == y)[:3], np.flatnonzero(good != y)[:3]
    noisy[right], noisy[wrong] = (y[right] + 1) % 4, y[wrong]
    assert paired_bootstrap(y, good, noisy, 4, n_resamples=1000)["weighted_f1"]["pvalue"] > 0.05


# ---------------------------------------------------------------- refusals


@pytest.fixture
def two_runs(tmp_path):
    rng = np.random.default_rng(0)
    ids = [f"s{i:03d}" for i in range(60)]
    y = rng.integers(0, 4, 60)
    labels = [CLASSES[k] for k in y]
    t = _write_run(tmp_path / "text", "text", ids, labels, _probs(60, 4, 1, y))
    f = _write_run(tmp_path / "feat", "feature", ids, labels, _probs(60, 4, 2, y, 1.0))
    return t, f, ids, labels


def test_refuses_different_ids_with_examples(two_runs, tmp_path):
    t, f, ids, labels = two_runs
    rng = np.random.default_rng(0)
    other_ids = ids[3:] + ["extra1", "extra2"]
    g = _write_run(tmp_path / "g", "feature", other_ids, labels[3:] + ["joy", "joy"], _probs(59, 4, 3))
    with pytest.raises(ComparisonError) as e:
        load_runs([t, g])
    msg = str(e.value)
    assert "3 missing from g" in msg and "'s000'" in msg and "2 extra in g" in msg and "'extra1'" in msg


def test_refuses_different_class_lists(two_runs, tmp_path):
    t, f, ids, labels = two_runs
    classes = ["anger", "joy", "neutral", "sadness"]
    g = _write_run(tmp_path / "g", "feature", ids, [c if c != "Other" else "sadness" for c in labels],
                   _probs(60, 4, 3), classes=classes)
    with pytest.raises(ComparisonError, match=r"class lists differ.*missing in g: \['Other'\].*extra in g: \['sadness'\]"):
        load_runs([t, g])


def test_class_order_may_differ(two_runs, tmp_path):
    t, f, ids, labels = two_runs
    pred = read_run(f).predictions("test")
    order = [3, 2, 1, 0]
    g = _write_run(tmp_path / "g", "feature", ids, labels, pred.probs[:, order], classes=[CLASSES[k] for k in order])
    comp = load_runs([t, g])
    assert comp.classes == CLASSES
    np.testing.assert_allclose(comp.runs[1].pred.probs, pred.probs, atol=1e-6)


def test_refuses_missing_split_and_missing_run_json(two_runs, tmp_path):
    t, f, ids, labels = two_runs
    (f / "predictions" / "test.jsonl").unlink()
    with pytest.raises(ComparisonError, match=r"feat: no predictions for split 'test' \(has: validation\)"):
        load_runs([t, f])
    (f / "run.json").unlink()
    with pytest.raises(ComparisonError, match="no run.json"):
        load_runs([t, f])
    with pytest.raises(ComparisonError, match="no such run folder"):
        load_runs([t, tmp_path / "nowhere"])


def test_refuses_different_gold_labels(two_runs, tmp_path):
    t, f, ids, labels = two_runs
    changed = list(labels)
    changed[5] = "joy" if labels[5] != "joy" else "anger"
    g = _write_run(tmp_path / "g", "feature", ids, changed, _probs(60, 4, 3))
    with pytest.raises(ComparisonError, match=r"gold labels differ .* 's005'"):
        load_runs([t, g])


def test_manifest_hash_mismatch_warns_or_refuses_when_strict(two_runs, tmp_path):
    t, f, ids, labels = two_runs
    g = _write_run(tmp_path / "g", "feature", ids, labels, _probs(60, 4, 3), manifest="other")
    comp = load_runs([t, g])
    assert any("different manifests" in w for w in comp.warnings)
    with pytest.raises(ComparisonError, match="strict"):
        load_runs([t, g], strict=True)


def test_cli_refusal_exit_code_and_message(two_runs, tmp_path):
    from typer.testing import CliRunner

    from eval.__main__ import app

    t, f, ids, labels = two_runs
    (f / "predictions" / "test.jsonl").unlink()
    res = CliRunner().invoke(app, ["compare", str(t), str(f), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 2
    assert "no predictions for split 'test'" in res.output
    assert not (tmp_path / "rep" / "report.html").exists()


# ---------------------------------------------------------------- hybrid


def test_hybrid_weight_chosen_on_validation_and_fusion_is_the_weighted_mean(two_runs, tmp_path):
    t, f, ids, labels = two_runs
    tv, fv = read_run(t).predictions("validation"), read_run(f).predictions("validation")
    choice = choose_weight(tv, fv)
    assert 0.0 <= choice.weight <= 1.0 and len(choice.scores) == 21
    best = max(choice.scores.values())
    assert choice.scores[choice.weight] == best
    assert best >= max(choice.scores[0.0], choice.scores[1.0])
    fused = fuse(tv, fv, 0.3)
    np.testing.assert_allclose(fused.probs, 0.3 * tv.probs + 0.7 * fv.probs, atol=1e-5)
    # a useless feature run (uniform probabilities) leaves the text run alone: w = 1 wins or ties
    uniform = Predictions(fv.ids, fv.labels, fv.predictions, fv.classes, np.full_like(fv.probs, 0.25))
    c = choose_weight(tv, uniform)
    assert c.scores[c.weight] == pytest.approx(c.scores[1.0])


def test_hybrid_run_folder_round_trip_and_refusals(two_runs, tmp_path):
    t, f, ids, labels = two_runs
    out = write_hybrid_run(t, f, tmp_path / "hyb")
    info = json.loads((out / "run.json").read_text())
    assert info["approach"] == "hybrid" and set(info["metrics"]) == {"validation", "test"}
    w = info["config"]["text_weight"]
    tp, fp = read_run(t).predictions("test"), read_run(f).predictions("test")
    hp = read_run(out).predictions("test")
    np.testing.assert_allclose(hp.probs, w * tp.probs + (1 - w) * fp.probs, atol=2e-6)
    comp = load_runs([t, f, out])
    result = compare(comp, level="rows", hybrid=False, n_resamples=200)
    assert {r["approach"] for r in result["runs"]} == {"text", "feature", "hybrid"}
    (f / "predictions" / "validation.jsonl").unlink()
    with pytest.raises(HybridError, match="no 'validation' predictions"):
        write_hybrid_run(t, f, tmp_path / "hyb2")


def test_ensemble_is_the_equal_mean_of_members_with_clip_files_and_refusals(tmp_path):
    from typer.testing import CliRunner

    from eval.__main__ import app
    from eval.ensemble import write_ensemble_run

    rng = np.random.default_rng(4)
    ids = [f"c{k // 3}_w{k % 3}" for k in range(30)]
    clips = [i.split("_")[0] for i in ids]
    gold = np.repeat(rng.integers(0, 4, 10), 3)
    labels = [CLASSES[g] for g in gold]
    members = [_write_run(tmp_path / f"seed{s}", "text", ids, labels, _probs(30, 4, s, gold, 1.0), clips=clips) for s in range(3)]
    # the third member lists its classes in another order and its rows reversed: aligned, not misread
    p2 = read_run(members[2]).predictions("test")
    order = [2, 0, 3, 1]
    _write_run(members[2], "text", ids[::-1], labels[::-1], p2.probs[::-1][:, order], classes=[CLASSES[k] for k in order],
               clips=clips[::-1])
    out = write_ensemble_run(members, tmp_path / "ens")
    info = json.loads((out / "run.json").read_text())
    assert info["approach"] == "text" and info["describe"]["members"] == 3 and set(info["metrics"]) == {"validation", "test"}
    got = read_run(out).predictions("test")
    mean = np.mean([read_run(m).predictions("test").subset(ids).probs[:, [read_run(m).classes.index(c) for c in CLASSES]]
                    for m in members], axis=0)
    np.testing.assert_allclose(got.probs, mean, atol=2e-6)
    assert got.predictions == [CLASSES[k] for k in mean.argmax(1)] and got.clips == clips
    assert (out / "predictions" / "test.clip.jsonl").exists()
    # refusals: one member, members over other samples, other gold labels (exit 2 with the reason)
    _write_run(tmp_path / "other", "text", ids[:20], labels[:20], _probs(20, 4, 9))
    res = CliRunner().invoke(app, ["ensemble", str(members[0]), str(tmp_path / "other"), "--out", str(tmp_path / "e2")])
    assert res.exit_code == 2 and "ids differ" in res.output and not (tmp_path / "e2" / "run.json").exists()
    _write_run(tmp_path / "relabelled", "text", ids, labels[1:] + labels[:1], _probs(30, 4, 8))
    with pytest.raises(HybridError, match="gold labels differ"):
        write_ensemble_run([members[0], tmp_path / "relabelled"], tmp_path / "e3")
    res = CliRunner().invoke(app, ["ensemble", str(members[0]), "--out", str(tmp_path / "e4")])
    assert res.exit_code == 2 and "at least two members" in res.output


# ---------------------------------------------------------------- compare on clip-level rows, ablation


def test_compare_clip_level_ablation_and_pairs(tmp_path):
    rng = np.random.default_rng(9)
    n_clips, per = 30, 4
    gold = rng.integers(0, 3, n_clips)
    ids = [f"c{c}_w{w}" for c in range(n_clips) for w in range(per)]
    clips = [f"c{c}" for c in range(n_clips) for _ in range(per)]
    y = np.repeat(gold, per)
    labels = [CLASSES[k] for k in y]
    cls = CLASSES[:3]
    runs = [
        _write_run(tmp_path / "text_all", "text", ids, labels, _probs(len(y), 3, 1, y), cls, clips=clips, manifest="m1"),
        _write_run(tmp_path / "text_voice", "text", ids, labels, _probs(len(y), 3, 2, y, 0.5), cls, clips=clips,
                   manifest="m2", modalities=("voice",)),
        _write_run(tmp_path / "lfan", "feature", ids, labels, _probs(len(y), 3, 3, y, 1.0), cls, clips=clips, manifest="m1"),
    ]
    comp = load_runs(runs)
    result = compare(comp, level="both", n_resamples=300)
    assert result["levels"] == ["rows", "clips"]
    assert result["metrics"]["clips"]["lfan"]["all"]["n"] == n_clips
    assert result["metrics"]["rows"]["lfan"]["all"]["ci"]["_meta"]["unit"] == "clip"
    # 2 text runs x 1 feature run + the 2 hybrids against both others: pairs of different approaches only
    pairs = {(p["a"], p["b"]) for p in result["paired"] if p["level"] == "rows"}
    assert ("text_all", "lfan") in pairs and ("text_voice", "lfan") in pairs and ("text_all", "text_voice") not in pairs
    assert len(result["hybrids"]) == 2 and all("weight" in h for h in result["hybrids"])
    (ablation,) = result["ablation"]
    assert [r["modalities"] for r in ablation["rows"]] == [["voice"], ["text", "face", "voice"]]
    assert any("different manifests" in w for w in result["warnings"])
    with pytest.raises(ComparisonError, match="--level"):
        compare(load_runs(runs), level="frames")


def test_clip_ids_shared_between_runs_and_conflicts_refused(tmp_path):
    """Clip membership is a fact of the dataset: a run that names clips lends them to one that
    does not; one-row clips are whole clips; runs that put a sample in different clips are refused."""
    ids = [f"c{c}_w{w}" for c in range(10) for w in range(3)]
    clips = [f"c{c}" for c in range(10) for _ in range(3)]
    y = np.arange(30) % 3
    labels = [CLASSES[k] for k in np.repeat(np.arange(10) % 3, 3)]
    cls = CLASSES[:3]
    a = _write_run(tmp_path / "a", "text", ids, labels, _probs(30, 3, 1, y), cls)
    b = _write_run(tmp_path / "b", "feature", ids, labels, _probs(30, 3, 2, y), cls, clips=clips)
    comp = load_runs([a, b])
    assert comp.runs[0].pred.clips == clips
    assert compare(comp, n_resamples=100)["metrics"]["clips"]["a"]["all"]["n"] == 10
    one = _write_run(tmp_path / "one", "feature", ids, labels, _probs(30, 3, 2, y), cls, clips=[i + "-clip" for i in ids])
    assert load_runs([a, one]).runs[0].pred.clips is None
    other = _write_run(tmp_path / "other", "feature", ids, labels, _probs(30, 3, 3, y), cls, clips=clips[1:] + ["c9"])
    with pytest.raises(ComparisonError, match="clip ids differ"):
        load_runs([a, b, other])


# ---------------------------------------------------------------- a report from real predictions


@pytest.fixture(scope="module")
def real_runs(shared_dir, tmp_path_factory):
    from real_runs import build_emodb_dataset, train_feature_run, train_text_run

    root = tmp_path_factory.mktemp("emodb_report")
    dataset = build_emodb_dataset(shared_dir, root)
    return (dataset, train_text_run(dataset, root / "runs" / "text"),
            train_feature_run(dataset, root / "runs" / "feature", root / "functionals.npz"))


@pytest.mark.slow
@pytest.mark.shared
def test_report_from_real_emodb_predictions(real_runs, tmp_path):
    from datasets import load_from_disk

    from eval.report import run_compare

    dataset, text_run, feature_run = real_runs
    paths, result = run_compare([text_run, feature_run], tmp_path / "report", n_resamples=500)
    html = paths["html"].read_text(encoding="utf-8")
    md = paths["md"].read_text(encoding="utf-8")
    saved = json.loads(paths["json"].read_text())

    # the numbers in the report are scikit-learn's on the prediction files
    tp = read_run(text_run).predictions("test")
    m = saved["metrics"]["rows"]["text"]["all"]
    assert m["weighted_f1"] == pytest.approx(f1_score(tp.y_true, tp.y_pred, average="weighted", labels=range(len(tp.classes)), zero_division=0))
    assert m["ci"]["weighted_f1"]["low"] <= m["weighted_f1"] <= m["ci"]["weighted_f1"]["high"]
    cell = f"{m['weighted_f1'] * 100:.1f} [{m['ci']['weighted_f1']['low'] * 100:.1f}–{m['ci']['weighted_f1']['high'] * 100:.1f}]"
    assert cell in html and cell in md

    # three approaches: text, feature, and the hybrid row with its validation-chosen weight
    assert [r["approach"] for r in saved["runs"]] == ["text", "feature", "hybrid"]
    (h,) = saved["hybrids"]
    assert f"{h['weight']:.2f}" in html
    # paired tests for text vs feature
    pair = next(p for p in saved["paired"] if (p["a"], p["b"]) == ("text", "feature"))
    assert pair["mcnemar"]["n"] == len(tp) and 0 <= pair["mcnemar"]["pvalue"] <= 1
    assert "McNemar" in html and "Δ weighted F1" in html

    # disagreements carry the real prompts from the dataset's text column
    (d,) = [x for x in saved["disagreements"] if (x["a"], x["b"]) == ("text", "feature")]
    fp = read_run(feature_run).predictions("test").subset(tp.ids)
    assert d["n_disagree"] == sum(a != b for a, b in zip(tp.predictions, fp.predictions)) > 0
    prompts = dict(zip(*(load_from_disk(str(dataset))["test"][c] for c in ("id", "text"))))
    for e in d["examples"]:
        assert e["prompt"] == prompts[e["id"]]
        assert e["a"]["prediction"] != e["b"]["prediction"]
    first = d["examples"][0]["prompt"].splitlines()[0]
    assert re.sub("&", "&amp;", first) in html or first in html

    # plots: embedded PNGs that decode (confusion, per-class F1, reliability, hybrid weight curve)
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) >= 4
    assert all(base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n" for b in images)
    assert "<link" not in html and "<script" not in html  # self-contained
    # provenance: manifest hash, template, git commit
    manifest_sha = read_run(text_run).info["dataset"]["manifest_sha256"]
    assert manifest_sha[:16] in html and "paper_v1" in html
    assert (paths["plots"] / "confusion_rows.png").exists() and "plots/confusion_rows.png" in md


# ---------------------------------------------------------------- the demo's orchestration


def test_demo_stage_errors_name_the_stage_and_show_the_log(tmp_path):
    import sys

    from textualize.demo import DemoError, run_stage

    with pytest.raises(DemoError, match="missing.py is missing from this checkout"):
        run_stage("text model", [sys.executable, str(tmp_path / "missing.py")], tmp_path / "x.log")
    with pytest.raises(DemoError, match=r"(?s)feature model failed \(exit 3\).*boom"):
        run_stage("feature model", [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], tmp_path / "y.log")
    assert "boom" in (tmp_path / "y.log").read_text()


@pytest.mark.slow
@pytest.mark.shared
def test_demo_orchestration_trains_fuses_and_reports_then_resumes(real_runs, tmp_path):
    """run_demo with the trainers swapped for the small real ones of tests/real_runs.py (the
    dataset stage is the EmoDB build of the fixture): every stage runs as a subprocess, the
    report carries the demo's caveat, and a second run skips the finished stages."""
    import sys

    from textualize.demo import DemoConfig, run_demo

    (tmp_path / "dataset").symlink_to(real_runs[0], target_is_directory=True)
    script = str(Path(__file__).parent / "real_runs.py")
    cfg = DemoConfig(
        out=tmp_path, resamples=300, streams_command=None,
        text_command=("{python}", script, "text", "--dataset", "{dataset}", "--output_dir", "{run}", "--num_train_epochs", "{text_epochs}"),
        feature_command=("{python}", script, "feature", "--dataset", "{dataset}", "--output_dir", "{run}",
                         "--functionals", str(real_runs[0].parent / "functionals.npz")),
    )
    summary = run_demo(cfg, build=lambda: None)
    html = Path(summary["report"]["html"]).read_text()
    assert "Demonstration only" in html and "(58 train, 16 validation, 35 test)" in html
    assert [r["approach"] for r in summary["result"]["runs"]] == ["text", "feature", "hybrid"]
    assert summary["result"]["hybrids"][0]["run_folder"].endswith("hybrid")
    assert json.loads((tmp_path / "demo.json").read_text())["report"]["html"].endswith("report.html")
    assert (tmp_path / "logs" / "text.log").read_text().startswith("$ " + sys.executable)
    again = run_demo(cfg, build=lambda: None)
    assert again["timings_s"]["text model"] == 0.0 and again["timings_s"]["feature model"] == 0.0
