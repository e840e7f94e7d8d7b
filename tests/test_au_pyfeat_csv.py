"""AU table importers (OpenFace / py-feat CSVs) on real tables, and the py-feat backend's offline
behaviour (its hub weights are not on this machine) and output mapping on a real Fex table."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from textualize.cues import FacialCues, MissingCue, from_json, to_json
from textualize.models import ModelUnavailableError
from textualize.registry import AU_BACKENDS
from textualize.visual_cues.au_csv import detect_format, import_au_table
from textualize.visual_cues.au_pyfeat import (
    PYFEAT_AUS,
    PyFeatAUBackend,
    fex_to_frame_aus,
    missing_pyfeat_weights,
    pyfeat_resource_dir,
)


# ---------------------------------------------------------------- OpenFace CSV


def test_openface_csv_with_leading_space_headers(pyfeat_data):
    path = pyfeat_data / "OpenFace_Test.csv"
    assert " AU12_r" in open(path).readline()  # OpenFace's own header style
    cues = AU_BACKENDS.get("csv")().from_table(str(path))
    assert isinstance(cues, FacialCues)
    assert cues.au_scale == "intensity_0_5"
    assert cues.au_names == ["AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12", "AU14",
                             "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU45"]
    assert len(cues.times_s) == 100 and cues.times_s[1] == pytest.approx(0.001)
    assert all(cues.face_present)
    # presence columns kept raw (AU28 only has a presence classifier), plus confidence and pose
    assert "AU28_c" in cues.raw_names and "confidence" in cues.raw_names
    assert len(cues.raw_values) == 100 and len(cues.raw_values[0]) == len(cues.raw_names)
    conf = cues.raw_names.index("confidence")
    assert cues.raw_values[0][conf] == pytest.approx(0.883333)
    assert cues.boxes[0] is not None and cues.boxes[0].x2 > cues.boxes[0].x1  # from the 68 landmarks
    df = pd.read_csv(path, skipinitialspace=True)
    df.columns = df.columns.str.strip()
    np.testing.assert_allclose(np.array(cues.au_values)[:, 0], df["AU01_r"].to_numpy())
    assert set(cues.au_summary) == set(cues.au_names)
    assert cues.provenance.backend == "csv" and cues.provenance.params["format"] == "openface"


def test_openface_unsuccessful_frames_and_multiple_faces(pyfeat_data, tmp_path):
    df = pd.read_csv(pyfeat_data / "OpenFace_Test.csv", skipinitialspace=True)
    df.columns = df.columns.str.strip()
    df.loc[5:9, "success"] = 0
    df.loc[5:9, "AU12_r"] = np.nan
    # a second, smaller face in frame 1 (FaceLandmarkVidMulti writes one row per face)
    extra = df.iloc[[0]].copy()
    xs = [f"x_{i}" for i in range(68)]
    extra[xs] = extra[xs].to_numpy() * 0.5 + 10
    extra["AU12_r"] = 4.0
    df = pd.concat([df, extra]).sort_values("frame", kind="stable")
    df.columns = [" " + c if c != "frame" else c for c in df.columns]
    path = tmp_path / "of.csv"
    df.to_csv(path, index=False)
    cues = import_au_table(path)
    assert len(cues.times_s) == 100  # one entry per frame
    assert cues.faces_per_frame[0] == 2 and cues.au_values[0][cues.au_names.index("AU12")] == 0.0  # larger face kept
    assert cues.face_present[5:10] == [False] * 5
    assert all(math.isnan(v) for v in cues.au_values[5])
    assert cues.faces_per_frame[5] == 0


# ---------------------------------------------------------------- py-feat Fex CSV


def test_pyfeat_fex_single_image(pyfeat_data):
    cues = import_au_table(pyfeat_data / "Feat_Test.csv")
    assert cues.au_scale == "probability"
    assert cues.au_names == list(PYFEAT_AUS)
    assert cues.emotion_names == ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"]
    assert cues.emotion_values[0][3] == pytest.approx(0.98699605)  # the test image is a smiling face
    assert cues.au_values[0][cues.au_names.index("AU12")] == pytest.approx(0.9643793, rel=1e-6)
    b = cues.boxes[0]
    assert (b.x1, b.y1) == pytest.approx((196.97684, 140.99774)) and b.x2 - b.x1 == pytest.approx(173.81049)
    assert cues.times_s == [0.0] and cues.provenance.params["time_source"] == "single frame (image)"


def test_pyfeat_video_table_needs_fps_or_times(pyfeat_data):
    with pytest.raises(ValueError, match="pass fps="):
        import_au_table(pyfeat_data / "001.csv")  # frame numbers only, video not beside the table
    cues = import_au_table(pyfeat_data / "001.csv", fps=30.0)
    assert len(cues.times_s) == 40 and cues.sampled_fps == pytest.approx(30.0)


def test_pyfeat_news_sample_good_vs_bad_news(shared_dir):
    """py-feat v2 tables (capitalised emotions, blendshapes, approx_time) of 20 real news clips."""
    folder = shared_dir / "data" / "pyfeat_news_sample"
    attrs = pd.read_csv(folder / "clip_attrs.csv", dtype={"clipN": str})
    happiness = {"gn": [], "bn": []}
    au12 = {"gn": [], "bn": []}
    for clip, label in zip(attrs["clipN"], attrs["class"]):
        if not (folder / f"{clip}.csv").exists():  # clip_attrs lists more clips than the sample holds
            continue
        cls = "gn" if label == "gn" else "bn"  # bad news is labelled 'ists' in clip_attrs.csv
        cues = AU_BACKENDS.get("pyfeat-csv")().from_table(str(folder / f"{clip}.csv"))
        assert isinstance(cues, FacialCues) and cues.au_scale == "probability"
        assert len(cues.au_names) == 20 and len(cues.emotion_names) == 7
        assert cues.frame_size == (1080, 1080)
        assert all(cues.face_present)
        vals = np.array(cues.au_values)
        assert np.nanmin(vals) >= 0.0 and np.nanmax(vals) <= 1.0
        happiness[cls].append(np.mean(np.array(cues.emotion_values)[:, 3]))
        au12[cls].append(cues.au_summary["AU12"].mean)
    assert len(happiness["gn"]) == 10 and len(happiness["bn"]) == 10
    # the presenter smiles for good news: py-feat's own numbers, imported unchanged
    assert np.mean(au12["gn"]) > np.mean(au12["bn"])
    assert np.mean(happiness["gn"]) > np.mean(happiness["bn"])


def test_multiple_faces_per_frame_keep_the_largest_box(pyfeat_data, tmp_path):
    df = pd.read_csv(pyfeat_data / "001.csv").iloc[:5]
    small = df.copy()
    small[["FaceRectWidth", "FaceRectHeight"]] = 20.0
    small["AU12"] = 0.01
    nan_row = df.iloc[[0]].copy()
    nan_row.loc[:, [c for c in df.columns if c not in ("frame", "input")]] = np.nan
    nan_row["frame"] = 5  # py-feat's row for a frame without a face
    table = pd.concat([small, df, nan_row]).sort_values("frame", kind="stable")
    path = tmp_path / "multi.csv"
    table.to_csv(path, index=False)
    cues = import_au_table(path, fps=30.0)
    assert cues.faces_per_frame == [2, 2, 2, 2, 2, 0]
    au12 = cues.au_names.index("AU12")
    np.testing.assert_allclose([v[au12] for v in cues.au_values[:5]], df["AU12"].to_numpy())
    assert cues.face_present == [True] * 5 + [False] and cues.boxes[5] is None
    back = from_json(to_json(cues))  # NaN frame survives the JSON round trip
    assert math.isnan(back.au_values[5][0])


# ---------------------------------------------------------------- bad tables


def test_bad_tables(tmp_path):
    no_au = tmp_path / "no_au.csv"
    no_au.write_text("frame,timestamp,foo\n0,0.0,1\n")
    with pytest.raises(ValueError, match="no AU columns"):
        import_au_table(no_au)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty"):
        import_au_table(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text("frame, timestamp, success, AU12_r\n")
    with pytest.raises(ValueError, match="no rows"):
        import_au_table(header_only)
    with pytest.raises(ValueError, match="not found"):
        import_au_table(tmp_path / "missing.csv")
    no_face = tmp_path / "noface.csv"
    no_face.write_text("frame, timestamp, success, AU12_r\n1, 0.0, 0, 0\n2, 0.033, 0, 0\n")
    cue = import_au_table(no_face)
    assert isinstance(cue, MissingCue) and cue.reason == "no_face"
    nan_fex = tmp_path / "nanfex.csv"
    nan_fex.write_text("frame,approx_time,FaceRectX,FaceRectY,FaceRectWidth,FaceRectHeight,AU12,happiness\n"
                       "0,00:00,,,,,,\n1,00:00,,,,,,\n")
    assert import_au_table(nan_fex).reason == "no_face"
    with pytest.raises(ValueError, match="format"):
        import_au_table(nan_fex, fmt="excel")


def test_detect_format():
    assert detect_format([" frame", " AU01_r", " AU01_c"]) == "openface"
    assert detect_format(["frame", "AU01", "anger"]) == "pyfeat"
    with pytest.raises(ValueError):
        detect_format(["frame", "x_0"])


# ---------------------------------------------------------------- py-feat backend


def test_pyfeat_backend_offline_without_weights_is_a_clear_error(monkeypatch):
    if pyfeat_resource_dir() is None:
        pytest.skip("py-feat not installed")
    if not missing_pyfeat_weights():
        pytest.skip("py-feat weights are cached here: nothing to report")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError) as err:
        PyFeatAUBackend()
    msg = str(err.value)
    assert "py-feat/xgb_au/xgb_au_classifier_v2.skops" in msg and "HF_HUB_OFFLINE=1" in msg
    assert "resources" in msg
    assert AU_BACKENDS.get("pyfeat") is PyFeatAUBackend


@pytest.mark.slow
def test_pyfeat_hub_miss_inside_pyfeat_becomes_model_unavailable(monkeypatch):
    """Past our cache pre-check, py-feat's own hub call fails offline; that error is converted."""
    if not missing_pyfeat_weights():
        pytest.skip("py-feat weights are cached here")
    backend = PyFeatAUBackend.__new__(PyFeatAUBackend)
    backend.device = "cpu"
    with pytest.raises(ModelUnavailableError, match="LocalEntryNotFoundError|not in its cache"):
        backend._load_detector(True, pyfeat_resource_dir())


@pytest.mark.slow
def test_pyfeat_output_mapping_on_a_real_fex(pyfeat_data):
    """py-feat's own reader gives a Fex; its columns map onto our AU ids and emotion names."""
    from feat.utils.io import read_feat

    fex = read_feat(str(pyfeat_data / "Feat_Test.csv"))
    out = fex_to_frame_aus(fex, 0)
    assert list(out.aus) == list(PYFEAT_AUS)
    assert out.aus["AU12"] == pytest.approx(float(fex["AU12"].iloc[0]))
    assert out.emotions["happiness"] == pytest.approx(float(fex["happiness"].iloc[0]))
    assert set(out.emotions) == {"anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"}
    assert "Pitch" in out.raw and "FaceScore" in out.raw
