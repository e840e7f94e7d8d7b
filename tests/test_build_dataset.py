"""`textualize build-dataset`: adapters -> cues -> converters -> templates -> DatasetDict, on real
data where it exists, with resume, sharding + merge, modality ablation and bad input."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from datasets import load_from_disk
from typer.testing import CliRunner

from test_corpora import MELD_DEV, MELD_TRAIN, make_cexpr, write_meld
from textualize.build import BuildConfig, BuildError, build_dataset
from textualize.cli import app
from textualize.extract import ExtractConfig

quiet = dict(progress=False, log=lambda m: None)


@pytest.fixture()
def meld_root(tmp_path) -> Path:
    root = tmp_path / "meld"
    write_meld(root, "train_sent_emo.csv", MELD_TRAIN)
    write_meld(root, "dev_sent_emo.csv", MELD_DEV)
    return root


def test_meld_text_only_via_cli(tmp_path, meld_root):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["build-dataset", "--dataset", "meld", "--root", str(meld_root), "--out", str(out),
                                      "--template", "paper_v1", "--modalities", "text"])
    assert result.exit_code == 0, result.output
    dd = load_from_disk(str(out))
    assert set(dd) == {"train", "validation"}  # no test CSV: left out with a notice
    train = dd["train"]
    assert {"id", "label", "text", "messages", "template_id", "template_hash", "n_tokens"} <= set(train.column_names)
    row = train.filter(lambda r: r["id"] == "train_dia0_utt1")[0]
    assert row["label"] == "joy" and "You must've had your hands full." in row["text"]
    assert "Activated AUs" not in row["text"] and "Prosody" not in row["text"]
    assert row["template_id"] == "paper_v1" and len(row["template_hash"]) >= 8 and row["n_tokens"] > 5
    assert row["missing_cues"] == []  # gold transcript, no face/voice requested
    assert [m["role"] for m in row["messages"]] == ["system", "user"]
    empty = train.filter(lambda r: r["id"] == "train_dia1_utt1")[0]
    assert "no speech" in empty["text"] or "empty" in empty["text"] or "(" in empty["text"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["train"]["rows"] == len(MELD_TRAIN) and manifest["template"]["id"] == "paper_v1"
    assert any("test" in n for n in manifest["notices"])
    shown = CliRunner().invoke(app, ["show", str(out), "-n", "1"])
    assert shown.exit_code == 0 and "Transcript" in shown.output


def test_dialogue_context_template(tmp_path, meld_root):
    out = tmp_path / "out"
    build_dataset(BuildConfig(dataset="meld", root=str(meld_root), out=str(out), template="dialogue_v1",
                              modalities=("text",), context_turns=2), **quiet)
    row = load_from_disk(str(out))["train"].filter(lambda r: r["id"] == "train_dia0_utt2")[0]
    # the two previous turns of dialogue 0, in Utterance_ID order, with speakers
    assert "point person" in row["text"] and "hands full" in row["text"] and "Chandler" in row["text"]


def test_unknown_label_is_a_clear_error(tmp_path):
    root = tmp_path / "meld"
    write_meld(root, "train_sent_emo.csv", MELD_TRAIN + [("Hi.", "Ross", "happyish", 2, 0, "00:00:01,000", "00:00:02,000")])
    result = CliRunner().invoke(app, ["build-dataset", "--dataset", "meld", "--root", str(root), "--out", str(tmp_path / "o"),
                                      "--modalities", "text"])
    assert result.exit_code == 2 and "happyish" in result.output


def test_bad_modalities_and_template(tmp_path, meld_root):
    with pytest.raises(BuildError, match="subset"):
        build_dataset(BuildConfig(dataset="meld", root=str(meld_root), out=str(tmp_path / "a"), modalities=("smell",)), **quiet)
    with pytest.raises(Exception, match="paper_v1"):  # unknown id: the error lists the available ones
        build_dataset(BuildConfig(dataset="meld", root=str(meld_root), out=str(tmp_path / "b"), template="nope",
                                  modalities=("text",)), **quiet)


@pytest.mark.slow
def test_manifest_with_real_media_missing_file_and_resume(tmp_path, crema_d):
    csv = tmp_path / "m.csv"
    rows = ["path,label,split,speaker"]
    rows += [f"{crema_d / f'1001_DFA_{e}_XX.flv'},{e.lower()},train,1001" for e in ("ANG", "HAP", "SAD")]
    rows += [f"{crema_d / '1002_DFA_NEU_XX.mp3'},neu,validation,1002", f"{tmp_path / 'gone.mp4'},ang,test,1003"]
    csv.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    config = BuildConfig(dataset="manifest", root=str(csv), out=str(out), template="speech_cues_v1",
                         adapter_options={"classes": "ang,hap,neu,sad"}, extract=ExtractConfig(fps=3.0))
    manifest = build_dataset(config, **quiet)
    dd = load_from_disk(str(out))
    assert dd["train"].num_rows == 3 and dd["validation"].num_rows == 1 and "test" not in dd
    failures = [json.loads(l) for l in (out / "failures.jsonl").read_text().splitlines()]
    assert [f["stage"] for f in failures] == ["extract"] and "gone.mp4" in failures[0]["reason"]
    assert manifest["failures"] == 1
    audio_only = dd["validation"][0]
    assert audio_only["missing_cues"] == ["face"] and "video" in audio_only["text"].lower(), audio_only["text"]
    hap = dd["train"].filter(lambda r: r["label"] == "hap")[0]
    assert "AU12" in hap["text"] or "lip corner puller" in hap["text"]
    feats = np.load(out / "features" / "train.npz")
    key = f"{hap['id']}/face_au"
    assert key in feats and feats[key].shape[1] > 10 and f"{hap['id']}/audio_lld" in feats
    assert (out / "norm_stats.json").exists()
    shown = CliRunner().invoke(app, ["show", str(out), "-n", "1"])
    assert shown.exit_code == 0 and "cues:" in shown.output and "Hz" in shown.output
    # resume: nothing is extracted again
    cues_before = {p.name: p.stat().st_mtime_ns for p in (out / "cues").glob("*.json") if p.name != "manifest.json"}
    build_dataset(config, **quiet)
    cues_after = {p.name: p.stat().st_mtime_ns for p in (out / "cues").glob("*.json") if p.name != "manifest.json"}
    assert cues_before == cues_after and len(cues_before) == 4


@pytest.mark.slow
def test_cexpr_windows_sharded_then_merged(tmp_path, pyfeat_data):
    root = make_cexpr(tmp_path / "cexpr", pyfeat_data)
    out = tmp_path / "out"
    base = dict(dataset="c-expr-db", root=str(root), out=str(out), modalities=("face",), num_shards=2,
                adapter_options={"level": "window", "window_s": 2.0, "hop_s": 2.0}, extract=ExtractConfig(fps=2.0))
    with pytest.raises(BuildError, match="--merge"):
        build_dataset(BuildConfig(**base, merge=True), **quiet)  # nothing extracted yet
    for i in range(2):
        r = build_dataset(BuildConfig(**base, shard_index=i), **quiet)
        assert r["shard"] == i
    assert sum(json.loads(p.read_text())["clips"] for p in (out / "shards").glob("*.json")) == 2
    manifest = build_dataset(BuildConfig(**base, merge=True), **quiet)
    dd = load_from_disk(str(out))
    train = dd["train"]
    assert train.num_rows >= 3 and all(not math.isnan(s) for s in train["start_s"])
    assert all("Activated AUs" in t for t in train["text"]) and all("Transcript" not in t for t in train["text"])
    assert manifest["label_map"]["classes"][0] == "Fearfully Surprised"
    feats = np.load(out / "features" / "train.npz")
    windows = [k for k in feats.files if k.endswith("/face_au")]
    assert windows and all(0 < feats[k].shape[0] <= 5 for k in windows)  # 2 s windows at 2 fps


@pytest.mark.slow
def test_cue_table_from_real_pyfeat_news_tables(tmp_path, shared_dir):
    import pandas as pd

    news = shared_dir / "data" / "pyfeat_news_sample"
    attrs = pd.read_csv(news / "clip_attrs.csv")
    rows = []
    for i in range(1, 21):
        table = news / f"{i:03d}.csv"
        frames = pd.read_csv(table)
        label_row = attrs.iloc[i - 1]
        label = str(label_row.get("class", label_row.iloc[-1]))
        row = {"id": f"news{i:03d}", "label": label, "split": "train" if i % 5 else "test"}
        for au in ("AU06", "AU12", "AU04", "AU15"):
            row[f"{au}_mean"] = frames[au].mean()
        row["happiness_mean"] = frames["Happy"].mean()  # py-feat 0.x spelling in this table
        rows.append(row)
    root = tmp_path / "cues.csv"
    pd.DataFrame(rows).to_csv(root, index=False)
    out = tmp_path / "out"
    build_dataset(BuildConfig(dataset="cue-table", root=str(root), out=str(out), modalities=("face",)), **quiet)
    dd = load_from_disk(str(out))
    assert dd["train"].num_rows == 16 and dd["test"].num_rows == 4
    assert any("lip corner puller" in t for t in dd["train"]["text"])


@pytest.mark.slow
def test_shards_record_failures_and_merge_renders_the_rest(tmp_path, crema_d):
    corrupt = tmp_path / "corrupt.mp3"
    corrupt.write_bytes(b"ID3" + bytes(range(200)) * 10)
    csv = tmp_path / "m.csv"
    rows = ["path,label,split"] + [f"{crema_d / f'1002_DFA_{e}_XX.mp3'},{e.lower()},train" for e in ("ANG", "SAD")]
    rows.append(f"{corrupt},ang,train")
    csv.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    base = dict(dataset="manifest", root=str(csv), out=str(out), modalities=("text", "voice"), num_shards=2,
                extract=ExtractConfig(beam_size=1))
    for i in range(2):
        build_dataset(BuildConfig(**base, shard_index=i), **quiet)
    # each shard keeps its own records (which shard gets which clip depends on a hash of its id)
    shard_records = [json.loads(p.read_text()) for p in (out / "shards").glob("*-of-2.json")]
    assert len(shard_records) == 2 and sum(r["clips"] for r in shard_records) == 3
    assert [len(r["failed"]) for r in shard_records if r["failed"]] == [1]
    assert len(list((out / "cues").glob("failures.shard-*-of-2.jsonl"))) == 1  # only the corrupt file failed
    manifest = build_dataset(BuildConfig(**base, merge=True), **quiet)
    assert load_from_disk(str(out))["train"].num_rows == 2
    failures = [json.loads(l) for l in (out / "failures.jsonl").read_text().splitlines()]
    assert len(failures) == 1 and "corrupt.mp3" in failures[0]["reason"] and manifest["failures"] == 1


def test_precomputed_missing_cue_does_not_block_extraction():
    """A cue-table row with a video but no face columns still gets its face extracted; real
    precomputed cues are kept."""
    from textualize.build import _needs_extraction
    from textualize.corpora.base import Sample
    from textualize.cues import MissingCue, ProsodyCues, ProsodyMeasures

    no_face = Sample("a", "x", "train", media_path="v.mp4", precomputed={"face": MissingCue("no_face")})
    assert _needs_extraction(no_face, need_audio=False, need_visual=True)
    with_prosody = Sample("b", "x", "train", media_path="v.mp4",
                          precomputed={"prosody": ProsodyCues(ProsodyMeasures(0.0, 1.0))})
    assert not _needs_extraction(with_prosody, need_audio=True, need_visual=False)
    assert _needs_extraction(with_prosody, need_audio=True, need_visual=True)
    assert not _needs_extraction(Sample("c", "x", "train"), need_audio=True, need_visual=True)  # text-only


def test_converter_settings_from_a_file(tmp_path, meld_root):
    """AU thresholds, measures and wording are settings (YAML), recorded with a hash; a typo is a
    clear error before any work."""
    cfg = tmp_path / "conv.yaml"
    cfg.write_text("transcript:\n  empty_marker: '(silence)'\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["build-dataset", "--dataset", "meld", "--root", str(meld_root), "--out", str(out),
                                      "--modalities", "text", "--converter-config", str(cfg)])
    assert result.exit_code == 0, result.output
    empty = load_from_disk(str(out))["train"].filter(lambda r: r["id"] == "train_dia1_utt1")[0]
    assert "(silence)" in empty["text"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["converters"]["config"]["transcript"]["empty_marker"] == "(silence)"
    assert len(manifest["converters"]["hash"]) == 12
    cfg.write_text("face:\n  top_m: 3\n")
    bad = CliRunner().invoke(app, ["build-dataset", "--dataset", "meld", "--root", str(meld_root), "--out", str(tmp_path / "o2"),
                                   "--modalities", "text", "--converter-config", str(cfg)])
    assert bad.exit_code == 2 and "converter settings" in bad.output and "top_m" in bad.output
