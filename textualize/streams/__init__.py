"""Aligned feature streams for the feature-based models (``textualize build-streams``).

One module per stream extractor, each registered by name in
``textualize.registry.STREAM_EXTRACTORS``: ``face_au``, ``face_blendshapes``, ``face_landmarks``,
``face_dlib``, ``face_fer``, ``audio_lld``, ``audio_functionals`` (clip-level), ``audio_whisper``,
``text_emb``. ``align`` puts them on
one time axis per sample; ``writer`` writes ``DATASET/streams/`` (format: docs/streams_format.md).
"""
