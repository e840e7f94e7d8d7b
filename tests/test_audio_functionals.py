"""``audio_functionals``: the clip-level eGeMAPS functionals as a stream, and the early / pooled
fusion models using it.

Fast tests: a tiny cue table (functional columns kept through ``column_map``) through
build-dataset + build-streams, and tiny random models (named so). Real test: openSMILE eGeMAPSv02
functionals of real EmoDB clips (../shared) through the same pipeline and train.py; skipped
without ../shared or opensmile.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from baselines.feature_fusion import train as ff_train
from baselines.feature_fusion.layers import clip_level_vector, window_mean
from baselines.feature_fusion.models.early import EarlyFusion
from baselines.feature_fusion.models.pooled import PooledFusion
from textualize.build import BuildConfig, build_dataset
from textualize.registry import STREAM_EXTRACTORS
from textualize.streams.writer import StreamsConfig, StreamsError, build_streams

quiet = dict(progress=False, log=lambda m: None)
FUNCS = ["fa", "fb", "fc"]


def cue_table_dataset(tmp: Path, rows: list[dict], columns=FUNCS) -> Path:
    """A voice-only cue-table dataset whose functional columns are kept as ``ProsodyCues.functionals``."""
    pd.DataFrame(rows).to_csv(tmp / "cues.csv", index=False)
    out = tmp / "out"
    build_dataset(BuildConfig(dataset="cue-table", root=str(tmp / "cues.csv"), out=str(out), modalities=("voice",),
                              tokenizer=None, adapter_options={"column_map": {c: "keep" for c in columns}}), **quiet)
    return out


def tiny_rows(nan_at: str | None = None) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        sid = f"c{i:02d}"
        row = {"id": sid, "label": ["a", "b"][i % 2], "split": ["train", "train", "validation", "test"][i % 4],
               "speaker": f"s{i % 3}"}
        for k, c in enumerate(FUNCS):
            row[c] = float(rng.normal(10 * (k + 1) + (i % 3) * 5, 2.0))  # per-speaker offsets
        if sid == nan_at:
            row["fb"] = np.nan
        rows.append(row)
    return rows


def load(out: Path) -> tuple[dict, dict[str, np.ndarray]]:
    manifest = json.loads((out / "streams" / "manifest.json").read_text())
    arrays = {}
    for split in ("train", "validation", "test"):
        with np.load(out / "streams" / f"{split}.npz") as z:
            arrays.update({k: z[k] for k in z.files})
    return manifest, arrays


# ---------------------------------------------------------------- the stream


def test_registered():
    assert STREAM_EXTRACTORS.get("audio_functionals").modality == "voice"


def test_tiny_table_stream_shape_mask_raw_values_and_nan_is_a_mask(tmp_path):
    rows = tiny_rows(nan_at="c05")
    out = cue_table_dataset(tmp_path, rows)
    manifest = build_streams(StreamsConfig(str(out), streams=("audio_functionals",), speaker_normalisation=False), **quiet)
    entry = manifest["streams"]["audio_functionals"]
    assert entry["clip_level"] is True and entry["dim"] == 3 and entry["names"] == FUNCS
    assert entry["samples_with_data"] == 11 and entry["missing"] == {"samples_with_missing_functionals": 1}
    assert manifest["speaker_normalisation"] is False
    _, arrays = load(out)
    for r in rows:
        v, m = arrays[f"{r['id']}/audio_functionals"], arrays[f"{r['id']}/audio_functionals_mask"]
        assert v.shape == (1, 3) and m.shape == (1,)  # no time span: one step
        if r["id"] == "c05":  # a NaN functional: masked, zeros, never data
            assert not m[0] and np.all(v == 0)
        else:
            assert m[0] and np.allclose(v[0], [r[c] for c in FUNCS], rtol=1e-5)


def test_tiny_table_per_speaker_z_like_the_other_streams(tmp_path):
    rows = tiny_rows(nan_at="c05")
    out = cue_table_dataset(tmp_path, rows)
    manifest = build_streams(StreamsConfig(str(out), streams=("audio_functionals",)), **quiet)  # default: on
    assert manifest["speaker_normalisation"] is True and manifest["normalisation"]["speakers_own_statistics"] == 3
    _, arrays = load(out)
    for spk in ("s0", "s1", "s2"):
        ids = [r["id"] for r in rows if r["speaker"] == spk]
        present = [arrays[f"{i}/audio_functionals"][0] for i in ids if arrays[f"{i}/audio_functionals_mask"][0]]
        raw = np.array([[r[c] for c in FUNCS] for r in rows if r["speaker"] == spk and r["id"] != "c05"])
        z = np.stack(present)
        assert np.allclose(z.mean(axis=0), 0, atol=1e-5) and np.allclose(z.std(axis=0), 1, atol=1e-4)
        assert np.allclose(z, (raw - raw.mean(0)) / raw.std(0), atol=1e-4)  # from the speaker's own clips
    assert np.all(arrays["c05/audio_functionals"] == 0) and not arrays["c05/audio_functionals_mask"].any()


def test_tiny_table_first_row_missing_a_functional_is_a_clear_error(tmp_path):
    out = cue_table_dataset(tmp_path, tiny_rows(nan_at="c00"))
    with pytest.raises(StreamsError, match="audio_functionals.*not among"):
        build_streams(StreamsConfig(str(out), streams=("audio_functionals",)), **quiet)


def test_no_prosody_gives_no_source():
    from textualize.cues import MissingCue
    from textualize.streams.base import SampleContext

    ext = STREAM_EXTRACTORS.get("audio_functionals")()

    class Clip:
        prosody = MissingCue("no_speech", "silence")

    ctx = SampleContext(id="x", split="train", speaker="", start_s=None, end_s=None, clip_id="x", media_path=None,
                        cue_dir=Path("."), clip=Clip())
    assert ext.source(ctx) is None


# ---------------------------------------------------------------- the models (tiny random)

LAYOUT = {  # audio_lld 4-d per frame (stream 0), audio_functionals 5-d clip-level (stream 1)
    "streams": ["audio_lld", "audio_functionals"], "dims": {"audio_lld": 4, "audio_functionals": 5},
    "offsets": {"audio_lld": (0, 4), "audio_functionals": (4, 9)},
    "modalities": {"voice": [0, 1]}, "modality_streams": {"voice": ["audio_lld", "audio_functionals"]},
    "clip_level": ["audio_functionals"],
}
ONLY_FUNCS = {"streams": ["audio_functionals"], "dims": {"audio_functionals": 5}, "offsets": {"audio_functionals": (0, 5)},
              "modalities": {"voice": [0]}, "modality_streams": {"voice": ["audio_functionals"]},
              "clip_level": ["audio_functionals"]}


def tiny_batch(b=4, t=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(b, t, 9, generator=g)
    feats[:, :, 4:] = torch.randn(b, 1, 5, generator=g)  # one vector per sample, repeated
    masks = torch.ones(b, t, 2, dtype=torch.bool)
    masks[1, :, 1] = False  # sample 1: functionals missing
    masks[2, 4:, :] = False  # sample 2: trailing padding
    feats[~masks[..., 1], 4:] = 0
    return feats, masks


def test_tiny_random_window_mean_is_the_clip_vector_and_absent_is_zero():
    feats, masks = tiny_batch()
    mean, present = window_mean(feats, masks, LAYOUT)
    assert mean.shape == (4, 1, 9) and present.shape == (4, 1, 2)
    assert torch.allclose(mean[0, 0, 4:], feats[0, 0, 4:]) and not present[1, 0, 1] and torch.all(mean[1, 0, 4:] == 0)
    vec = clip_level_vector(feats, masks, LAYOUT)
    assert vec.shape == (4, 6) and torch.equal(vec[:, 5], torch.tensor([1.0, 0.0, 1.0, 1.0]))


def test_tiny_random_pooled_puts_functionals_straight_into_the_pooled_vector():
    torch.manual_seed(0)
    model = PooledFusion(LAYOUT, 3, [8], kernel_size=3, dropout=0.0, attention=8).eval()
    assert set(model.tcns) == {"voice"} and model.tcns["voice"].levels[0].net[0].conv.in_channels == 4 + 1  # LLDs + mask
    feats, masks = tiny_batch()
    ref = model.clip_logits(feats, masks)
    noisy = feats.clone()
    noisy[1, :, 4:] = 99.0  # garbage under the functionals' mask
    noisy[2, 4:] = -50.0  # and under padding
    assert torch.allclose(model.clip_logits(noisy, masks), ref, atol=1e-5)
    changed = feats.clone()
    changed[0, :, 6] += 2.0
    assert not torch.allclose(model.clip_logits(changed, masks)[0], ref[0], atol=1e-4)
    only = PooledFusion(ONLY_FUNCS, 3, [8], dropout=0.0).eval()  # functionals only: no TCN at all
    assert len(only.tcns) == 0 and only.clip_logits(feats[..., 4:], masks[..., 1:]).shape == (4, 3)


def test_tiny_random_early_on_clip_vectors_is_a_window_of_length_one():
    torch.manual_seed(0)
    model = EarlyFusion(ONLY_FUNCS, 3, [8, 8], kernel_size=5, dropout=0.0).eval()
    assert model.per_clip and not EarlyFusion(LAYOUT, 3, [8]).per_clip
    feats, masks = tiny_batch()
    f, m = feats[..., 4:], masks[..., 1:]
    out = model(feats=f, masks=m)["logits"]
    assert out.shape == (4, 6, 3) and torch.equal(out, out[:, :1].expand(-1, 6, -1))
    # the same vector over 1 or 6 frames: the same decision (no causal warm-up over repeated rows)
    assert torch.allclose(model(feats=f[:, :1], masks=m[:, :1])["logits"][:, 0], out[:, 0], atol=1e-5)


@pytest.mark.parametrize("cls,layout", [(PooledFusion, LAYOUT), (EarlyFusion, ONLY_FUNCS)])
def test_tiny_random_models_learn_a_class_shown_only_in_the_functionals(cls, layout):
    torch.manual_seed(0)
    model = cls(layout, 3, [8], dropout=0.0)
    y = torch.arange(24) % 3
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(24, 5, 9, generator=g)
    feats[:, :, 4:] = torch.randn(24, 1, 5, generator=g)
    feats[:, :, 6] += 2.0 * y[:, None].float()
    masks = torch.ones(24, 5, 2, dtype=torch.bool)
    if layout is ONLY_FUNCS:
        feats, masks = feats[..., 4:], masks[..., 1:]
    labels = y[:, None].expand(-1, 5).clone()
    from tests.test_pooled_fusion import adam_losses

    losses = adam_losses(model, 40, feats=feats, masks=masks, labels=labels)
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("model", ["early", "pooled"])
def test_tiny_table_trains_through_train_py(tmp_path, model):
    rows = tiny_rows(nan_at="c05") * 1
    out = cue_table_dataset(tmp_path, rows)
    build_streams(StreamsConfig(str(out), streams=("audio_functionals",)), **quiet)
    run = tmp_path / "run"
    argv = ["--dataset", str(out), "--model", model, "--streams", "audio_functionals", "--output_dir", str(run),
            "--use_cpu", "true", "--tcn_channels", "8", "--num_train_epochs", "2", "--per_device_train_batch_size", "4",
            "--save_total_limit", "1"]
    assert ff_train.main(argv) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["model_info"]["streams_manifest"]["streams"]["audio_functionals"]["clip_level"] is True
    preds = [json.loads(x) for x in (run / "predictions" / "test.jsonl").read_text().splitlines()]
    assert len(preds) == 3 and all(abs(sum(p["probs"].values() if isinstance(p["probs"], dict) else p["probs"]) - 1) < 1e-4
                                   for p in preds)


# ---------------------------------------------------------------- real EmoDB features


@pytest.fixture(scope="module")
def emodb_functionals(shared_dir, tmp_path_factory):
    """Real openSMILE eGeMAPSv02 functionals of 40 EmoDB clips (4 emotions, 5 speakers, 2 each)."""
    opensmile = pytest.importorskip("opensmile")
    root = shared_dir / "data" / "emodb"
    if not root.exists():
        pytest.skip("../shared/data/emodb is absent")
    emotions = {"W": "anger", "N": "neutral", "T": "sadness", "F": "happiness"}
    splits = {"03": "train", "08": "train", "09": "train", "10": "validation", "11": "test"}
    files, rows = [], []
    for spk, split in splits.items():
        for code, emotion in emotions.items():
            for f in sorted(root.glob(f"{spk}*{code}?.wav"))[:2]:
                files.append(str(f))
                rows.append({"id": f.stem, "label": emotion, "split": split, "speaker": spk})
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals)
    table = smile.process_files(files)
    for r, values in zip(rows, table.to_numpy()):
        r.update({c: float(v) for c, v in zip(table.columns, values)})
    tmp = tmp_path_factory.mktemp("emodb_funcs")
    out = cue_table_dataset(tmp, rows, columns=list(table.columns))
    return out, rows, list(table.columns)


def test_real_emodb_functionals_stream_holds_the_88_values(emodb_functionals):
    out, rows, columns = emodb_functionals
    manifest = build_streams(StreamsConfig(str(out), streams=("audio_functionals",), speaker_normalisation=False), **quiet)
    entry = manifest["streams"]["audio_functionals"]
    assert entry["dim"] == 88 and entry["names"] == sorted(columns) and entry["samples_with_data"] == len(rows)
    _, arrays = load(out)
    names = entry["names"]
    for r in rows[::7]:
        assert arrays[f"{r['id']}/audio_functionals_mask"].all()
        assert np.allclose(arrays[f"{r['id']}/audio_functionals"][0], [r[n] for n in names], rtol=1e-5, atol=1e-6)


def test_real_emodb_functionals_train_pooled_few_steps(emodb_functionals, tmp_path):
    out, rows, _ = emodb_functionals
    build_streams(StreamsConfig(str(out), streams=("audio_functionals",), force=True), **quiet)  # per-speaker z
    run = tmp_path / "run"
    argv = ["--dataset", str(out), "--model", "pooled", "--streams", "audio_functionals", "--output_dir", str(run),
            "--use_cpu", "true", "--num_train_epochs", "3", "--learning_rate", "0.01", "--save_total_limit", "1"]
    assert ff_train.main(argv) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["metrics"]["test"]["rows"]["n"] == 8
    assert info["model_info"]["streams_manifest"]["speaker_normalisation"] is True
