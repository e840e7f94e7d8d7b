"""Issue 13 check: telephone-band speech through the VAD gate + ASR, and a phone video stored
sideways through the face pipeline, each against its clean original (CREMA-D demo clips).

    PYTHONPATH=$PWD OMP_NUM_THREADS=2 .venv/bin/python bench/bench_bad_input.py [--work DIR]

Needs ffmpeg (the inputs are made from the demo clips at run time). Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import numpy as np


def ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *map(str, args)], check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--work", type=Path, default=None, help="folder for the generated inputs (default: a temp dir)")
    ap.add_argument("--fps", type=float, default=4.0, help="face sampling rate (4 fps: 10 frames of a 2.5 s clip)")
    args = ap.parse_args()
    from faster_whisper.vad import get_vad_model

    from textualize.audio_cues.asr_faster_whisper import FasterWhisperASR
    from textualize.cues import MissingCue
    from textualize.demo import fetch_demo_corpus
    from textualize.media import load_audio
    from textualize.visual_cues.pipeline import extract_facial_cues

    corpus = fetch_demo_corpus()
    work = args.work or Path(tempfile.mkdtemp(prefix="bad_input_"))
    work.mkdir(parents=True, exist_ok=True)
    speech, video = corpus / "1002_DFA_ANG_XX.mp3", corpus / "1001_DFA_HAP_XX.flv"

    print("| audio | Silero v6 (faster-whisper) peak p | gate | transcript |")
    print("|---|---|---|---|")
    asr = FasterWhisperASR()
    vad16 = get_vad_model()
    inputs = [("original 1002_DFA_ANG_XX.mp3", speech)]
    for codec in ("pcm_s16le", "pcm_mulaw", "pcm_u8"):
        out = work / f"tel_{codec}.wav"
        ffmpeg("-i", speech, "-ac", "1", "-ar", "8000", "-c:a", codec, out)
        inputs.append((f"8 kHz {codec}", out))
    for name, path in inputs:
        audio = load_audio(path, 16_000)
        padded = np.pad(audio, (0, 512 - len(audio) % 512))
        peak = float(np.max(vad16(padded)))
        t = asr.transcribe(audio, 16_000)
        if isinstance(t, MissingCue):
            gate, text = "-", f"MissingCue({t.reason}): {t.detail}"
        else:
            g = t.provenance.params.get("vad_gate", {})
            gate = f"{g.get('model', 'faster-whisper vad_filter')} @ {g.get('sample_rate', 16000)} Hz, band {g.get('high_band_db', '?')} dB"
            text = f"{t.text!r} (spans {t.vad_segments})"
        print(f"| {name} | {peak:.2f} | {gate} | {text} |")

    sideways, stored = work / "phone_portrait.mp4", work / "stored.mp4"
    ffmpeg("-i", video, "-vf", "transpose=clock", "-c:v", "libx264", "-c:a", "aac", stored)
    ffmpeg("-i", stored, "-c", "copy", "-metadata:s:v:0", "rotate=90", sideways)
    print()
    print(f"| video ({args.fps:g} fps) | frames with a face | AU01 | AU04 | AU12 | recorded |")
    print("|---|---|---|---|---|---|")
    for name, path in (("upright 1001_DFA_HAP_XX.flv", video), ("stored sideways + display matrix", sideways)):
        cues = extract_facial_cues(path, "mediapipe", None, fps=args.fps)
        if isinstance(cues, MissingCue):
            print(f"| {name} | {cues} | | | | |")
            continue
        m = {a: cues.au_summary[a].mean for a in ("AU01", "AU04", "AU12")}
        rec = cues.provenance.params.get("display_matrix", "-")
        print(f"| {name} | {sum(cues.face_present)}/{len(cues.times_s)} | {m['AU01']:.2f} | {m['AU04']:.2f} | {m['AU12']:.2f} | {rec} |")


if __name__ == "__main__":
    main()
