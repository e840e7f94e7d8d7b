"""Spoken words -> text: cleaned ASR or gold transcript, dialogue context, explicit markers.

Cleaning (``clean_text``), in order:
1. ``ftfy.fix_text``: repairs mojibake from mis-decoded cp1252/UTF-8 (MELD's "\\x92" -> "'",
   "â€™" -> "'"), curly quotes “ ” ‘ ’ -> straight quotes, then NFKC (… -> ..., NBSP -> space).
2. Leftover lone "Â" (a UTF-8 NBSP read as Latin-1 whose NBSP was then lost), control and
   zero-width characters are removed; en/em dashes become " - ".
3. Whitespace is collapsed and stripped.
ASR text additionally (``clean_asr``): Whisper's non-speech tags ("[Music]", "(upbeat music)",
"[BLANK_AUDIO]", "♪ ... ♪") are removed, segments Whisper itself scores as silence and segments
that are only a known subtitle-credit hallucination ("Thanks for watching!") are dropped, and
decoding loops (a 1-8 word phrase repeated more than ``max_repeats`` times) are cut.
"""
from __future__ import annotations

import functools
import re
from typing import Sequence

import ftfy

from textualize.converters.config import TranscriptConfig
from textualize.cues import MissingCue, Transcript

# MissingCue.reason -> what the prompt says instead of a transcript.
MISSING_TRANSCRIPT_TEXT: dict[str, str] = {
    "no_audio_track": "(no audio track)",
    "no_speech": "(no speech detected)",
    "silence": "(no speech detected: silence)",
    "too_short": "(audio too short to transcribe)",
    "decode_error": "(audio could not be decoded)",
    "backend_unavailable": "(speech recognition unavailable)",
    "not_requested": "(speech not transcribed)",
}

_CONTROL_RE = re.compile(r"[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029\u2060\ufeff]")
_LONE_A_RE = re.compile(r"Â(?=\s|$)|(?<=\s)Â")
_DASH_RE = re.compile(r"\s*[\u2013\u2014\u2015]\s*")
_SPACE_RE = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT_RE = re.compile(r"\s+([,.!?;:])")
# Whisper's non-speech annotations: [Music], [BLANK_AUDIO], (upbeat music), *laughs*, ♪ ... ♪
_MARKER_RE = re.compile(r"\[[^\]]{0,40}\]|\([^)]{0,40}\)|\*[^*]{0,40}\*|♪[^♪]{0,200}♪|[♪♫♬]")
_WORD_RE = re.compile(r"\S+")
_NORM_RE = re.compile(r"[^a-z0-9' ]+")


@functools.lru_cache(maxsize=65536)
def clean_text(text: str) -> str:
    """Unicode repair + quote/dash normalisation + whitespace collapse (cached: corpora repeat)."""
    if not text:
        return ""
    t = ftfy.fix_text(text, uncurl_quotes=True, normalization="NFKC")
    t = _CONTROL_RE.sub("", t)
    t = _LONE_A_RE.sub("", t)
    t = _DASH_RE.sub(" - ", t)
    t = _SPACE_RE.sub(" ", t).strip()
    return t


def _norm_phrase(text: str) -> str:
    return _SPACE_RE.sub(" ", _NORM_RE.sub(" ", text.lower())).strip()


def collapse_repeats(text: str, max_repeats: int, max_ngram: int = 8) -> str:
    """Cut back-to-back repetitions of a 1-``max_ngram`` word phrase to ``max_repeats`` copies.

    Words are compared case- and punctuation-insensitively, so "Sorry. sorry, Sorry!" is one
    phrase repeated three times.
    """
    words = _WORD_RE.findall(text)
    if max_repeats < 1 or len(words) <= max_repeats:
        return text
    keys = [_norm_phrase(w) for w in words]
    changed = False
    for n in range(1, max_ngram + 1):
        i = 0
        out_words: list[str] = []
        out_keys: list[str] = []
        while i < len(words):
            phrase = keys[i:i + n]
            if len(phrase) < n or not any(phrase):
                out_words.append(words[i])
                out_keys.append(keys[i])
                i += 1
                continue
            copies = 1
            while keys[i + copies * n:i + (copies + 1) * n] == phrase:
                copies += 1
            keep = min(copies, max_repeats)
            out_words.extend(words[i:i + keep * n])
            out_keys.extend(keys[i:i + keep * n])
            if copies > keep:
                changed = True
            i += copies * n
        words, keys = out_words, out_keys
    return " ".join(words) if changed else text


def strip_markers(text: str) -> str:
    t = _MARKER_RE.sub(" ", text)
    t = _SPACE_BEFORE_PUNCT_RE.sub(r"\1", _SPACE_RE.sub(" ", t)).strip()
    return t.strip(" -")


def clean_asr(transcript: Transcript, config: TranscriptConfig) -> str:
    """Cleaned text of a Whisper transcript (segment-level filtering when segments exist)."""
    hallucinations = {_norm_phrase(p) for p in config.hallucination_phrases}
    if transcript.segments:
        pieces = []
        for seg in transcript.segments:
            if (config.drop_silence_segments and seg.no_speech_prob > config.no_speech_threshold
                    and seg.avg_logprob < config.logprob_threshold):
                continue
            text = clean_text(seg.text)
            if config.drop_markers:
                text = strip_markers(text)
            if not text or _norm_phrase(text) in hallucinations:
                continue
            pieces.append(text)
        text = " ".join(pieces)
    else:
        text = clean_text(transcript.text)
        if config.drop_markers:
            text = strip_markers(text)
        if _norm_phrase(text) in hallucinations:
            text = ""
    if config.max_repeats:
        text = collapse_repeats(text, config.max_repeats)
    return text


def transcript_fragment(
    asr: Transcript | MissingCue | None,
    config: TranscriptConfig,
    gold: str | None = None,
) -> str:
    """The utterance's words: gold (if preferred and given) or cleaned ASR, or a marker.

    An empty result is ``config.empty_marker``; a ``MissingCue`` names its reason.
    """
    if gold is not None and (config.prefer_gold or asr is None or isinstance(asr, MissingCue)):
        text = clean_text(gold)
        return text or config.empty_marker
    if asr is None:
        return config.empty_marker
    if isinstance(asr, MissingCue):
        return MISSING_TRANSCRIPT_TEXT.get(asr.reason, f"(no transcript: {asr.reason.replace('_', ' ')})")
    return clean_asr(asr, config) or config.empty_marker


def context_fragment(context: Sequence[tuple[str | None, str]], config: TranscriptConfig) -> str:
    """The previous ``context_turns`` utterances, oldest first, one "Speaker: words" per line."""
    k = config.context_turns
    if k <= 0 or not context:
        return ""
    lines = []
    for speaker, utterance in list(context)[-k:]:
        text = clean_text(utterance or "") or config.empty_marker
        if len(text) > config.max_context_chars:
            text = text[: config.max_context_chars].rsplit(" ", 1)[0] + " ..."
        who = clean_text(speaker or "") or "Unknown speaker"
        lines.append(f"{who}: {text}")
    return "\n".join(lines)
