"""Visual cues: face detection/tracking and AU backends (``au_*.py``), one backend per file."""
