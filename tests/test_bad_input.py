"""Bad and unusual real-world input (issue 13): telephone-band speech, phone video stored sideways,
file names that are not UTF-8, link loops, plus the odd files that already worked.

Every input is built at test time from a CREMA-D demo clip with ffmpeg, with ``os.symlink`` or
from a byte-string file name; nothing large is committed. The end-to-end test runs one
``extract-cues`` over all of them: each input must end as a cue file or a failure line.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from textualize.cli import app
from textualize.cues import ClipCues, FacialCues, MediaInfo, MissingCue, ProsodyCues, Transcript
from textualize.extract import (
    FAILURES_FILE, MANIFEST_FILE, clip_ids_for, cue_path, expand_inputs, load_clip, save_clip, sequence_path,
)
from textualize.manifest import JsonlLog, atomic_write_json, printable, read_json
from textualize.media import input_problem, iter_frames, probe

FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed (apt-get install ffmpeg)")
LEGACY = b"legacy\xe9name"  # Latin-1 "legacyéname": not valid UTF-8


def ffmpeg(*args: str | Path) -> None:
    subprocess.run([FFMPEG, "-loglevel", "error", "-y", *map(str, args)], check=True)


def telephone(src: Path, out: Path, codec: str) -> Path:
    """8 kHz mono in a WAV with ``codec`` (pcm_s16le, pcm_mulaw, pcm_u8): call-centre audio."""
    ffmpeg("-i", src, "-ac", "1", "-ar", "8000", "-c:a", codec, out)
    return out


def sideways(src: Path, out: Path) -> Path:
    """A phone-style video: frames stored rotated 90° clockwise, with the display matrix that
    shows them upright (ffprobe: rotation=90), as phones store portrait video."""
    tmp = out.with_name(out.stem + "_stored.mp4")
    ffmpeg("-i", src, "-vf", "transpose=clock", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", tmp)
    ffmpeg("-i", tmp, "-c", "copy", "-metadata:s:v:0", "rotate=90", out)
    tmp.unlink()
    return out


# ---------------------------------------------------------------- fast unit checks


def test_json_records_any_file_name_faithfully(tmp_path):
    name = os.fsdecode(LEGACY + b".mp3")  # what Python gives for such a file: surrogate escapes
    rec = {"clip_id": os.fsdecode(LEGACY), "path": str(tmp_path / name), "reason": f"{name}: empty file", "ok": "café"}
    atomic_write_json(tmp_path / "m.json", rec)
    log = JsonlLog(tmp_path / "f.jsonl")
    log.append(rec)
    for back in (read_json(tmp_path / "m.json"), next(iter(log))):
        assert back == rec
        assert os.fsencode(back["path"]).endswith(LEGACY + b".mp3")  # the original bytes again
    raw = (tmp_path / "m.json").read_bytes()
    assert b"\\udce9" in raw and "café".encode() in raw  # valid UTF-8 JSON, other names unescaped
    json.loads(raw.decode("utf-8"))
    assert printable(name) == "legacy\\xe9name.mp3" and printable("café") == "café"


def test_links_missing_files_and_folders_have_reasons(tmp_path):
    (tmp_path / "a.mp4").symlink_to("b.mp4")
    (tmp_path / "b.mp4").symlink_to("a.mp4")
    (tmp_path / "dangling.mp4").symlink_to("nowhere.mp4")
    (tmp_path / "dir.mp4").mkdir()
    assert "symbolic link loop" in input_problem(tmp_path / "a.mp4")
    assert "broken symbolic link to nowhere.mp4" in input_problem(tmp_path / "dangling.mp4")
    assert "not found" in input_problem(tmp_path / "none.mp4")
    assert "folder" in input_problem(tmp_path / "dir.mp4")
    os.mkfifo(tmp_path / "fifo.wav")  # reading it would block the run forever
    assert "not a regular file" in input_problem(tmp_path / "fifo.wav")
    (tmp_path / "fifo.wav").unlink()
    # folders keep broken links (they become failure lines), ids never raise on a loop
    files = expand_inputs([tmp_path])
    assert {p.name for p in files} == {"a.mp4", "b.mp4", "dangling.mp4"}
    assert sorted(clip_ids_for(files)) == ["a", "b", "dangling"]


def test_save_clip_never_leaves_an_orphan_npz(tmp_path, monkeypatch):
    import textualize.extract as ex

    cues = ClipCues(os.fsdecode(LEGACY), MediaInfo(path="x", content_sha256="0", duration_s=1.0),
                    MissingCue("no_speech"), MissingCue("no_speech"), MissingCue("no_face"))
    seq = {"face_au": np.zeros((2, 3), np.float32)}
    save_clip(tmp_path, cues, seq)
    assert os.path.exists(os.path.join(os.fsencode(tmp_path), LEGACY + b".json"))  # the name's own bytes
    assert load_clip(tmp_path, cues.clip_id).clip_id == cues.clip_id

    real = ex.atomic_write_bytes

    def json_write_fails(path, data):
        if str(path).endswith(".json"):
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(ex, "atomic_write_bytes", json_write_fails)
    with pytest.raises(OSError):
        save_clip(tmp_path, cues, seq)
    assert not sequence_path(tmp_path, cues.clip_id).exists() and not cue_path(tmp_path, cues.clip_id).exists()


@needs_ffmpeg
def test_display_rotation_is_applied_like_ffmpeg_autorotate(tmp_path, pyfeat_data):
    """Each display rotation phones write (0, 90, 180, 270°): our frames equal FFmpeg's autorotated
    ones, and probe reports the displayed size and the rotation."""
    import av

    img = np.zeros((48, 64, 3), np.uint8)
    img[:16, :32] = (255, 0, 0)
    img[30:, 40:] = (0, 0, 255)
    img[:, 60:] = (0, 255, 0)
    for deg in (0, 90, 180, -90):
        p = tmp_path / f"r{deg}.mp4"
        with av.open(str(p), "w") as out:
            s = out.add_stream("libx264", rate=5)
            s.width, s.height, s.pix_fmt, s.options = 64, 48, "yuv444p", {"crf": "0"}
            s.set_display_rotation(deg)
            for _ in range(2):
                for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    out.mux(pkt)
            for pkt in s.encode():
                out.mux(pkt)
        ref = subprocess.run([FFMPEG, "-loglevel", "error", "-i", str(p), "-frames:v", "1", "-f", "rawvideo",
                              "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
        frame = next(iter(iter_frames(p, fps=5)))
        h, w = frame.rgb.shape[:2]
        assert len(ref) == frame.rgb.size, deg
        assert np.abs(np.frombuffer(ref, np.uint8).reshape(h, w, 3).astype(int) - frame.rgb).mean() < 3, deg
        info = probe(p)
        assert (info.width, info.height) == (w, h) and info.rotation_deg == (180 if deg == 180 else deg)
        assert frame.display.op == {0: "", 90: "cclock", 180: "hvflip", -90: "clock"}[deg]
    # a PNG whose frames carry side data PyAV cannot wrap (reading it used to crash the process)
    assert next(iter(iter_frames(pyfeat_data / "Image_with_alpha.png"))).display.op == ""


def test_exif_orientation_of_photos_is_applied(tmp_path):
    """Phone photos keep their rotation in EXIF (FFmpeg's decoders ignore it): same pixels as
    Pillow's exif_transpose for all eight orientations."""
    from PIL import Image, ImageOps

    img = np.zeros((40, 80, 3), np.uint8)
    img[:10, :20] = (255, 0, 0)
    img[30:, 70:] = (0, 0, 255)
    for orientation in range(1, 9):
        p = tmp_path / f"exif{orientation}.png"
        im = Image.fromarray(img)
        exif = im.getexif()
        exif[0x0112] = orientation
        im.save(p, exif=exif)
        frame = next(iter(iter_frames(p)))
        with Image.open(p) as ref:
            assert np.array_equal(frame.rgb, np.asarray(ImageOps.exif_transpose(ref).convert("RGB"))), orientation
        assert (probe(p).width, probe(p).height) == (frame.rgb.shape[1], frame.rgb.shape[0])


@needs_ffmpeg
def test_narrowband_speech_gets_the_8khz_vad(tmp_path, crema_d):
    """CREMA-D 1002 ANG at 8 kHz: faster-whisper's bundled 16 kHz Silero export peaks at 0.43 on it
    (no speech); the gate measures the empty upper band and uses Silero's 8 kHz model."""
    from faster_whisper.vad import get_speech_timestamps

    from textualize.audio_cues.vad import high_band_db, speech_chunks
    from textualize.media import load_audio

    wide = load_audio(crema_d / "1002_DFA_ANG_XX.mp3", 16_000)
    assert high_band_db(wide) > -30
    chunks, info = speech_chunks(wide)
    assert chunks and not info["narrowband"] and info["sample_rate"] == 16_000
    for codec in ("pcm_s16le", "pcm_mulaw", "pcm_u8"):
        tel = load_audio(telephone(crema_d / "1002_DFA_ANG_XX.mp3", tmp_path / f"{codec}.wav", codec), 16_000)
        assert high_band_db(tel) < -40
        assert get_speech_timestamps(tel) == []  # the failure this fixes, still there upstream
        chunks, info = speech_chunks(tel)
        assert info["narrowband"] and info["sample_rate"] == 8_000
        spans = [(c["start"] / 16_000, c["end"] / 16_000) for c in chunks]
        assert len(spans) == 1 and spans[0][0] < 0.6 and spans[0][1] > 1.6, (codec, spans)  # speech 0.5-1.7 s
    silence = np.zeros(16_000, np.float32)
    assert speech_chunks(silence)[0] == []


# ---------------------------------------------------------------- one run over everything


@pytest.fixture(scope="module")
def odd_inputs(tmp_path_factory, crema_d) -> Path:
    """A folder holding every kind of input of issue 13, built from two demo clips (~2.5 s each)."""
    if FFMPEG is None:
        pytest.skip("ffmpeg not installed")
    d = tmp_path_factory.mktemp("inputs")
    video, speech = crema_d / "1001_DFA_HAP_XX.flv", crema_d / "1002_DFA_ANG_XX.mp3"
    shutil.copy(video, d / "upright.flv")
    sideways(video, d / "phone_portrait.mp4")
    for codec in ("pcm_s16le", "pcm_mulaw", "pcm_u8"):
        telephone(speech, d / f"tel_{codec}.wav", codec)
    ffmpeg("-i", video, "-t", "1.5", "-vf", "scale=240:-2", "-c:v", "libvpx-vp9", "-deadline", "realtime",
           "-cpu-used", "8", "-b:v", "200k", "-c:a", "libopus", "-b:a", "32k", d / "vp9_opus.webm")
    ffmpeg("-i", video, "-t", "1", "-vf", "fps=5,scale=240:-1", d / "animated.gif")
    ffmpeg("-i", video, "-frames:v", "1", "-an", "-c:v", "libx264", d / "one_frame.mp4")
    ffmpeg("-i", video, "-t", "0.6", "-an", "-vf", "scale=3840:2160", "-c:v", "libx264", "-preset", "ultrafast",
           d / "uhd_4k_no_audio.mp4")
    ffmpeg("-i", speech, "-ar", "96000", "-c:a", "pcm_s32le", d / "café_96k_s32.wav")
    ffmpeg("-f", "lavfi", "-i", "color=black:s=64x64:d=1:r=5", "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono",
           "-t", "1", "-c:v", "libx264", "-c:a", "aac", d / "black_silent_64px.mp4")
    shutil.copy(crema_d / "1002_DFA_DIS_XX.mp3", os.path.join(os.fsencode(d), LEGACY + b".mp3"))
    (d / "random_bytes.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    (d / "empty.wav").write_bytes(b"")
    os.symlink("nowhere.mp4", d / "dangling.mp4")
    os.symlink("loop_b.mp4", d / "loop_a.mp4")
    os.symlink("loop_a.mp4", d / "loop_b.mp4")
    return d


@pytest.mark.slow
def test_one_run_over_every_odd_input(tmp_path, odd_inputs):
    out = tmp_path / "cues"
    result = CliRunner().invoke(app, ["extract-cues", str(odd_inputs), "--out", str(out), "--fps", "2"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert result.exception is None and "Traceback" not in result.output
    legacy_id = os.fsdecode(LEGACY)
    assert "legacy\\xe9name" in result.output  # shown, escaped, in the summary table

    ids = {Path(p).stem for p in map(os.fsdecode, os.listdir(odd_inputs))}
    cued = {p.stem for p in out.glob("*.json") if p.name != MANIFEST_FILE}
    failed = {r["clip_id"]: r for r in JsonlLog(out / FAILURES_FILE)}
    assert cued | set(failed) == ids and not cued & set(failed)  # each input: a cue file or a failure line
    assert {p.stem for p in out.glob("*.npz")} <= cued  # no orphan sequences
    reasons = {k: v["reason"] for k, v in failed.items()}
    assert set(reasons) == {"random_bytes", "empty", "dangling", "loop_a", "loop_b"}
    assert "symbolic link loop" in reasons["loop_a"] and "symbolic link loop" in reasons["loop_b"]
    assert "broken symbolic link" in reasons["dangling"] and "empty file" in reasons["empty"]
    assert "cannot be decoded" in reasons["random_bytes"]
    manifest = read_json(out / MANIFEST_FILE)
    assert {c["clip_id"] for c in manifest["clips"]} == ids and manifest["extractor_version"] >= 4

    # telephone speech is transcribed, and its voice described
    for codec in ("pcm_s16le", "pcm_mulaw", "pcm_u8"):
        c = load_clip(out, f"tel_{codec}")
        assert isinstance(c.transcript, Transcript), (codec, c.transcript)
        assert "forget" in c.transcript.text.lower() and c.transcript.provenance.params["vad_gate"]["narrowband"]
        assert isinstance(c.prosody, ProsodyCues) and c.media.audio_sample_rate == 8000

    # the phone video is analysed upright: as many faces as the upright original, same AUs
    up, rot = load_clip(out, "upright"), load_clip(out, "phone_portrait")
    assert rot.media.rotation_deg == 90 and (rot.media.width, rot.media.height) == (480, 360)
    assert isinstance(rot.face, FacialCues) and tuple(rot.face.frame_size) == tuple(up.face.frame_size) == (480, 360)
    assert rot.face.provenance.params["display_matrix"] == {"rotation_deg": 90.0, "transform": "cclock", "applied": True}
    assert sum(rot.face.face_present) == sum(up.face.face_present) == len(up.face.times_s)
    for au in ("AU01", "AU04", "AU12"):
        assert abs(rot.face.au_summary[au].mean - up.face.au_summary[au].mean) < 0.08, au
    assert isinstance(rot.transcript, Transcript)

    # the legacy Latin-1 name: its own cue file under the same bytes, the name kept in the JSON
    legacy = load_clip(out, legacy_id)
    assert legacy.clip_id == legacy_id and os.fsencode(legacy.media.path).endswith(LEGACY + b".mp3")
    assert os.path.exists(os.path.join(os.fsencode(out), LEGACY + b".json"))
    assert isinstance(legacy.transcript, Transcript)

    # the cases that already worked keep working
    hi = load_clip(out, "café_96k_s32")
    assert isinstance(hi.transcript, Transcript) and hi.media.audio_sample_rate == 96000
    webm = load_clip(out, "vp9_opus")
    assert webm.media.video_codec == "vp9" and webm.media.audio_codec == "opus" and isinstance(webm.face, FacialCues)
    gif = load_clip(out, "animated")
    assert gif.transcript.reason == "no_audio_track" and isinstance(gif.face, FacialCues)
    one = load_clip(out, "one_frame")
    assert isinstance(one.face, FacialCues) and len(one.face.times_s) == 1
    uhd = load_clip(out, "uhd_4k_no_audio")
    assert (uhd.media.width, uhd.media.height) == (3840, 2160) and uhd.transcript.reason == "no_audio_track"
    assert isinstance(uhd.face, FacialCues) and max(uhd.face.frame_size) == 640
    black = load_clip(out, "black_silent_64px")
    assert black.face.reason == "no_face" and black.transcript.reason in ("no_speech", "too_short")
