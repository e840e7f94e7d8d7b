"""Visual pipeline on real media: detection, main-face tracking, sampling, odd inputs, summaries."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from textualize.cues import FaceBox, FacialCues, MissingCue, from_json, to_json
from textualize.media import MediaError, iter_frames, probe
from textualize.visual_cues.face_tracking import MainFaceTracker, box_area
from textualize.cues import time_windows as windows
from textualize.visual_cues.temporal import au_stats, summarize_aus




# fixtures `mediapipe_backend` and `mtcnn` come from conftest.py


@pytest.fixture(scope="module")
def extract(mtcnn, mediapipe_backend):
    from textualize.visual_cues.pipeline import extract_facial_cues

    def run(path, **kw):
        return extract_facial_cues(path, mediapipe_backend, mtcnn, **kw)

    return run


def _au(cues: FacialCues, au: str) -> np.ndarray:
    return np.asarray(cues.au_values, float)[:, cues.au_names.index(au)]


# ---------------------------------------------------------------- tracker (pure logic)


def test_tracker_keeps_the_speaker_when_a_larger_face_appears():
    tr = MainFaceTracker()
    speaker = FaceBox(100, 100, 200, 200, 0.99)
    assert tr.update([speaker], 0.0).main == speaker
    big = FaceBox(300, 50, 550, 300, 0.99)
    moved = FaceBox(110, 105, 210, 205, 0.98)
    step = tr.update([big, moved], 0.2)
    assert step.main == moved and step.n_faces == 2


def test_tracker_acquires_most_prominent_and_reacquires_after_gap():
    tr = MainFaceTracker(max_gap_s=1.0)
    small, large = FaceBox(0, 0, 40, 40, 0.99), FaceBox(200, 200, 320, 320, 0.95)
    assert tr.update([small, large], 0.0).main == large
    assert tr.update([], 0.2).main is None  # main face gone for a moment
    other = FaceBox(0, 0, 50, 50, 0.99)
    assert tr.update([other], 0.4).main is None  # within the gap: not the speaker
    assert tr.update([FaceBox(205, 198, 322, 318, 0.97)], 0.6).main is not None  # speaker is back
    assert tr.update([other], 2.0).main == other  # gap exceeded: re-acquired


def test_tracker_follows_a_fast_move_by_centre_distance():
    tr = MainFaceTracker()
    tr.update([FaceBox(100, 100, 200, 200)], 0.0)
    jumped = FaceBox(170, 130, 270, 230)  # IoU 0.12 < min_iou, centre 0.54 diagonals away
    far = FaceBox(600, 100, 700, 200)
    assert tr.update([far, jumped], 0.2).main == jumped


# ---------------------------------------------------------------- temporal statistics


def test_au_stats_on_known_series():
    t = np.arange(10) * 0.2
    v = [0.0, 0.1, 0.5, 0.6, 0.7, 0.2, math.nan, 0.4, 0.1, 0.0]
    s = au_stats(v, t, "activation")  # threshold 0.3
    assert s.max == pytest.approx(0.7) and s.peak_time_s == pytest.approx(0.8)
    assert s.onset_time_s == pytest.approx(0.4)
    assert s.mean == pytest.approx(np.nanmean(v))
    assert s.active_fraction == pytest.approx(4 / 9)
    assert s.sustained  # 0.4..0.8 = 3 frames = 0.6 s >= 0.5 s
    short = au_stats([0.0, 0.9, 0.0, 0.9, 0.0], t[:5], "activation")
    assert not short.sustained  # two 0.2 s blips
    none = au_stats([math.nan] * 3, t[:3], "probability")
    assert math.isnan(none.mean) and none.active_fraction == 0.0
    assert math.isnan(au_stats([0.1, 0.2], t[:2], "intensity_0_5").onset_time_s)
    with pytest.raises(ValueError):
        au_stats([0.1], t[:1], "percent")


def test_windows_and_windowed_summary():
    assert windows(5.0, 2.0) == [(0.0, 2.0), (2.0, 4.0), (4.0, 5.0)]
    assert windows(3.0, 2.0, 1.0) == [(0.0, 2.0), (1.0, 3.0)]
    assert windows(1.0, 4.0) == [(0.0, 1.0)]
    assert windows(0.0, 2.0) == []
    with pytest.raises(ValueError):
        windows(3.0, 0.0)
    t = np.arange(10) * 0.2
    vals = [[float(i >= 5)] for i in range(10)]
    first = summarize_aus(["AU12"], vals, t, "probability", 0.0, 1.0)["AU12"]
    second = summarize_aus(["AU12"], vals, t, "probability", 1.0, 2.0)["AU12"]
    assert first.max == 0.0 and second.active_fraction == 1.0 and second.onset_time_s == pytest.approx(1.0)


# ---------------------------------------------------------------- real media


def test_single_face_video(extract, pyfeat_data):
    path = pyfeat_data / "single_face.mp4"
    cues = extract(path, window_s=1.0)
    assert isinstance(cues, FacialCues)
    n = len(cues.times_s)
    assert abs(n - probe(path).duration_s * 5) <= 1.5
    assert all(cues.face_present) and set(cues.faces_per_frame) == {1}
    assert cues.au_scale == "activation" and cues.au_names[0] == "AU01"
    assert np.nanmax(np.asarray(cues.au_values)) <= 1.0 and np.nanmin(np.asarray(cues.au_values)) >= 0.0
    assert len(cues.raw_names) == 51 and len(cues.raw_values) == n
    assert cues.frame_size == (640, 360) and cues.sampled_fps == 5.0
    assert set(cues.au_summary) == set(cues.au_names)
    p = cues.provenance
    assert p.backend == "mediapipe" and p.params["detector"] == "mtcnn" and p.params["fps"] == 5.0
    again = from_json(to_json(cues))
    assert again.au_names == cues.au_names and again.au_summary["AU12"].mean == pytest.approx(cues.au_summary["AU12"].mean)
    from textualize.visual_cues.pipeline import facial_windows

    wins = facial_windows(cues)
    assert wins[0][0] == (0.0, 1.0) and set(wins[0][1]) == set(cues.au_names)


@pytest.mark.slow
def test_longer_real_video(extract, pyfeat_data):
    cues = extract(pyfeat_data / "WolfgangLanger_Pexels.mp4")
    assert abs(len(cues.times_s) - 19.69 * 5) <= 1.5
    assert np.mean(cues.face_present) > 0.9
    np.testing.assert_allclose(np.diff(cues.times_s), 0.2, atol=1 / 23.976 + 1e-6)


def test_no_face_video(extract, pyfeat_data):
    cues = extract(pyfeat_data / "no_face.mp4")
    assert isinstance(cues, MissingCue) and cues.reason == "no_face"
    assert "no_face.mp4" in cues.detail


@pytest.mark.parametrize("name, face_first", [("face_noface.mov", True), ("noface_face.mov", False)])
def test_face_appears_or_disappears(extract, pyfeat_data, name, face_first):
    cues = extract(pyfeat_data / name)
    present = cues.face_present
    assert any(present) and not all(present)
    assert present[0] is face_first and present[-1] is (not face_first)
    missing = [i for i, p in enumerate(present) if not p]
    assert all(math.isnan(v) for v in cues.au_values[missing[0]])


def test_multi_face_image_picks_one_main_face(extract, pyfeat_data):
    cues = extract(pyfeat_data / "multi_face.jpg")
    assert len(cues.times_s) == 1 and cues.sampled_fps == 0.0
    assert cues.faces_per_frame[0] > 1 and cues.face_present == [True]
    frame = next(iter_frames(pyfeat_data / "multi_face.jpg", max_side=640))
    from textualize.visual_cues.face_tracking import MTCNNDetector

    faces = MTCNNDetector().detect(frame.rgb)
    assert cues.boxes[0] == max(faces, key=lambda b: box_area(b) * b.score)


def test_image_with_alpha(extract, pyfeat_data):
    cues = extract(pyfeat_data / "Image_with_alpha.png")
    assert isinstance(cues, FacialCues) and cues.face_present == [True]


def test_crema_d_sampling_and_smile_sanity(extract, crema_d):
    means = {}
    for emo in ("HAP", "NEU", "SAD"):
        path = crema_d / f"1001_DFA_{emo}_XX.flv"
        cues = extract(path)
        assert abs(len(cues.times_s) - probe(path).duration_s * 5) <= 1.5
        assert all(cues.face_present)
        means[emo] = float(np.nanmean(_au(cues, "AU12")))
    # real-data sanity check: the happy rendition smiles more (measured ~0.66 vs ~0.18)
    assert means["HAP"] > means["NEU"] + 0.2 and means["HAP"] > means["SAD"] + 0.2


def test_redetect_stride_matches_detect_every_frame(extract, crema_d):
    path = crema_d / "1001_DFA_HAP_XX.flv"
    every, strided = extract(path, redetect_every=1), extract(path, redetect_every=5)
    assert every.times_s == strided.times_s
    np.testing.assert_allclose(np.nanmean(np.asarray(every.au_values), 0),
                               np.nanmean(np.asarray(strided.au_values), 0), atol=0.08)


def _write_video(src, dst, rate, codec="libx264", seconds=2.0, size=(320, 180)):
    """Re-encode real frames from ``src`` at ``rate`` fps (frames repeated/dropped to fit)."""
    import av

    frames = [f.rgb for f in iter_frames(src, fps=30.0, max_side=max(size))]
    n = int(round(seconds * rate))
    with av.open(str(dst), "w") as out:
        stream = out.add_stream(codec, rate=Fraction(rate).limit_denominator(1001))
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        elif codec == "libx265":
            stream.options = {"preset": "ultrafast", "x265-params": "log-level=error"}
        for i in range(n):
            rgb = frames[min(len(frames) - 1, int(i / rate * 30))]
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return dst


@pytest.mark.parametrize("rate, codec, suffix", [(24, "libx264", ".mp4"), (30, "libx264", ".mp4"),
                                                 (120, "libx264", ".mp4"), (30, "libx265", ".mkv")])
def test_odd_frame_rates_and_hevc(extract, pyfeat_data, tmp_path, rate, codec, suffix):
    import av

    if codec not in av.codecs_available:
        pytest.skip(f"{codec} not in this FFmpeg build")
    path = _write_video(pyfeat_data / "single_face.mp4", tmp_path / f"v{rate}{suffix}", rate, codec)
    info = probe(path)
    assert info.video_fps == pytest.approx(rate, rel=0.01)
    cues = extract(path)
    assert len(cues.times_s) == 10  # 2 s at 5 fps, whatever the source rate
    grid = np.arange(10) * 0.2
    assert np.all(np.abs(np.asarray(cues.times_s) - grid) <= 1.0 / rate + 1e-6)
    assert np.mean(cues.face_present) >= 0.9
    assert cues.frame_size == (320, 180)


def test_truncated_and_corrupt_video_raise_media_error(extract, pyfeat_data, tmp_path):
    data = (pyfeat_data / "single_face.mp4").read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 3])
    with pytest.raises(MediaError, match="truncated.mp4"):
        extract(truncated)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8)))
    with pytest.raises(MediaError, match="garbage.mp4"):
        extract(garbage)


def test_audio_only_file(extract, crema_d):
    cues = extract(crema_d / "1002_DFA_HAP_XX.mp3")
    assert isinstance(cues, MissingCue) and cues.reason == "no_video_track"


def test_table_backend_is_dispatched_to_from_table(tmp_path):
    from textualize.visual_cues.pipeline import extract_facial_cues

    class TableOnly:  # the dispatch contract only; real table backends live in au_csv.py etc.
        name, kind, scale, au_names, raw_scale = "table-test", "table", "probability", ["AU12"], ""
        seen = []

        def from_table(self, path):
            self.seen.append(path)
            return MissingCue("no_face", detail=path)

    be = TableOnly()
    out = extract_facial_cues(tmp_path / "x.csv", be, detector=object())
    assert out.reason == "no_face" and be.seen == [str(tmp_path / "x.csv")]


def test_bad_arguments(extract, pyfeat_data):
    with pytest.raises(ValueError, match="fps"):
        extract(pyfeat_data / "single_face.mp4", fps=0)
    with pytest.raises(ValueError, match="window_s"):
        extract(pyfeat_data / "single_face.mp4", window_s=-1)


def test_raw_names_learnt_late_give_rectangular_rows(mtcnn, mediapipe_backend, pyfeat_data):
    """A backend that does not declare raw_names: rows of the face-less opening frames are padded."""
    from textualize.visual_cues.pipeline import extract_facial_cues

    class Undeclared:  # the real MediaPipe backend minus its raw_names declaration
        name, kind, scale, raw_scale = mediapipe_backend.name, mediapipe_backend.kind, mediapipe_backend.scale, mediapipe_backend.raw_scale
        au_names = mediapipe_backend.au_names

        def analyze(self, frame, box):
            return mediapipe_backend.analyze(frame, box)

    cues = extract_facial_cues(pyfeat_data / "noface_face.mov", Undeclared(), mtcnn, redetect_every=1)
    assert not cues.face_present[0] and cues.face_present[-1]
    assert len(cues.raw_names) == 51
    assert {len(r) for r in cues.raw_values} == {51}
    assert all(math.isnan(v) for v in cues.raw_values[0])
