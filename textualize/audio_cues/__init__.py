"""Audio cues: ASR transcripts (``asr_*.py``) and prosody (``prosody_*.py``), one backend per file."""
