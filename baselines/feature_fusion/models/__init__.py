"""One file per feature model; each registers a spec in ``FEATURE_MODELS`` by name."""
