"""Feature-based baselines that sit beside the textualized models (same samples, same splits)."""
