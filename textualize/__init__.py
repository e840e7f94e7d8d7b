"""textualize: non-verbal cues -> text, for emotion recognition with language models."""

__version__ = "0.1.0"
