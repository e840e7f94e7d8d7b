"""Decoding of audio and video with PyAV: probing, audio as 16 kHz mono, frames streamed at a fps.

Frames are yielded one at a time from the demuxer, so memory stays flat however long the video.
Every failure is a ``MediaError`` subclass with a message naming the file, never a raw FFmpeg
exception from deep inside a library.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from textualize.cues import MediaInfo

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
AUDIO_SUFFIXES = {".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac", ".opus"}


class MediaError(RuntimeError):
    """A clip that cannot be decoded; the message says which file and why."""


class NoAudioTrackError(MediaError):
    pass


class NoVideoTrackError(MediaError):
    pass


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _open(path: str | Path):
    import av

    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: empty file")
    try:
        return av.open(str(path))
    except Exception as e:  # av.error.InvalidDataError and friends
        raise MediaError(f"{path}: cannot be decoded ({type(e).__name__}: {e})") from None


def probe(path: str | Path, content_sha256: str | None = None) -> MediaInfo:
    """Container-level facts about a clip (tracks, duration, fps, codecs)."""
    path = Path(path)
    with _open(path) as container:
        audio = container.streams.audio[0] if container.streams.audio else None
        video = container.streams.video[0] if container.streams.video else None
        duration = float(container.duration / 1_000_000) if container.duration else math.nan
        if video is not None and video.duration and video.time_base:
            duration = float(video.duration * video.time_base) if math.isnan(duration) else duration
        fps = 0.0
        if video is not None:
            rate = video.average_rate or video.base_rate or video.guessed_rate
            fps = float(rate) if rate else 0.0
        is_image = path.suffix.lower() in IMAGE_SUFFIXES
        return MediaInfo(
            path=str(path),
            content_sha256=content_sha256 or sha256_file(path),
            duration_s=0.0 if is_image else duration,
            has_audio=audio is not None,
            has_video=video is not None,
            video_fps=0.0 if is_image else fps,
            video_codec=video.codec_context.name if video is not None else "",
            audio_codec=audio.codec_context.name if audio is not None else "",
            audio_sample_rate=int(audio.codec_context.sample_rate or 0) if audio is not None else 0,
            width=int(video.codec_context.width or 0) if video is not None else 0,
            height=int(video.codec_context.height or 0) if video is not None else 0,
        )


def load_audio(path: str | Path, sample_rate: int = 16_000) -> np.ndarray:
    """First audio track as float32 mono at ``sample_rate`` (resampled by FFmpeg's swresample)."""
    import av

    with _open(path) as container:
        if not container.streams.audio:
            raise NoAudioTrackError(f"{path}: no audio track")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as e:
            if not chunks:
                raise MediaError(f"{path}: audio cannot be decoded ({e})") from None
            # a truncated tail: keep what decoded, as players do
    audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    return audio


@dataclass
class Frame:
    index: int  # index among the sampled frames
    time_s: float
    rgb: np.ndarray  # H x W x 3 uint8


def iter_frames(path: str | Path, fps: float = 5.0, max_side: int | None = None) -> Iterator[Frame]:
    """Yield RGB frames sampled at ``fps`` (by presentation time, so 24/30/120 fps sources and
    variable frame rates all give the same sampling grid). Images yield one frame at t=0.

    ``max_side`` downsizes in FFmpeg's scaler before conversion, which is cheaper than resizing
    numpy arrays afterwards.
    """
    import av

    path = Path(path)
    with _open(path) as container:
        if not container.streams.video:
            raise NoVideoTrackError(f"{path}: no video track")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        period = 1.0 / fps if fps > 0 else 0.0
        next_t = 0.0
        index = 0
        time_base = stream.time_base or Fraction(1, 1000)
        start = stream.start_time or 0
        try:
            for frame in container.decode(stream):
                pts = frame.pts if frame.pts is not None else frame.dts
                t = float((pts - start) * time_base) if pts is not None else index * period
                if period and t + 1e-6 < next_t:
                    continue
                width, height = frame.width, frame.height
                if max_side and max(width, height) > max_side:
                    scale = max_side / max(width, height)
                    width, height = max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)
                    rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
                else:
                    rgb = frame.to_ndarray(format="rgb24")
                yield Frame(index=index, time_s=max(t, 0.0), rgb=rgb)
                index += 1
                if period:
                    while next_t <= t + 1e-6:
                        next_t += period
        except av.error.FFmpegError as e:
            if index == 0:
                raise MediaError(f"{path}: video cannot be decoded ({e})") from None
            # a truncated tail: keep the frames that decoded
