"""``textualize annotate VIDEO --run RUN --out annotated.mp4``: the video with its main face boxed,
the current prediction of a sliding window and its uncertainty beside the box, and the spoken
words as subtitles; sound kept.

The cues of the whole video are extracted once (cached like any input); each window
(``--window`` s every ``--hop`` s) is then predicted from the cues inside it, exactly as
``build-dataset`` describes a window of a longer file. Rendering streams: one decoded frame at a
time is drawn on and encoded (PyAV), audio packets are re-encoded as they are demuxed, so memory
does not grow with the video's length.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import typer


def camera_problem(index: int) -> str | None:
    """None when camera ``index`` can be opened, else a one-line reason (never a traceback)."""
    dev = Path(f"/dev/video{index}")
    if os.name == "posix" and not dev.exists():
        found = sorted(p.name for p in Path("/dev").glob("video*")) if Path("/dev").exists() else []
        return f"camera {index}: no camera found ({dev} does not exist; cameras here: {', '.join(found) or 'none'})"
    try:
        import av

        with av.open(str(dev) if os.name == "posix" else f"video={index}", format="v4l2" if os.name == "posix" else "dshow"):
            pass
    except Exception as e:  # permission, busy, not a capture device
        return f"camera {index}: cannot be opened ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    return None


def camera_source(index: int) -> tuple[str, str]:
    """The capture device of camera ``index`` and its FFmpeg input format (V4L2 / DirectShow)."""
    return (f"/dev/video{index}", "v4l2") if os.name == "posix" else (f"video={index}", "dshow")


def record_clip(source: str, out_path: Path, seconds: float, input_format: str | None = None) -> Path:
    """Record ``seconds`` of video from ``source`` (a camera device or any stream PyAV opens) into
    an H.264 MP4, frame by frame, so a live capture goes through the same cue and prediction path
    as a file. Written to a temporary name and renamed when complete."""
    import av

    if not seconds > 0:
        raise ValueError(f"--seconds must be > 0, got {seconds}")
    out_path = Path(out_path)
    tmp = out_path.with_name(out_path.stem + ".partial" + out_path.suffix)
    frames = 0
    with av.open(source, format=input_format) as inp:
        stream = inp.streams.video[0]
        rate = int(round(float(stream.average_rate or 25)))
        with av.open(str(tmp), "w", format="mp4") as out:
            enc = out.add_stream("libx264", rate=rate)
            enc.width, enc.height, enc.pix_fmt = stream.codec_context.width, stream.codec_context.height, "yuv420p"
            start = None
            for frame in inp.decode(stream):
                t = float(frame.time) if frame.time is not None else frames / rate
                start = t if start is None else start
                if t - start >= seconds:
                    break
                out.mux(enc.encode(frame.reformat(width=enc.width, height=enc.height, format="yuv420p")))
                frames += 1
            out.mux(enc.encode(None))
    if frames == 0:
        tmp.unlink(missing_ok=True)
        raise ValueError(f"{source}: no video frames could be read")
    os.replace(tmp, out_path)
    return out_path


def window_spans(duration_s: float, window_s: float, hop_s: float) -> list[tuple[float, float]]:
    if not math.isfinite(duration_s) or duration_s <= 0:
        return [(0.0, window_s)]
    if duration_s <= window_s:
        return [(0.0, duration_s)]
    starts = list(np.arange(0.0, duration_s - window_s + 1e-6, hop_s))
    if starts[-1] + window_s < duration_s - 1e-6:
        starts.append(duration_s - window_s)
    return [(float(a), float(a + window_s)) for a in starts]


def window_predictions(video: Path, predictors: Sequence[Any], window_s: float, hop_s: float, workers: int = 1,
                       progress: bool = True, cues_dir: str | Path | None = None) -> tuple[list[dict], Any]:
    """Cues of the whole video, then one prediction per window: [{start_s, end_s, prediction, p, entropy, spread}]."""
    from textualize.extract import load_clip
    from textualize.predict import Input, PredictError, cue_dir_for, extract_cues, make_inputs, predict_batch

    inp = make_inputs([video])[0]
    cue_dirs = []
    for p in predictors:
        cd = cue_dir_for(p.ctx, cues_dir)
        failed = extract_cues([inp], cd, p.ctx.extract, workers, progress)
        if failed:
            raise PredictError(f"{video}: cues could not be extracted: {failed[inp.id]}")
        cue_dirs.append(cd)
    clip = load_clip(cue_dirs[0], inp.clip_id)
    spans = window_spans(float(clip.media.duration_s), window_s, hop_s)
    windows = [Input(f"{inp.id}@{a:.2f}", inp.path, inp.clip_id, start_s=a, end_s=b) for a, b in spans]
    out = []
    for res in predict_batch(predictors, windows, cue_dirs):
        if "error" in res:
            raise PredictError(f"{res['input'].id}: {res['error']}")
        r = res["row"]
        out.append({"start_s": res["input"].start_s, "end_s": res["input"].end_s, "prediction": r["prediction"],
                    "p": r["probs"][r["prediction"]], "entropy": r["entropy"], "spread": (r.get("spread") or {}).get("std")})
    return out, clip


def _current(windows: list[dict], t: float) -> dict | None:
    """The window centred nearest to ``t`` (the prediction 'now')."""
    best, dist = None, math.inf
    for w in windows:
        d = abs(0.5 * (w["start_s"] + w["end_s"]) - t)
        if d < dist:
            best, dist = w, d
    return best


def _face_track(clip) -> tuple[np.ndarray, list, tuple[int, int]]:
    from textualize.cues import MissingCue

    face = clip.face
    if isinstance(face, MissingCue) or not face.times_s:
        return np.zeros(0), [], (0, 0)
    return np.asarray(face.times_s), list(face.boxes), tuple(face.frame_size)


def _words(clip) -> list:
    from textualize.cues import MissingCue

    return [] if isinstance(clip.transcript, MissingCue) else list(clip.transcript.words)


def render(video: Path, out: Path, windows: list[dict], clip, progress: bool = True) -> dict[str, Any]:
    """Draw and encode frame by frame (flat memory); audio re-encoded to AAC alongside."""
    import av
    from PIL import Image, ImageDraw, ImageFont

    from textualize.manifest import printable

    times, boxes, (fw, fh) = _face_track(clip)
    words = _words(clip)
    font = ImageFont.load_default()
    tmp = out.with_name(f".{out.name}.tmp.mp4")
    t0 = time.perf_counter()
    n_frames = 0
    with av.open(str(video)) as src, av.open(str(tmp), "w") as dst:
        vin = src.streams.video[0] if src.streams.video else None
        if vin is None:
            raise ValueError(f"{printable(video)}: no video track to annotate")
        ain = src.streams.audio[0] if src.streams.audio else None
        rate = vin.average_rate or vin.guessed_rate or 25
        vout = dst.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=rate)
        vout.width, vout.height = (vin.codec_context.width // 2) * 2, (vin.codec_context.height // 2) * 2
        vout.pix_fmt = "yuv420p"
        aout = resampler = None
        if ain is not None:
            aout = dst.add_stream("aac", rate=ain.codec_context.sample_rate or 44100)
            resampler = av.AudioResampler(format="fltp", layout="stereo" if (ain.codec_context.channels or 1) > 1 else "mono",
                                          rate=aout.codec_context.sample_rate)
        start = vin.start_time or 0
        streams = [s for s in (vin, ain) if s is not None]
        for packet in src.demux(*streams):
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue
            for frame in frames:
                if packet.stream is ain:
                    frame.pts = None
                    for rf in resampler.resample(frame):
                        for p in aout.encode(rf):
                            dst.mux(p)
                    continue
                t = float((frame.pts - start) * vin.time_base) if frame.pts is not None else n_frames / float(rate)
                img = frame.to_image()
                draw = ImageDraw.Draw(img)
                label = _current(windows, t)
                box = None
                if len(times):
                    k = int(np.argmin(np.abs(times - t)))
                    if abs(times[k] - t) <= 0.4 and boxes[k] is not None:
                        b = boxes[k]
                        sx, sy = img.width / (fw or img.width), img.height / (fh or img.height)
                        box = (b.x1 * sx, b.y1 * sy, b.x2 * sx, b.y2 * sy)
                text = "" if label is None else f"{label['prediction']} {label['p']:.2f}  H={label['entropy']:.2f}" + (
                    f" sd={label['spread']:.2f}" if label.get("spread") is not None else "")
                if box is not None:
                    draw.rectangle(box, outline=(0, 255, 0), width=3)
                    x, y = box[2] + 6, max(0, box[1])
                    if x + 8 * len(text) > img.width:
                        x, y = max(0, box[0]), min(img.height - 14, box[3] + 4)
                else:
                    x, y = 6, 6
                    text = (text + "  (no face)") if text else "no face"
                if text:
                    w = draw.textlength(text, font=font)
                    draw.rectangle((x - 2, y - 2, x + w + 2, y + 12), fill=(0, 0, 0))
                    draw.text((x, y), text, fill=(255, 255, 255), font=font)
                    if label is not None:  # an uncertainty bar: full = uniform over the classes
                        draw.rectangle((x, y + 14, x + 80, y + 18), outline=(255, 255, 255))
                        draw.rectangle((x, y + 14, x + 80 * label["entropy"], y + 18), fill=(255, 140, 0))
                said = " ".join(wd.text.strip() for wd in words if wd.start_s <= t + 0.05 and wd.end_s >= t - 1.5)
                if said:
                    w = draw.textlength(said, font=font)
                    sx0 = max(0, (img.width - w) / 2)
                    draw.rectangle((sx0 - 3, img.height - 20, sx0 + w + 3, img.height - 6), fill=(0, 0, 0))
                    draw.text((sx0, img.height - 19), said, fill=(255, 255, 0), font=font)
                out_frame = av.VideoFrame.from_image(img).reformat(width=vout.width, height=vout.height, format="yuv420p")
                for p in vout.encode(out_frame):
                    dst.mux(p)
                n_frames += 1
        for p in vout.encode():
            dst.mux(p)
        if aout is not None:
            for rf in resampler.resample(None):
                for p in aout.encode(rf):
                    dst.mux(p)
            for p in aout.encode():
                dst.mux(p)
    os.replace(tmp, out)
    seconds = time.perf_counter() - t0
    return {"frames": n_frames, "render_seconds": round(seconds, 2), "render_fps": round(n_frames / max(seconds, 1e-9), 2),
            "audio": ain is not None}


def annotate_video(video: str | Path, predictors: Sequence[Any], out: str | Path, window_s: float = 2.0, hop_s: float = 0.5,
                   workers: int = 1, progress: bool = True, cues_dir: str | Path | None = None) -> dict[str, Any]:
    """Predict sliding windows of ``video`` and write the annotated copy to ``out``."""
    from textualize.manifest import atomic_write_json

    video, out = Path(video), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    windows, clip = window_predictions(video, predictors, window_s, hop_s, workers, progress, cues_dir)
    t1 = time.perf_counter()
    info = render(video, out, windows, clip, progress)
    summary = {"video": str(video), "out": str(out), "windows": windows, "window_s": window_s, "hop_s": hop_s,
               "predict_seconds": round(t1 - t0, 2), **info, "total_seconds": round(time.perf_counter() - t0, 2),
               "runs": [str(p.run_dir) for p in predictors]}
    atomic_write_json(out.with_suffix(".json"), summary)
    return summary


def annotate_cmd(
    video: Path = typer.Argument(..., help="A video file."),
    run: list[Path] = typer.Option(..., "--run", help="Run folder(s); several = an ensemble."),
    out: Path = typer.Option(..., "--out", help="The annotated video (.mp4); OUT.json lists the window predictions."),
    window: float = typer.Option(2.0, help="Seconds of cues per prediction."),
    hop: float = typer.Option(0.5, help="Seconds between predictions."),
    dataset: Path = typer.Option(None, "--dataset", help="The runs' dataset folder when run.json's path does not resolve here."),
) -> None:
    """Write VIDEO with the main face boxed, the current prediction and its uncertainty beside it,
    and the transcript as subtitles (sound kept)."""
    from rich.console import Console

    from textualize.predict import PredictError, load_predictor

    console = Console()
    if window <= 0 or hop <= 0:
        console.print("[red]error:[/red] --window and --hop must be positive seconds")
        raise typer.Exit(2)
    try:
        predictors = [load_predictor(r, dataset) for r in run]
        s = annotate_video(video, predictors, out, window, hop)
    except (PredictError, ValueError, FileNotFoundError) as e:
        console.print(f"[red]error:[/red] {e}", highlight=False)
        raise typer.Exit(2)
    console.print(f"{out}: {s['frames']} frames, {len(s['windows'])} windows, rendered at {s['render_fps']} frames/s "
                  f"(predictions {s['predict_seconds']} s); audio {'kept' if s['audio'] else 'absent'}")
