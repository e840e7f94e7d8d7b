"""Feature-fusion models on a built dataset's aligned streams (``DATASET/streams/``).

``train.py`` is the entry point; models register themselves in :mod:`.registry` from their own
file in :mod:`.models`; training runs through the project's one loop (``textualize.training``).
"""
