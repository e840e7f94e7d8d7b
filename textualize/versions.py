"""Library versions recorded in every manifest (results must say what produced them)."""
from __future__ import annotations

from importlib import metadata

TRACKED = (
    "textualize", "torch", "transformers", "peft", "accelerate", "datasets", "faster-whisper",
    "openai-whisper", "ctranslate2", "opensmile", "librosa", "mediapipe", "facenet-pytorch",
    "py-feat", "dlib-bin", "pyfhog", "av", "numpy", "scikit-learn", "bitsandbytes",
)


def library_versions() -> dict[str, str]:
    out = {}
    for name in TRACKED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
