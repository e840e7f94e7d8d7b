"""Core contracts: cue records round trip, registries, manifests, model locator, media probing."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from textualize.cues import (
    AUStats, ClipCues, FacialCues, MediaInfo, MissingCue, ProsodyCues, ProsodyMeasures,
    Provenance, SpeechSegment, Transcript, Word, from_json, to_json, units_of,
)
from textualize.manifest import JsonlLog, atomic_write_json, read_json, stable_hash
from textualize.media import MediaError, NoAudioTrackError, load_audio, probe
from textualize.models import MODELS, ModelSpec, ModelUnavailableError
from textualize.registry import Registry, UnknownBackendError


def _clip() -> ClipCues:
    transcript = Transcript(
        text="hello there", language="en", language_probability=0.98, duration_s=1.5,
        segments=[SpeechSegment("hello there", 0.1, 1.2, 0.01, -0.2, [Word("hello", 0.1, 0.5, 0.9), Word("there", 0.6, 1.2, 0.8)])],
        vad_segments=[(0.1, 1.2)], provenance=Provenance("faster-whisper", "tiny.en", "1.2.1", {"beam_size": 5}),
    )
    prosody = ProsodyCues(clip=ProsodyMeasures(0.0, 1.5, pitch_mean_hz=180.0, jitter_local=math.nan))
    face = FacialCues(
        au_names=["AU06", "AU12"], au_scale="activation", times_s=[0.0, 0.2], face_present=[True, False],
        au_values=[[0.4, 0.7], [math.nan, math.nan]], au_summary={"AU12": AUStats(0.7, 0.7, 0.0)},
    )
    info = MediaInfo(path="x.mp4", content_sha256="ab", duration_s=1.5, has_audio=True, has_video=True)
    return ClipCues("x", info, transcript, prosody, face)


def test_cue_json_round_trip_keeps_nan_and_types():
    clip = _clip()
    blob = json.dumps(to_json(clip), allow_nan=False)  # strict JSON: NaN must become null
    back = from_json(json.loads(blob))
    assert isinstance(back.transcript, Transcript) and back.transcript.words[1].text == "there"
    assert math.isnan(back.prosody.clip.jitter_local) and back.prosody.clip.pitch_mean_hz == 180.0
    assert math.isnan(back.face.au_values[1][0]) and back.face.au_values[0][1] == 0.7
    assert isinstance(back.face.au_summary["AU12"], AUStats)


def test_to_json_writes_paths_as_strings():
    from pathlib import Path

    assert to_json({"root": Path("a/b"), "x": [float("nan"), 1.5]}) == {"root": "a/b", "x": [None, 1.5]}


def test_missing_cue_round_trip():
    clip = _clip()
    clip.face = MissingCue("no_face", "0 of 12 frames had a face")
    back = from_json(json.loads(json.dumps(to_json(clip))))
    assert isinstance(back.face, MissingCue) and back.face.reason == "no_face"


def test_units_are_recorded():
    u = units_of(ProsodyMeasures)
    assert u["pitch_mean_hz"] == "Hz" and u["hnr_db"] == "dB" and u["speaking_rate_syl_per_s"] == "syllables/s"


def test_registry_unknown_name_lists_choices():
    reg: Registry = Registry("thing", ())
    reg.register("alpha")(object)
    with pytest.raises(UnknownBackendError, match="choose one of: alpha"):
        reg.get("beta")
    with pytest.raises(ValueError):
        reg.register("alpha")(int)


def test_jsonl_log_ignores_torn_last_line(tmp_path):
    log = JsonlLog(tmp_path / "f.jsonl")
    log.append({"a": 1})
    log.append({"a": 2})
    with open(log.path, "a") as f:
        f.write('{"a": 3')  # an interrupted write
    assert [r["a"] for r in log] == [1, 2]


def test_atomic_write_leaves_no_temp_files(tmp_path):
    atomic_write_json(tmp_path / "m.json", {"k": [1, 2]})
    assert read_json(tmp_path / "m.json") == {"k": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "bad.json", {"x": float("nan")})
    assert not (tmp_path / "bad.json").exists() and len(list(tmp_path.iterdir())) == 1


def test_stable_hash_ignores_key_order():
    assert stable_hash({"a": 1, "b": 2}) == stable_hash({"b": 2, "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})


def test_missing_model_message_names_the_package(monkeypatch):
    spec = ModelSpec("x", "testing", "no-such-package-xyz", "model", "pip install no-such-package-xyz")
    with pytest.raises(ModelUnavailableError, match="pip install no-such-package-xyz"):
        spec.require()
    monkeypatch.setenv("TEXTUALIZE_OPENFACE_DIR", "/nonexistent/openface")
    assert MODELS["openface-au"].locate() is None


def test_offline_default_models_are_installed():
    for name in ("whisper-tiny.en-ct2", "mtcnn", "mediapipe-face-landmarker"):
        assert MODELS[name].require().exists()


def test_probe_real_video_and_audio(crema_d):
    info = probe(crema_d / "1001_DFA_HAP_XX.flv")
    assert info.has_video and info.has_audio and 1.0 < info.duration_s < 5.0 and info.video_fps > 0
    audio = load_audio(crema_d / "1002_DFA_ANG_XX.mp3")
    assert audio.dtype == np.float32 and 1.0 < audio.size / 16000 < 5.0 and np.abs(audio).max() > 0.01


def test_corrupt_and_missing_files_raise_media_error(tmp_path, crema_d):
    with pytest.raises(MediaError, match="file not found"):
        probe(tmp_path / "nope.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="empty file"):
        probe(empty)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(MediaError, match="junk.mp4"):
        probe(junk)
    truncated = tmp_path / "truncated.flv"
    truncated.write_bytes((crema_d / "1001_DFA_SAD_XX.flv").read_bytes()[:3000])
    try:  # a truncated file either decodes its head or fails clearly
        load_audio(truncated)
    except MediaError as e:
        assert "truncated.flv" in str(e)


def test_image_has_no_audio_track(pyfeat_data):
    with pytest.raises(NoAudioTrackError, match="no audio track"):
        load_audio(pyfeat_data / "single_face.jpg")
