"""The one Action Unit vocabulary every AU backend maps to, its three value scales, and the
documented MediaPipe blendshape -> AU table.

Backends disagree on naming ("AU1", "AU01", "AU12_r", "au12"), on which AUs they output and on
what a number means; converters and the fusion baseline need one id space and an explicit scale,
so every backend reports ids from ``AU_IDS`` and a scale from ``AU_SCALES``.
"""
from __future__ import annotations

import math
import re
from typing import Mapping

# FACS (Ekman, Friesen & Hager 2002) ids -> names, for the AUs at least one backend estimates.
AU_VOCABULARY: dict[str, str] = {
    "AU01": "inner brow raiser",
    "AU02": "outer brow raiser",
    "AU04": "brow lowerer",
    "AU05": "upper lid raiser",
    "AU06": "cheek raiser",
    "AU07": "lid tightener",
    "AU09": "nose wrinkler",
    "AU10": "upper lip raiser",
    "AU11": "nasolabial deepener",
    "AU12": "lip corner puller",
    "AU14": "dimpler",
    "AU15": "lip corner depressor",
    "AU17": "chin raiser",
    "AU20": "lip stretcher",
    "AU23": "lip tightener",
    "AU24": "lip pressor",
    "AU25": "lips part",
    "AU26": "jaw drop",
    "AU28": "lip suck",
    "AU43": "eyes closed",
    "AU45": "blink",
}
AU_IDS: tuple[str, ...] = tuple(AU_VOCABULARY)

# What a number on each scale means. Values on different scales are never mixed or compared.
AU_SCALES: dict[str, str] = {
    "probability": "py-feat: classifier probability 0-1 that the AU is present (occurrence, not strength)",
    "intensity_0_5": "OpenFace: regressed FACS intensity 0 (absent) .. 5 (maximum, E); 1 ~ trace (A)",
    "activation": "MediaPipe: blendshape activation 0-1 mapped to AUs (geometry of a 3D face rig, "
    "not FACS-coded; 0 = neutral rig, 1 = fully deformed)",
}

# Value above which an AU counts as active, per scale (used for onset / active fraction).
# probability: the classifiers' decision boundary; intensity: OpenFace's trace level (A = 1);
# activation: blendshapes of neutral faces stay mostly below ~0.2, clear expressions exceed 0.4.
ACTIVITY_THRESHOLDS: dict[str, float] = {"probability": 0.5, "intensity_0_5": 1.0, "activation": 0.3}

_AU_RE = re.compile(r"^\s*(?:AU)?\s*0*(\d{1,2})\s*(?:_?[rc])?\s*$", re.IGNORECASE)


def normalize_au_id(name: str | int, strict: bool = False) -> str:
    """'AU1', 'AU01', 'AU12_r', 'au12', 'AU12_c', 12 -> 'AU12' / 'AU01' (two-digit, upper case).

    ``strict`` also rejects AUs outside ``AU_VOCABULARY``. Raises ``ValueError`` for non-AU names.
    """
    m = _AU_RE.match(str(name))
    if m is None or int(m.group(1)) == 0:
        raise ValueError(f"not an action unit id: {name!r}")
    au = f"AU{int(m.group(1)):02d}"
    if strict and au not in AU_VOCABULARY:
        raise ValueError(f"action unit {au} (from {name!r}) is not in the textualize AU vocabulary")
    return au


def au_name(au: str) -> str:
    """FACS name of an AU id in any spelling ('AU12_r' -> 'lip corner puller')."""
    return AU_VOCABULARY[normalize_au_id(au, strict=True)]


# ---------------------------------------------------------------- MediaPipe blendshapes -> AUs

# MediaPipe FaceLandmarker's 52 blendshapes (ARKit names), in the model's output order.
BLENDSHAPE_NAMES: tuple[str, ...] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight",
    "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft",
    "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight",
    "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight",
    "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight",
)

# AU -> the blendshapes that express it. Left/right pairs (and the two lip rolls for AU28) are
# combined with MAX: FACS codes a unilateral action as that AU (e.g. a one-sided smile is AU12),
# so the stronger side is the AU's strength. mouthPucker (AU18) and mouthFunnel (AU22) have no AU
# in the vocabulary and stay only in the raw blendshapes; AU11, AU23 and AU43 have no blendshape.
BLENDSHAPE_TO_AU: dict[str, tuple[str, ...]] = {
    "AU01": ("browInnerUp",),
    "AU02": ("browOuterUpLeft", "browOuterUpRight"),
    "AU04": ("browDownLeft", "browDownRight"),
    "AU05": ("eyeWideLeft", "eyeWideRight"),
    "AU06": ("cheekSquintLeft", "cheekSquintRight"),
    "AU07": ("eyeSquintLeft", "eyeSquintRight"),
    "AU09": ("noseSneerLeft", "noseSneerRight"),
    "AU10": ("mouthUpperUpLeft", "mouthUpperUpRight"),
    "AU12": ("mouthSmileLeft", "mouthSmileRight"),
    "AU14": ("mouthDimpleLeft", "mouthDimpleRight"),
    "AU15": ("mouthFrownLeft", "mouthFrownRight"),
    "AU17": ("mouthShrugLower",),
    "AU20": ("mouthStretchLeft", "mouthStretchRight"),
    "AU24": ("mouthPressLeft", "mouthPressRight"),
    "AU25": ("jawOpen", "mouthClose"),  # special rule, see below
    "AU26": ("jawOpen",),
    "AU28": ("mouthRollLower", "mouthRollUpper"),
    "AU45": ("eyeBlinkLeft", "eyeBlinkRight"),
}
# AU25 (lips part) = clip(jawOpen - mouthClose, 0, 1). In the ARKit rig mouthClose is "lips held
# together while the jaw is open", so the jaw opening that mouthClose does not cancel is the lip
# aperture; jawOpen alone would call a closed-lip jaw drop "lips part".
BLENDSHAPE_AU_IDS: tuple[str, ...] = tuple(au for au in AU_IDS if au in BLENDSHAPE_TO_AU)


def blendshapes_to_aus(blendshapes: Mapping[str, float]) -> dict[str, float]:
    """Blendshape activations (name -> 0-1) -> AU activations on the ``activation`` scale.

    AUs whose blendshapes are all absent from ``blendshapes`` are NaN (not 0: unknown, not absent).
    """
    out: dict[str, float] = {}
    for au in BLENDSHAPE_AU_IDS:
        if au == "AU25":
            jaw, close = blendshapes.get("jawOpen"), blendshapes.get("mouthClose", 0.0)
            out[au] = math.nan if jaw is None else float(min(1.0, max(0.0, jaw - close)))
            continue
        values = [float(blendshapes[b]) for b in BLENDSHAPE_TO_AU[au] if b in blendshapes]
        out[au] = max(values) if values else math.nan
    return out
